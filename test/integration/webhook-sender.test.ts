/**
 * One webhook attempt against real HTTP servers on 127.0.0.1 (src/integrations/webhook.sender.ts,
 * DESIGN.md §7.3), the receivers as hostile as they come: a body that never ends, answers dripped
 * a byte at a time, redirects, resets, no answer at all, an untrusted certificate, and host names
 * that resolve where webhooks may not go. The sender must classify each, stay within its timeout,
 * read at most 64 KiB of any answer, follow no redirect, and connect nowhere it may not.
 */
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { certificateFiles } from '../../devstack/certificates.ts';
import type { AddressResolver } from '../../src/integrations/bank-endpoints.policy.ts';
import {
  createWebhookSender,
  RESPONSE_READ_LIMIT_BYTES,
  type WebhookMessage,
  type WebhookSender,
} from '../../src/integrations/webhook.sender.ts';

const TIMEOUT_MS = 600;
const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const OLD_SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
const MESSAGE: WebhookMessage = {
  id: 'evt_0123456789abcdef0123456789abcdef',
  body: JSON.stringify({ id: 'evt_0123456789abcdef0123456789abcdef', type: 'checkout.succeeded', n: 'é' }),
  secrets: [SECRET],
};

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

interface TestServer {
  url: string;
  port: number;
  received: Received[];
  /** Connections accepted, whether a request came or not. */
  connections: number;
  /** Sockets the server saw close (after a request). */
  closed: number;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const senders: WebhookSender[] = [];
afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function sender(options: { timeoutMs?: number; resolve?: AddressResolver } = {}): WebhookSender {
  const made = createWebhookSender({ timeoutMs: options.timeoutMs ?? TIMEOUT_MS, ...options });
  senders.push(made);
  return made;
}

/** A server whose `answer` gets each request once its body is read. */
async function serve(
  answer: (req: IncomingMessage, res: ServerResponse, socket: Socket) => void,
  make: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server = (h) => createHttpServer(h),
): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const state = { connections: 0, closed: 0 };
  const received: Received[] = [];
  const server = make((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(req, res, req.socket);
    });
  });
  server.on('connection', (socket: Socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      state.closed++;
    });
  });
  server.on('secureConnection', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const made: TestServer = {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    get connections() {
      return state.connections;
    },
    get closed() {
      return state.closed;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  servers.push(made);
  return made;
}

const answerWith =
  (status: number, headers: Record<string, string> = {}, body = '') =>
  (_req: IncomingMessage, res: ServerResponse) =>
    res.writeHead(status, headers).end(body);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a delivered attempt', () => {
  it('POSTs the body as signed (Standard Webhooks), verifiable with each secret during a rotation', async () => {
    const server = await serve(answerWith(204));
    const now = new Date();
    const result = await sender().send(server.url, { ...MESSAGE, secrets: [SECRET, OLD_SECRET] }, now);
    expect(result).toMatchObject({ delivered: true, status: 204, error: null });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    const [got] = server.received;
    expect(got?.body).toBe(MESSAGE.body);
    expect(got?.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'Bankpay-Webhooks/1',
      'webhook-id': MESSAGE.id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    });
    const signatures = String(got?.headers['webhook-signature']).split(' ');
    expect(signatures).toHaveLength(2);
    for (const s of signatures) expect(s).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    // A receiver on either secret verifies it; one on another secret does not.
    const headers = got?.headers as Record<string, string>;
    for (const secret of [SECRET, OLD_SECRET]) {
      expect(new Webhook(secret).verify(MESSAGE.body, headers)).toMatchObject({ type: 'checkout.succeeded' });
    }
    const stranger = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
    expect(() => new Webhook(stranger).verify(MESSAGE.body, headers)).toThrow();
    // A body changed in transit does not verify.
    expect(() => new Webhook(SECRET).verify(MESSAGE.body.replace('é', 'e'), headers)).toThrow();
  });

  it('after the rotation, one signature: the old secret no longer verifies', async () => {
    const server = await serve(answerWith(200));
    expect((await sender().send(server.url, MESSAGE)).delivered).toBe(true);
    const headers = server.received[0]?.headers as Record<string, string>;
    expect(headers['webhook-signature']?.split(' ')).toHaveLength(1);
    expect(() => new Webhook(SECRET).verify(MESSAGE.body, headers)).not.toThrow();
    expect(() => new Webhook(OLD_SECRET).verify(MESSAGE.body, headers)).toThrow();
  });

  it('counts every 2xx, and keeps the connection for the next attempt when the answer is small', async () => {
    const server = await serve((_req, res) => res.writeHead(299).end('{"ok":true}'));
    const s = sender();
    for (let i = 0; i < 3; i++) {
      expect(await s.send(server.url, MESSAGE)).toMatchObject({ delivered: true, status: 299 });
      await sleep(20); // the connection back in the pool
    }
    expect(server.connections).toBe(1);
  });
});

describe('a failed attempt: classified, never thrown', () => {
  it.each([400, 404, 410, 429, 500, 503])('%i is a failure with its status', async (status) => {
    const server = await serve(answerWith(status, { 'retry-after': '1' }, 'nope'));
    expect(await sender().send(server.url, MESSAGE)).toMatchObject({ delivered: false, status, error: null });
  });

  it.each([301, 302, 303, 307, 308])(
    'a redirect (%i) is not followed: a failure with its status',
    async (status) => {
      const elsewhere = await serve(answerWith(204));
      const server = await serve(answerWith(status, { location: elsewhere.url }));
      expect(await sender().send(server.url, MESSAGE)).toMatchObject({
        delivered: false,
        status,
        error: null,
      });
      expect(elsewhere.connections).toBe(0);
    },
  );

  it('a redirect to a metadata address goes nowhere', async () => {
    const server = await serve(answerWith(302, { location: 'http://169.254.169.254/latest/meta-data/' }));
    expect(await sender().send(server.url, MESSAGE)).toMatchObject({ delivered: false, status: 302 });
  });

  it('no answer at all: timeout, within the timeout', async () => {
    const server = await serve(() => undefined);
    const result = await sender().send(server.url, MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: null, error: 'timeout' });
    expect(result.durationMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(result.durationMs).toBeLessThan(TIMEOUT_MS + 1_500);
  });

  it('a 2xx that comes after the timeout is a timeout', async () => {
    const server = await serve((_req, res) => {
      setTimeout(() => res.writeHead(200).end(), TIMEOUT_MS + 200);
    });
    expect(await sender().send(server.url, MESSAGE)).toMatchObject({ delivered: false, error: 'timeout' });
  });

  it('a status line and headers dripped a byte at a time are still bounded by the timeout', async () => {
    const server = await serve((_req, _res, socket) => {
      const head = Buffer.from(`HTTP/1.1 200 OK\r\n${'x-pad: y\r\n'.repeat(500)}\r\n`);
      let i = 0;
      const timer = setInterval(() => {
        if (socket.destroyed || i >= head.length) {
          clearInterval(timer);
          return;
        }
        socket.write(head.subarray(i, ++i));
      }, 10);
      socket.on('close', () => clearInterval(timer));
    });
    const started = Date.now();
    const result = await sender().send(server.url, MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: null, error: 'timeout' });
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1_500);
  });

  it('a body dripped a byte at a time after a 2xx is read no longer than the timeout', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('x'), 10);
      res.on('close', () => clearInterval(timer));
    });
    const started = Date.now();
    const result = await sender().send(server.url, MESSAGE);
    // The status came within the timeout: delivered; the rest of the body is not waited for.
    expect(result).toMatchObject({ delivered: true, status: 200 });
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1_500);
    await expectEventually(() => server.closed >= 1);
  });

  it('a body that never ends is read to 64 KiB, then the connection is dropped: quickly, memory bounded', async () => {
    let written = 0;
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      const pump = () => {
        while (!res.destroyed && written < 512 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    const before = process.memoryUsage().rss;
    const started = Date.now();
    const result = await sender({ timeoutMs: 5_000 }).send(server.url, MESSAGE);
    expect(result).toMatchObject({ delivered: true, status: 200, error: null });
    // Well before the timeout: nothing waits for the end of an endless body.
    expect(Date.now() - started).toBeLessThan(2_000);
    await expectEventually(() => server.closed >= 1);
    // What the server got to write is the read limit plus socket buffers, not the stream.
    expect(written).toBeLessThan(16 * 1024 * 1024);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    expect(RESPONSE_READ_LIMIT_BYTES).toBe(64 * 1024);
  });

  it('a large error body with a content-length is not read either', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(500, { 'content-length': String(100 * 1024 * 1024) });
      res.write(Buffer.alloc(1024));
    });
    const started = Date.now();
    const result = await sender({ timeoutMs: 5_000 }).send(server.url, MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: 500 });
    // Not waited for until the timeout: dropped as soon as its length is known to be over the limit.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a refused connection: connection_refused', async () => {
    const server = await serve(answerWith(204));
    const url = server.url;
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect(await sender().send(url, MESSAGE)).toMatchObject({
      delivered: false,
      status: null,
      error: 'connection_refused',
    });
  });

  it('a connection dropped mid-request: connection_reset', async () => {
    const server = await serve((_req, _res, socket) => socket.destroy());
    expect(await sender().send(server.url, MESSAGE)).toMatchObject({
      delivered: false,
      status: null,
      error: 'connection_reset',
    });
  });

  it('garbage instead of HTTP: a failure, never a throw', async () => {
    const server = await serve((_req, _res, socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n'));
    const result = await sender().send(server.url, MESSAGE);
    expect(result.delivered).toBe(false);
    expect(result.status).toBeNull();
    expect(['network_error', 'connection_reset']).toContain(result.error);
  });

  it('a certificate the machine does not trust: tls_error', async () => {
    const certs = inject('certsDir');
    const server = await serve(answerWith(204), (handler) =>
      createHttpsServer(
        {
          cert: readFileSync(join(certs, certificateFiles.serverCert)),
          key: readFileSync(join(certs, certificateFiles.serverKey)),
        },
        handler,
      ),
    );
    const result = await sender().send(`https://localhost:${server.port}/hooks`, MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: null, error: 'tls_error' });
    expect(server.received).toEqual([]);
  });

  it('https to a plain http server: tls_error', async () => {
    const server = await serve(answerWith(204));
    const result = await sender().send(`https://127.0.0.1:${server.port}/hooks`, MESSAGE);
    expect(result).toMatchObject({ delivered: false, error: 'tls_error' });
  });
});

describe('addresses checked at connection time, after DNS (a name re-pointed after registration)', () => {
  /** A resolver that answers every name with these addresses, counting the questions. */
  function resolving(...addresses: string[]) {
    const asked: string[] = [];
    const resolve: AddressResolver = (hostname, _options, callback) => {
      asked.push(hostname);
      callback(
        null,
        addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
      );
    };
    return { resolve, asked };
  }

  it.each([
    ['10.0.0.5'],
    ['169.254.169.254'],
    ['::ffff:10.0.0.1'],
    ['0.0.0.0'],
    ['::'],
    ['fd00::1'],
    ['192.168.1.1'],
    ['100.64.0.1'],
    ['64:ff9b::a9fe:a9fe'],
  ])('https to a name resolving to %s: address_refused, no connection made', async (address) => {
    const local = await serve(answerWith(204));
    // The name also resolves to the local server: had any connection been made, it would see it.
    const { resolve, asked } = resolving('127.0.0.1', address);
    const result = await sender({ resolve }).send(`https://hooks.shop.example:${local.port}/h`, MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: null, error: 'address_refused' });
    expect(asked).toEqual(['hooks.shop.example']);
    expect(local.connections).toBe(0);
  });

  it('plain http to a name resolving to a non-loopback address: address_refused', async () => {
    const { resolve } = resolving('1.1.1.1');
    const result = await sender({ resolve }).send('http://hooks.localhost:8080/h', MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: null, error: 'address_refused' });
    expect(result.durationMs).toBeLessThan(TIMEOUT_MS);
  });

  it('plain http to a name resolving to loopback is sent', async () => {
    const local = await serve(answerWith(204));
    const { resolve, asked } = resolving('127.0.0.1');
    const result = await sender({ resolve }).send(`http://hooks.localhost:${local.port}/h`, MESSAGE);
    expect(result).toMatchObject({ delivered: true, status: 204 });
    expect(asked).toEqual(['hooks.localhost']);
  });

  it('a name that was fine and then resolves elsewhere is refused on the next connection', async () => {
    const local = await serve((_req, res) => res.writeHead(204, { connection: 'close' }).end());
    let address = '127.0.0.1';
    const resolve: AddressResolver = (_host, _options, callback) => callback(null, [{ address, family: 4 }]);
    const s = sender({ resolve });
    const url = `http://hooks.localhost:${local.port}/h`;
    expect(await s.send(url, MESSAGE)).toMatchObject({ delivered: true });
    address = '10.0.0.5';
    await expectEventually(() => local.closed >= 1);
    expect(await s.send(url, MESSAGE)).toMatchObject({ delivered: false, error: 'address_refused' });
    expect(local.received).toHaveLength(1);
  });

  it.each([
    'http://10.0.0.5/h',
    'https://169.254.169.254/latest/meta-data/',
    'https://[::ffff:10.0.0.5]/h',
    'http://[64:ff9b::127.0.0.1]/h',
    'https://[::10.0.0.5]/h',
    'http://0.0.0.0:9/h',
    'https://[::]:9/h',
    'http://1.1.1.1/h',
  ])(
    'an address literal the rules refuse (%s), stored before a rule changed: refused as it is sent',
    async (url) => {
      const { resolve, asked } = resolving('127.0.0.1');
      const result = await sender({ resolve }).send(url, MESSAGE);
      expect(result).toMatchObject({ delivered: false, status: null, error: 'address_refused' });
      expect(result.durationMs).toBeLessThan(50);
      expect(asked).toEqual([]);
    },
  );

  it('the scheme decides the rules however it is written: HTTP:// is plain http, loopback only', async () => {
    const { resolve } = resolving('1.1.1.1');
    const result = await sender({ resolve }).send('HTTP://hooks.localhost/h', MESSAGE);
    expect(result).toMatchObject({ delivered: false, status: null, error: 'address_refused' });
  });

  it('a name that does not resolve: dns_error', async () => {
    const resolve: AddressResolver = (_host, _options, callback) =>
      callback(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }), []);
    expect(await sender({ resolve }).send('https://nowhere.shop.example/h', MESSAGE)).toMatchObject({
      delivered: false,
      error: 'dns_error',
    });
  });
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function expectEventually(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(10);
  }
}
