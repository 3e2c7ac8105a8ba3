/**
 * The worker paces its token polls as the bank asks (CIBA Core §7.3 interval, §11 slow_down,
 * RFC 9110 Retry-After), measured on the wire: at the bank, from the times its token endpoint saw.
 */
import { describe, expect, it } from 'vitest';
import {
  bankControl,
  checkoutBody,
  decideInBankApp,
  newBankCustomer,
  pendingInBankApp,
  useSystem,
} from '../support/system.ts';

const { http } = useSystem();

interface Poll {
  at: number;
  outcome: number | 'dropped' | null;
  result: unknown;
}

async function pollsOf(login: string): Promise<Poll[]> {
  const timeline = await bankControl<{ requests: Array<{ polls: Poll[] }> }>(`/customers/${login}/timeline`);
  return timeline.requests[0]?.polls ?? [];
}

async function waitForPolls(login: string, n: number, timeoutMs = 30_000): Promise<Poll[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const polls = await pollsOf(login);
    if (polls.length >= n) return polls;
    if (Date.now() > deadline) throw new Error(`only ${polls.length} polls for ${login}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const gaps = (polls: Poll[]) => polls.slice(1).map((p, i) => p.at - polls[i]!.at);
/** Millisecond rounding only: the worker counts each wait from the previous answer, so never early. */
const EARLY_TOLERANCE_MS = 5;

async function finish(login: string, id: string) {
  const request = await pendingInBankApp(login);
  await decideInBankApp(login, request.authReqId, 'approve');
  return http.waitForStatus(id, ['succeeded', 'failed']);
}

describe.concurrent('poll pacing on the wire', () => {
  it('honours the interval of the acknowledgement', async () => {
    const login = await newBankCustomer({ interval: 2 });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const polls = await waitForPolls(login, 3);
    for (const gap of gaps(polls)) expect(gap).toBeGreaterThanOrEqual(2_000 - EARLY_TOLERANCE_MS);
    expect((await finish(login, id)).status).toBe('succeeded');
  });

  it('slow_down adds 5 s to the interval, for that poll and every later one', async () => {
    const login = await newBankCustomer({ interval: 1, slowDown: 1 });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const polls = await waitForPolls(login, 3, 30_000);
    const [first, second, third] = polls;
    expect(first?.result).toBe('slow_down');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(6_000 - EARLY_TOLERANCE_MS);
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(6_000 - EARLY_TOLERANCE_MS);
    const checkout = await http.get(`/v1/checkouts/${id}`);
    const timeline = (
      (await checkout.json()) as { timeline: Array<{ outcome: string; detail: { interval?: number } }> }
    ).timeline;
    expect(timeline.find((e) => e.outcome === 'slow_down')?.detail.interval).toBe(6);
    expect((await finish(login, id)).status).toBe('succeeded');
  }, 40_000);

  it('a 503 with Retry-After delays the next poll by at least that long', async () => {
    const login = await newBankCustomer({ interval: 1, unavailable: { token: { times: 1, retryAfter: 3 } } });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const polls = await waitForPolls(login, 2);
    expect(polls[0]?.outcome).toBe(503);
    expect(polls[1]!.at - polls[0]!.at).toBeGreaterThanOrEqual(3_000 - EARLY_TOLERANCE_MS);
    expect((await finish(login, id)).status).toBe('succeeded');
  });

  it('a 503 with Retry-After on the backchannel request is retried after it', async () => {
    const login = await newBankCustomer({ unavailable: { 'bc-authorize': { times: 1, retryAfter: 2 } } });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    expect((await finish(login, id)).status).toBe('succeeded');
    const timeline = await bankControl<{ bcAuthorize: Array<{ at: number; outcome: number }> }>(
      `/customers/${login}/timeline`,
    );
    expect(timeline.bcAuthorize.map((a) => a.outcome)).toEqual([503, 200]);
    const [a, b] = timeline.bcAuthorize;
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(2_000 - EARLY_TOLERANCE_MS);
  });
});
