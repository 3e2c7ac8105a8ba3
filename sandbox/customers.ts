/**
 * The sandbox bank's customers. The CIBA `login_hint` is the login (CIBA Core §7.1); any other
 * hint is answered with `unknown_user_id` (CIBA Core §13). The login is also the OpenID subject:
 * `sub` of ID Tokens and access tokens is the login, nothing pairwise (OIDC Core §8).
 *
 * alice, bob and carol are seeded in every bank; tests create more on demand (control API,
 * `POST /control/customers`) so that parallel test files never share a customer's fault script.
 */
import { createHash } from 'node:crypto';
import type { Journal, JournalRecord } from './journal.ts';

export interface Customer {
  readonly login: string;
  readonly name: string;
  readonly email: string;
  readonly iban: string;
  /** Seeded at start (true) or created through the control API (false). */
  readonly seeded?: boolean;
}

const customers: readonly Customer[] = [
  {
    login: 'alice',
    name: 'Alice Martin',
    email: 'alice@sandbox.bank.test',
    iban: 'DE02120300000000202051',
    seeded: true,
  },
  {
    login: 'bob',
    name: 'Bob Okafor',
    email: 'bob@sandbox.bank.test',
    iban: 'DE02100500000054540402',
    seeded: true,
  },
  {
    login: 'carol',
    name: 'Carol Nguyen',
    email: 'carol@sandbox.bank.test',
    iban: 'DE02500105170137075030',
    seeded: true,
  },
] as const;

const seededByLogin = new Map(customers.map((c) => [c.login, c]));

/** Logins of created customers: lower-case, URL- and header-safe, at most 64 characters. */
const LOGIN_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export class CustomerError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A German IBAN (ISO 13616: country, two check digits by ISO 7064 MOD 97-10, 18-digit BBAN)
 * derived from the login, so a created customer has a stable, well-formed account number.
 */
export function syntheticIban(login: string): string {
  const digits = BigInt(`0x${createHash('sha256').update(login).digest('hex').slice(0, 16)}`)
    .toString()
    .padStart(18, '0')
    .slice(-10);
  const bban = `10000000${digits}`; // a Bundesbank-style sort code of the sandbox and the account
  // Letters count as two digits (D=13, E=14); the check digits are 98 - (BBAN + DE00 mod 97).
  const check = 98n - (BigInt(`${bban}131400`) % 97n);
  return `DE${check.toString().padStart(2, '0')}${bban}`;
}

/** One bank's customers: the seeded ones plus those created by tests (kept in the journal). */
export class CustomerDirectory {
  private readonly byLogin = new Map<string, Customer>(seededByLogin);

  constructor(private readonly journal?: Journal) {}

  /** Puts back the created customers a journal kept. */
  restore(records: ReadonlyArray<JournalRecord<Customer>>): void {
    for (const { data } of records) if (!this.byLogin.has(data.login)) this.byLogin.set(data.login, data);
  }

  find(login: string | undefined): Customer | undefined {
    return login === undefined ? undefined : this.byLogin.get(login);
  }

  list(): Customer[] {
    return [...this.byLogin.values()];
  }

  /** Validates and adds a customer; CustomerError(400) for a bad body, (409) when it exists. */
  async create(body: unknown): Promise<Customer> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new CustomerError(400, 'body must be a JSON object { login, name? }');
    }
    const { login, name, ...rest } = body as Record<string, unknown>;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new CustomerError(400, `unknown member ${unknown[0]}`);
    if (typeof login !== 'string' || !LOGIN_PATTERN.test(login)) {
      throw new CustomerError(400, `login must match ${LOGIN_PATTERN.source}`);
    }
    if (name !== undefined && (typeof name !== 'string' || name.length === 0 || name.length > 100)) {
      throw new CustomerError(400, 'name must be a string of 1-100 characters');
    }
    if (this.byLogin.has(login)) throw new CustomerError(409, `customer ${login} already exists`);
    const customer: Customer = {
      login,
      name: name ?? login,
      email: `${login}@sandbox.bank.test`,
      iban: syntheticIban(login),
      seeded: false,
    };
    this.byLogin.set(login, customer);
    await this.journal?.put('customer', login, customer);
    return customer;
  }

  /** Removes a created customer; seeded customers stay (CustomerError 409). */
  async delete(login: string): Promise<void> {
    const customer = this.byLogin.get(login);
    if (!customer) throw new CustomerError(404, `no customer ${login}`);
    if (customer.seeded) throw new CustomerError(409, `${login} is a seeded customer and stays`);
    this.byLogin.delete(login);
    await this.journal?.delete('customer', login);
  }
}

/** What the control API shows of a customer. */
export function describeCustomer(c: Customer) {
  return { login: c.login, name: c.name, email: c.email, iban: c.iban, seeded: c.seeded === true };
}
