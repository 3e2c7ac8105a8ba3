/**
 * CIBA ping mode, the bank's side (CIBA Core §10.2): when the customer decides, the bank POSTs
 * `{ "auth_req_id" }` with `Authorization: Bearer <client_notification_token>` to the client's
 * notification endpoint; the client then makes its token request.
 *
 * oidc-provider sends the ping itself (Client#backchannelPing, from backchannelResult) through its
 * configurable `fetch`; the sandbox supplies that `fetch` (provider.ts) so that it can
 *  - deliver to an http endpoint on a loopback address in development. oidc-provider's client
 *    schema requires an https `backchannel_client_notification_endpoint` (CIBA Core §4), and its
 *    SSRF guard refuses loopback targets; the client is registered with the https form of the
 *    URL and the ping goes to the URL the bank was configured with (validated here: https, or
 *    http to 127.0.0.1 / ::1 / localhost only);
 *  - script faults per customer (faults.ts `ping`): drop a ping, send it twice, send it late;
 *  - answer oidc-provider at once and deliver in the background: the customer's Approve in the
 *    bank app never waits for, or fails with, the shop's endpoint. A real bank's ping is fire and
 *    forget as well (CIBA Core §10.2 defines no retry).
 * Each ping is recorded on the request's timeline (the control API shows it).
 */
import type { FaultBook } from './faults.ts';
import type { RequestRegistry } from './requests.ts';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
/** How long one delivery may take (oidc-provider's own ping timeout is 2.5 s). */
const PING_TIMEOUT_MS = 2_500;

/**
 * The endpoint pings are delivered to, and the https URL registered for the client.
 * @throws Error for anything but an https URL, or an http URL on a loopback host
 */
export function notificationEndpoint(url: string): { deliverTo: string; registered: string } {
  const parsed = URL.parse(url);
  if (
    !parsed ||
    !(parsed.protocol === 'https:' || (parsed.protocol === 'http:' && LOOPBACK_HOSTS.has(parsed.hostname)))
  ) {
    throw new Error(`notificationEndpoint must be https, or http on a loopback address (got ${url})`);
  }
  const registered = new URL(parsed.href);
  registered.protocol = 'https:';
  return { deliverTo: parsed.href, registered: registered.href };
}

export interface PingDelivery {
  /** The `fetch` given to oidc-provider: pings go through the sandbox, anything else is fetched as asked. */
  fetch: typeof fetch;
  /** Deliveries still running (a delayed ping, say), so close() can wait for them. */
  settled(): Promise<void>;
}

export function createPingDelivery(setup: {
  /** Where pings go (notificationEndpoint().deliverTo), or null when no client is in ping mode. */
  deliverTo: string | null;
  registered: string | null;
  requests: RequestRegistry;
  faults: FaultBook;
}): PingDelivery {
  const running = new Set<Promise<void>>();

  async function send(authReqId: string, init: RequestInit, copy: number, delayMs: number): Promise<void> {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const record = setup.requests.recordPing(authReqId, { at: Date.now(), copy, delayedMs: delayMs });
    try {
      const res = await fetch(setup.deliverTo!, {
        method: 'POST',
        headers: init.headers,
        body: init.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(PING_TIMEOUT_MS),
      });
      await res.arrayBuffer().catch(() => {});
      if (record) record.outcome = res.status;
    } catch (error) {
      if (record) record.outcome = `error: ${(error as Error).name}`;
    }
  }

  return {
    async fetch(url, init = {}) {
      const target = url instanceof Request ? url.url : String(url);
      if (setup.registered === null || target !== setup.registered) return fetch(url, init);
      const body = typeof init.body === 'string' ? init.body : '';
      const authReqId = (JSON.parse(body) as { auth_req_id: string }).auth_req_id;
      const fault = setup.faults.takePing(setup.requests.loginOf(authReqId));
      if (fault.drop) {
        setup.requests.recordPing(authReqId, { at: Date.now(), copy: 1, delayedMs: 0, outcome: 'dropped' });
      } else {
        for (let copy = 1; copy <= (fault.twice ? 2 : 1); copy++) {
          const delivery = send(authReqId, { headers: init.headers, body }, copy, fault.delayMs);
          running.add(delivery);
          void delivery.finally(() => running.delete(delivery));
        }
      }
      return new Response(null, { status: 204 });
    },
    async settled() {
      await Promise.allSettled([...running]);
    },
  };
}
