/**
 * The control API for tests and demos, on the bank-app listener under `/control`, only in test
 * mode (404 otherwise). Routes:
 *
 *   GET    /control                                  the bank's URLs and counters
 *   POST   /control/reset                            clears fault scripts (the bank's own too),
 *                                                    payments, payment attempts and request records
 *                                                    (customers stay)
 *   GET    /control/faults                           the bank-wide fault script (discovery, JWKS)
 *   PUT    /control/faults                           replaces it (body: see faults.ts)
 *   DELETE /control/faults                           removes it
 *   GET    /control/customers                        { customers: [...] } seeded and created
 *   POST   /control/customers                        { login, name? } → 201 the customer (409 exists)
 *   GET    /control/customers/{login}                the customer
 *   DELETE /control/customers/{login}                removes a created customer (seeded: 409)
 *   GET    /control/customers/{login}/timeline       every bc-authorize with this login hint and
 *                                                    every request of the customer with its polls
 *   GET    /control/customers/{login}/requests       pending requests of a customer
 *   GET    /control/customers/{login}/faults         the customer's fault script (remaining counts)
 *   PUT    /control/customers/{login}/faults         replaces it (body: see faults.ts)
 *   DELETE /control/customers/{login}/faults         removes it
 *   GET    /control/requests/{authReqId}             one request, as the bank app shows it
 *   GET    /control/requests/{authReqId}/timeline    bc-authorize arrival and every token poll
 *   POST   /control/requests/{authReqId}/approve     approve as the customer would
 *   POST   /control/requests/{authReqId}/deny        deny as the customer would
 *   GET    /control/payments[?login=&clientId=]      { count, payments, attemptCount, attempts }:
 *                                                    payments recorded, and every POST /api/payments
 *                                                    that reached the bank (payments.ts, PaymentAttempt)
 *   GET    /control/payment-attempts[?login=&clientId=]  { count, attempts }; `login=` (empty)
 *                                                    selects the attempts without a verified token
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type CustomerDirectory, CustomerError, describeCustomer } from './customers.ts';
import type { Decider } from './decisions.ts';
import { type FaultBook, FaultScriptError, parseBankFaultScript, parseFaultScript } from './faults.ts';
import { HttpError, readJson, sendJson } from './http.ts';
import type { PaymentLedger } from './payments.ts';
import {
  describeBcAuthorizeAttempt,
  describeRequest,
  describeTimeline,
  type RequestRegistry,
} from './requests.ts';

export interface ControlSetup {
  info: () => Record<string, unknown>;
  requests: RequestRegistry;
  faults: FaultBook;
  ledger: PaymentLedger;
  decider: Decider;
  customers: CustomerDirectory;
}

function customerError(error: unknown): never {
  if (error instanceof CustomerError) {
    const code = error.status === 409 ? 'conflict' : error.status === 404 ? 'not_found' : 'invalid_request';
    throw new HttpError(error.status, code, error.message);
  }
  throw error;
}

export function createControlApi(setup: ControlSetup) {
  const { requests, faults, ledger, decider, customers } = setup;

  function customerOr404(login: string) {
    const customer = customers.find(login);
    if (!customer) throw new HttpError(404, 'not_found', `no customer ${login}`);
    return customer;
  }

  /** login and clientId filters of the payment listings; `login=` (empty) means "no verified token". */
  function attemptFilter(query: URLSearchParams) {
    const login = query.get('login');
    const clientId = query.get('clientId');
    return {
      ...(login !== null ? { login: login === '' ? null : login } : {}),
      ...(clientId ? { clientId } : {}),
    };
  }

  return async function handleControl(
    req: IncomingMessage,
    res: ServerResponse,
    segments: string[],
    query: URLSearchParams,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const [, b, c] = segments;
    const route = `${method} ${segments.map((s, i) => (i % 2 === 1 && i < 3 ? ':id' : s)).join('/')}`;

    switch (route) {
      case 'GET ':
        return sendJson(res, 200, setup.info());
      case 'POST reset':
        faults.clear();
        await ledger.clear();
        await requests.clear();
        return sendJson(res, 200, { reset: true });
      case 'GET faults':
        return sendJson(res, 200, faults.getBank());
      case 'PUT faults':
        try {
          faults.setBank(parseBankFaultScript(await readJson(req)));
        } catch (error) {
          if (error instanceof FaultScriptError)
            throw new HttpError(400, 'invalid_fault_script', error.message);
          throw error;
        }
        return sendJson(res, 200, faults.getBank());
      case 'DELETE faults':
        faults.setBank({});
        return sendJson(res, 200, {});
      case 'GET customers':
        return sendJson(res, 200, { customers: customers.list().map(describeCustomer) });
      case 'POST customers': {
        let created: Awaited<ReturnType<CustomerDirectory['create']>>;
        try {
          created = await customers.create(await readJson(req));
        } catch (error) {
          customerError(error);
        }
        return sendJson(res, 201, describeCustomer(created));
      }
      case 'GET customers/:id':
        return sendJson(res, 200, describeCustomer(customerOr404(b ?? '')));
      case 'DELETE customers/:id':
        try {
          await customers.delete(b ?? '');
        } catch (error) {
          customerError(error);
        }
        faults.clear(b ?? '');
        return sendJson(res, 200, {});
      case 'GET customers/:id/timeline': {
        // Any login hint a client sent is listed (an unknown one shows its unknown_user_id answers).
        const login = b ?? '';
        const customer = customers.find(login);
        return sendJson(res, 200, {
          login,
          customer: customer ? describeCustomer(customer) : null,
          bcAuthorize: requests.bcAuthorizeAttempts(login).map(describeBcAuthorizeAttempt),
          requests: requests.allFor(login).map((r) => describeTimeline(r)),
        });
      }
      case 'GET customers/:id/requests': {
        const customer = customerOr404(b ?? '');
        return sendJson(res, 200, {
          requests: requests.pendingFor(customer.login).map((r) => describeRequest(r)),
        });
      }
      case 'GET customers/:id/faults':
        return sendJson(res, 200, faults.get(customerOr404(b ?? '').login));
      case 'PUT customers/:id/faults': {
        const customer = customerOr404(b ?? '');
        try {
          faults.set(customer.login, parseFaultScript(await readJson(req)));
        } catch (error) {
          if (error instanceof FaultScriptError)
            throw new HttpError(400, 'invalid_fault_script', error.message);
          throw error;
        }
        return sendJson(res, 200, faults.get(customer.login));
      }
      case 'DELETE customers/:id/faults':
        faults.clear(customerOr404(b ?? '').login);
        return sendJson(res, 200, {});
      case 'GET requests/:id': {
        const record = requests.get(b ?? '');
        if (!record) throw new HttpError(404, 'not_found', 'unknown auth_req_id');
        return sendJson(res, 200, describeRequest(record));
      }
      case 'GET requests/:id/timeline': {
        const record = requests.get(b ?? '');
        if (!record) throw new HttpError(404, 'not_found', 'unknown auth_req_id');
        return sendJson(res, 200, describeTimeline(record));
      }
      case 'POST requests/:id/approve':
      case 'POST requests/:id/deny':
        return sendJson(res, 200, await decider.decide(b ?? '', c === 'approve' ? 'approve' : 'deny'));
      case 'GET payments': {
        const filter = attemptFilter(query);
        // Every payment has a verified token, so `login=` (none) selects no payment.
        const payments =
          filter.login === null ? [] : ledger.list(filter as { login?: string; clientId?: string });
        const attempts = ledger.attempts(filter);
        return sendJson(res, 200, {
          count: payments.length,
          payments,
          attemptCount: attempts.length,
          attempts,
        });
      }
      case 'GET payment-attempts': {
        const attempts = ledger.attempts(attemptFilter(query));
        return sendJson(res, 200, { count: attempts.length, attempts });
      }
      default:
        throw new HttpError(404, 'not_found', 'no such control route');
    }
  };
}
