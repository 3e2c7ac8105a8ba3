/**
 * The sandbox bank's seeded customers. The CIBA `login_hint` is the login (CIBA Core §7.1);
 * any other hint is answered with `unknown_user_id` (CIBA Core §13).
 */
export interface Customer {
  readonly login: string;
  readonly name: string;
  readonly email: string;
  readonly iban: string;
}

export const customers: readonly Customer[] = [
  { login: 'alice', name: 'Alice Martin', email: 'alice@sandbox.bank.test', iban: 'DE02120300000000202051' },
  { login: 'bob', name: 'Bob Okafor', email: 'bob@sandbox.bank.test', iban: 'DE02100500000054540402' },
  { login: 'carol', name: 'Carol Nguyen', email: 'carol@sandbox.bank.test', iban: 'DE02500105170137075030' },
] as const;

const byLogin = new Map(customers.map((c) => [c.login, c]));

export function findCustomer(login: string | undefined): Customer | undefined {
  return login === undefined ? undefined : byLogin.get(login);
}
