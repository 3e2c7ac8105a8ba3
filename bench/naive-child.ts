/**
 * The naive comparison for `npm run bench` part (c): every pending checkout is one in-process
 * openid-client 6 `pollBackchannelAuthenticationGrant` loop (it sleeps the interval in-process
 * between polls), nothing durable. Run as a child so its CPU and memory are measured on their own.
 *
 * Env: Bankpay's configuration (BANKS_FILE etc., only the first bank is used), NAIVE_K (loops),
 * NAIVE_IDS_FILE (where the auth_req_ids are written), NAIVE_LOGIN (login hint).
 * Prints JSON lines on stdout: {"event":"setup","rss"} then {"event":"started","rss","k","ms"};
 * on SIGTERM it aborts every loop and exits.
 */
import { writeFileSync } from 'node:fs';
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { loadConfig } from '../src/config.ts';
import { createBankClient } from '../src/integrations/bank.client.ts';

const config = loadConfig(process.env);
const bank = config.banks[0]!;
const K = Number(process.env.NAIVE_K ?? '1000');
const login = process.env.NAIVE_LOGIN ?? 'alice';
const idsFile = process.env.NAIVE_IDS_FILE ?? '';
const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

// The bc-authorize requests go through Bankpay's own client (signed request objects); only the
// polling is the naive part.
const starter = createBankClient(bank);
const agent = new Agent({
  connect: { ...bank.tls },
  keepAliveTimeout: 30_000,
  connections: 32,
});
const mtlsFetch = (url: string, options: client.CustomFetchOptions): Promise<Response> =>
  undiciFetch(url, { ...(options as object), dispatcher: agent }) as unknown as Promise<Response>;
const oidc = await client.discovery(
  new URL(bank.issuer),
  bank.clientId,
  { use_mtls_endpoint_aliases: true, id_token_signed_response_alg: bank.idTokenSignedResponseAlg },
  client.TlsClientAuth(),
  { [client.customFetch]: mtlsFetch },
);
oidc[client.customFetch] = mtlsFetch;
say({ event: 'setup', rss: process.memoryUsage().rss });

const controller = new AbortController();
const ids: string[] = [];
let outcomes = 0;
const t0 = Date.now();
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(32, K) }, async () => {
    while (next < K) {
      const i = next++;
      const ack = await starter.startBackchannelAuthentication({
        loginHint: login,
        bindingMessage: `PAY-N${String(i % 100000).padStart(5, '0')}`,
        requestedExpiry: bank.requestedExpiry,
      });
      ids.push(ack.authReqId);
      void client
        .pollBackchannelAuthenticationGrant(
          oidc,
          { auth_req_id: ack.authReqId, expires_in: ack.expiresIn, interval: ack.interval ?? 5 },
          undefined,
          { signal: controller.signal },
        )
        .then(
          () => outcomes++,
          () => outcomes++,
        );
    }
  }),
);
if (idsFile) writeFileSync(idsFile, JSON.stringify(ids));
say({ event: 'started', rss: process.memoryUsage().rss, k: ids.length, ms: Date.now() - t0 });

process.on('SIGTERM', () => {
  controller.abort();
  say({ event: 'stopped', outcomes });
  void Promise.all([agent.close(), starter.close()]).finally(() => process.exit(0));
});
