/**
 * Live status across processes, as deployed: two API processes (`npm start`) and a worker
 * (`npm run worker`), each its own process on the same PostgreSQL. A change the worker commits
 * reaches a stream on one API process and a held read on the other (PostgreSQL NOTIFY, each API's
 * LISTEN connection); the clientSecret of a stream URL is in none of the API's log lines; on
 * SIGTERM open streams end and held reads answer at once, and the process exits cleanly.
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { followStream, readRaw } from '../support/live.ts';
import {
  checkoutBody,
  decideInBankApp,
  eventually,
  newBankCustomer,
  pendingInBankApp,
  spawnScript,
  spawnWorker,
  useSystem,
  type WorkerProcess,
} from '../support/system.ts';

// The system's own in-process API only provides the database and the queue namespace.
const { http, system } = useSystem({}, { worker: false });

interface ApiProcess {
  url: string;
  process: WorkerProcess;
}

const processes: WorkerProcess[] = [];
let apiA: ApiProcess;
let apiB: ApiProcess;

async function startApi(): Promise<ApiProcess> {
  const port = await freePort();
  // Every log line, access lines included, to search for the secret.
  const child = spawnScript('src/server.ts', { ...system().env, PORT: String(port), LOG_LEVEL: 'trace' });
  processes.push(child);
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    async () => (await fetch(`${url}/health/live`).catch(() => undefined))?.ok,
    30_000,
    `the API on ${port}: ${child.output().slice(-500)}`,
  );
  return { url, process: child };
}

beforeAll(async () => {
  processes.push(spawnWorker(system()));
  [apiA, apiB] = await Promise.all([startApi(), startApi()]);
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()));
});

// biome-ignore lint/suspicious/noExplicitAny: test assertions read JSON freely
type Json = any;

async function create(api: ApiProcess, login: string): Promise<{ id: string; clientSecret: string }> {
  const res = await fetch(`${api.url}/v1/checkouts`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${system().apiKey}`,
      'content-type': 'application/json',
      'idempotency-key': `live-${login}`,
    },
    body: JSON.stringify(checkoutBody(login)),
  });
  expect(res.status).toBe(202);
  return (await res.json()) as { id: string; clientSecret: string };
}

const streamUrl = (api: ApiProcess, id: string, clientSecret: string) =>
  `${api.url}/v1/checkouts/${id}/stream?client_secret=${encodeURIComponent(clientSecret)}`;

describe('two API processes and a worker process', () => {
  it("the worker's changes reach a stream on API B and a held read on API A; no log line holds the clientSecret", async () => {
    const login = await newBankCustomer();
    const { id, clientSecret } = await create(apiA, login);
    const stream = followStream(streamUrl(apiB, id, clientSecret));
    try {
      // The worker moves it to awaiting_approval once the bank took the request.
      const awaiting = await stream.event((e) => e.checkout.status === 'awaiting_approval');
      const held = fetch(`${apiA.url}/v1/checkouts/${id}`, {
        headers: {
          authorization: `Bearer ${clientSecret}`,
          'if-none-match': `W/"${awaiting.id}"`,
          prefer: 'wait=25',
        },
      });
      const request = await pendingInBankApp(login);
      await decideInBankApp(login, request.authReqId, 'approve');

      const answer = await held;
      expect(answer.status).toBe(200);
      expect(answer.headers.get('preference-applied')).toBe('wait=25');
      expect(['authorized', 'succeeded']).toContain(((await answer.json()) as Json).status);
      await stream.event((e) => e.checkout.status === 'succeeded');
      await stream.closed();
      expect(stream.events.at(-1)?.checkout).toMatchObject({
        status: 'succeeded',
        payment: { status: 'accepted' },
      });
    } finally {
      stream.close();
    }

    // Refused ones too: another checkout's clientSecret, a malformed one, in the URL.
    const other = await create(apiA, await newBankCustomer());
    expect((await fetch(streamUrl(apiB, id, other.clientSecret))).status).toBe(404);
    expect((await fetch(`${streamUrl(apiB, id, `${clientSecret}x`)}&extra=1`)).status).toBe(400);
    const signatures = [clientSecret, other.clientSecret].map((s) => s.split('_secret_')[1] ?? '');
    await eventually(
      async () => apiB.process.output().includes(`GET /v1/checkouts/${id}/stream 404`),
      5_000,
      'the access line of the refused stream',
    );
    const logs = apiB.process.output();
    expect(logs).toContain(`GET /v1/checkouts/${id}/stream 200`);
    for (const signature of signatures) {
      expect(signature.length).toBeGreaterThan(20);
      expect(logs).not.toContain(signature);
    }
    expect(logs).not.toContain(`client_secret=${id}`);
  });

  it('SIGTERM: an open stream ends, a held read answers at once, the process exits 0', async () => {
    const api = await startApi();
    const login = await newBankCustomer();
    const { id, clientSecret } = await create(api, login);
    await pendingInBankApp(login);
    await http.waitForStatus(id, ['awaiting_approval']);
    const raw = await readRaw(streamUrl(api, id, clientSecret));
    await raw.until(() => raw.events.length === 1);
    const etag = `W/"${raw.events[0]?.id}"`;
    const held = fetch(`${api.url}/v1/checkouts/${id}`, {
      headers: { authorization: `Bearer ${system().apiKey}`, 'if-none-match': etag, prefer: 'wait=25' },
    });
    // Let the held read arrive before the signal.
    await new Promise((r) => setTimeout(r, 500));
    const exited = once(api.process.child, 'exit');
    api.process.child.kill('SIGTERM');
    await raw.ended;
    const answer = await held;
    expect(answer.status).toBe(304);
    expect(answer.headers.get('preference-applied')).toBe('wait=25');
    expect(answer.headers.get('etag')).toBe(etag);
    const [code] = await exited;
    // 0: everything closed in time (a shutdown still waiting after 10 s exits 1).
    expect(code).toBe(0);
    expect(api.process.output()).toContain('"msg":"stopped"');
  });
});
