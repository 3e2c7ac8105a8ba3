/**
 * The bank app listener (plain HTTP on 127.0.0.1): the customer's page, its JSON routes, and
 * (test mode only) the control API.
 *
 *   GET  /                                       the bank app page
 *   GET  /app/api/customers                      [{ login, name }]
 *   GET  /app/api/customers/{login}/requests     { requests: [...] } pending, newest first
 *   GET  /app/api/requests/{authReqId}           one request
 *   POST /app/api/requests/{authReqId}/approve   body optional { login }: must own the request
 *   POST /app/api/requests/{authReqId}/deny      idem
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { renderBankAppPage } from './bank-app-page.ts';
import type { CustomerDirectory } from './customers.ts';
import type { Decider } from './decisions.ts';
import { HttpError, pathSegments, readJson, sendError, sendJson } from './http.ts';
import { describeRequest, type RequestRegistry } from './requests.ts';

export interface BankAppSetup {
  bankName: string;
  requests: RequestRegistry;
  decider: Decider;
  customers: CustomerDirectory;
  /** The control API handler, or null outside test mode. */
  control:
    | ((
        req: IncomingMessage,
        res: ServerResponse,
        segments: string[],
        query: URLSearchParams,
      ) => Promise<void>)
    | null;
}

async function loginFromBody(req: IncomingMessage): Promise<string | undefined> {
  const body = await readJson(req).catch(() => undefined);
  const login = (body as { login?: unknown } | undefined)?.login;
  return typeof login === 'string' ? login : undefined;
}

export function createBankApp(setup: BankAppSetup) {
  const { requests, decider, customers } = setup;
  // Rendered per request: tests create customers while the bank runs.
  const page = () =>
    renderBankAppPage({
      bankName: setup.bankName,
      customers: customers.list().map(({ login, name }) => ({ login, name })),
    });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://bank-app.invalid');
    const segments = pathSegments(url.pathname);
    const method = req.method ?? 'GET';

    if (segments[0] === 'control') {
      if (!setup.control) throw new HttpError(404, 'not_found', 'not found');
      return setup.control(req, res, segments.slice(1), url.searchParams);
    }
    if (method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html')) {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy':
          "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
      });
      res.end(page());
      return;
    }
    if (segments[0] !== 'app' || segments[1] !== 'api') throw new HttpError(404, 'not_found', 'not found');
    const [, , kind, id, action] = segments;

    if (method === 'GET' && kind === 'customers' && id === undefined) {
      return sendJson(
        res,
        200,
        customers.list().map(({ login, name }) => ({ login, name })),
      );
    }
    if (method === 'GET' && kind === 'customers' && id !== undefined && action === 'requests') {
      const customer = customers.find(id);
      if (!customer) throw new HttpError(404, 'not_found', `no customer ${id}`);
      return sendJson(res, 200, {
        customer: { login: customer.login, name: customer.name },
        requests: requests.pendingFor(customer.login).map((r) => describeRequest(r)),
      });
    }
    if (method === 'GET' && kind === 'requests' && id !== undefined && action === undefined) {
      const record = requests.get(id);
      if (!record) throw new HttpError(404, 'not_found', 'unknown request');
      return sendJson(res, 200, describeRequest(record));
    }
    if (
      method === 'POST' &&
      kind === 'requests' &&
      id !== undefined &&
      (action === 'approve' || action === 'deny')
    ) {
      return sendJson(res, 200, await decider.decide(id, action, await loginFromBody(req)));
    }
    throw new HttpError(404, 'not_found', 'not found');
  }

  return async function handleBankApp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await route(req, res);
    } catch (error) {
      sendError(res, error);
    }
  };
}
