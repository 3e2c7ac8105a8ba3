/**
 * The control API for tests and demos, on the bank-app listener under `/control`, only in test
 * mode (404 otherwise). Routes:
 *
 *   GET    /control                                  the bank's URLs and counters
 *   POST   /control/reset                            clears fault scripts, payments, request records
 *   GET    /control/customers/{login}/requests       pending requests of a customer
 *   GET    /control/customers/{login}/faults         the customer's fault script (remaining counts)
 *   PUT    /control/customers/{login}/faults         replaces it (body: see faults.ts)
 *   DELETE /control/customers/{login}/faults         removes it
 *   GET    /control/requests/{authReqId}             one request, as the bank app shows it
 *   GET    /control/requests/{authReqId}/timeline    bc-authorize arrival and every token poll
 *   POST   /control/requests/{authReqId}/approve     approve as the customer would
 *   POST   /control/requests/{authReqId}/deny        deny as the customer would
 *   GET    /control/payments[?login=&clientId=]      { count, payments } recorded by the payment API
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { findCustomer } from './customers.ts';
import type { Decider } from './decisions.ts';
import { type FaultBook, FaultScriptError, parseFaultScript } from './faults.ts';
import { HttpError, readJson, sendJson } from './http.ts';
import type { PaymentLedger } from './payments.ts';
import { describeRequest, describeTimeline, type RequestRegistry } from './requests.ts';

export interface ControlSetup {
  info: () => Record<string, unknown>;
  requests: RequestRegistry;
  faults: FaultBook;
  ledger: PaymentLedger;
  decider: Decider;
}

function customerOr404(login: string) {
  const customer = findCustomer(login);
  if (!customer) throw new HttpError(404, 'not_found', `no customer ${login}`);
  return customer;
}

export function createControlApi(setup: ControlSetup) {
  const { requests, faults, ledger, decider } = setup;

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
        ledger.clear();
        requests.clear();
        return sendJson(res, 200, { reset: true });
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
        const filter = {
          ...(query.get('login') ? { login: query.get('login') ?? '' } : {}),
          ...(query.get('clientId') ? { clientId: query.get('clientId') ?? '' } : {}),
        };
        const payments = ledger.list(filter);
        return sendJson(res, 200, { count: payments.length, payments });
      }
      default:
        throw new HttpError(404, 'not_found', 'no such control route');
    }
  };
}
