/**
 * A webhook receiver for development, tests, chaos runs and benchmarks: a real HTTP server on
 * 127.0.0.1 that verifies each delivery with the `standardwebhooks` package (as a merchant's
 * server would), remembers what arrived, and answers as it is told: 2xx, another status, or not at
 * all (to exercise the timeout). `npm run dev` runs one and prints each verified event.
 *
 * The control routes under /_receiver/ let another process steer a receiver it started
 * (devstack/webhook-receiver.main.ts): its secrets, its behaviour, and what it received.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { readBody as readRequestBody } from '../sandbox/http.ts';

/** How the receiver answers deliveries. */
export type ReceiverBehaviour =
  /** 204 to every delivery (the default). */
  | { kind: 'ok' }
  /** This status to every delivery. */
  | { kind: 'status'; status: number }
  /** No answer at all: the connection stays open until the sender gives up. */
  | { kind: 'hang' }
  /** Alternates: `okFor` deliveries answered 204, then `failFor` answered 500, and again. */
  | { kind: 'flap'; okFor: number; failFor: number }
  /** These answers to the next deliveries, in order ('hang' for none), then 204. */
  | { kind: 'script'; answers: Array<number | 'hang'> };

export interface ReceivedWebhook {
  /** webhook-id: the event id. */
  id: string;
  type: string;
  checkoutId: string;
  checkoutStatus: string;
  /** The signature verified with one of the receiver's secrets (standardwebhooks). */
  verified: boolean;
  /** How many signatures webhook-signature carried. */
  signatures: number;
  /** What the receiver answered (0: none, it hung). */
  answered: number;
  at: number;
}

export interface WebhookReceiver {
  url: string;
  port: number;
  received: ReceivedWebhook[];
  setSecrets(secrets: string[]): void;
  setBehaviour(behaviour: ReceiverBehaviour): void;
  close(): Promise<void>;
}

export interface WebhookReceiverOptions {
  port?: number;
  secrets?: string[];
  behaviour?: ReceiverBehaviour;
  /** Called for each delivery, after the receiver has decided its answer. */
  onReceived?: (webhook: ReceivedWebhook) => void;
  /** Keep only the last this many deliveries in `received` (default: all). */
  keep?: number;
}

const MAX_BODY = 1024 * 1024;

/** The body as text, refused past MAX_BODY (the sandbox's reader). */
async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRequestBody(req, MAX_BODY)).toString('utf8');
}

export async function startWebhookReceiver(options: WebhookReceiverOptions = {}): Promise<WebhookReceiver> {
  let verifiers = (options.secrets ?? []).map((s) => new Webhook(s));
  let behaviour: ReceiverBehaviour = options.behaviour ?? { kind: 'ok' };
  let flapCount = 0;
  const received: ReceivedWebhook[] = [];
  const sockets = new Set<Socket>();

  const nextAnswer = (): number | 'hang' => {
    switch (behaviour.kind) {
      case 'ok':
        return 204;
      case 'status':
        return behaviour.status;
      case 'hang':
        return 'hang';
      case 'flap': {
        const n = flapCount++ % (behaviour.okFor + behaviour.failFor);
        return n < behaviour.okFor ? 204 : 500;
      }
      case 'script':
        return behaviour.answers.shift() ?? 204;
    }
  };

  const control = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const body = req.method === 'GET' ? '' : await readBody(req);
    if (req.method === 'PUT' && path === '/_receiver/secrets') {
      verifiers = (JSON.parse(body) as string[]).map((s) => new Webhook(s));
    } else if (req.method === 'PUT' && path === '/_receiver/behaviour') {
      behaviour = JSON.parse(body) as ReceiverBehaviour;
      flapCount = 0;
    } else if (req.method === 'GET' && path === '/_receiver/received') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(received));
      return;
    } else {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(204).end();
  };

  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    try {
      if (path.startsWith('/_receiver/')) {
        await control(req, res, path);
        return;
      }
      const body = await readBody(req);
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      let event:
        | { id?: string; type?: string; data?: { object?: { id?: string; status?: string } } }
        | undefined;
      let verified = false;
      for (const verifier of verifiers) {
        try {
          event = verifier.verify(body, headers) as typeof event;
          verified = true;
          break;
        } catch {
          // not this secret
        }
      }
      if (!event) {
        try {
          event = JSON.parse(body) as typeof event;
        } catch {
          event = undefined;
        }
      }
      const answer = nextAnswer();
      const webhook: ReceivedWebhook = {
        id: headers['webhook-id'],
        type: event?.type ?? '',
        checkoutId: event?.data?.object?.id ?? '',
        checkoutStatus: event?.data?.object?.status ?? '',
        verified,
        signatures: headers['webhook-signature'].split(' ').filter(Boolean).length,
        answered: answer === 'hang' ? 0 : answer,
        at: Date.now(),
      };
      received.push(webhook);
      if (options.keep && received.length > options.keep) received.shift();
      options.onReceived?.(webhook);
      if (answer === 'hang') return; // the sender's timeout ends it
      res.writeHead(answer).end();
    } catch {
      if (!res.headersSent) res.writeHead(400).end();
    }
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/webhooks`,
    port,
    received,
    setSecrets(secrets) {
      verifiers = secrets.map((s) => new Webhook(s));
    },
    setBehaviour(next) {
      behaviour = next;
      flapCount = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
