/**
 * The sandbox bank: a development and test bank for Bankpay's CIBA flow.
 *
 *   https://localhost:{port}/{realm}/...   the OpenID Provider (oidc-provider 9; CIBA, mTLS)
 *   https://localhost:{port}/api/...       the payment API (DESIGN.md §4)
 *   http://127.0.0.1:{appPort}/            the bank app page (the customer's approval device)
 *   http://127.0.0.1:{appPort}/control     the control API (test mode only)
 *
 * One HTTPS listener asks every client for a certificate but lets the handshake succeed without
 * one (discovery and JWKS are public); the OP's mTLS endpoints and the payment API require it.
 *
 * The bank is given the paths of its certificate files and makes none itself: whoever starts it
 * (devstack/, the sandbox's own tests) owns the PKI, so a bank and its clients always trust the
 * same files.
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
import { MapStore } from './adapter.ts';
import { createBankApp } from './bank-app.ts';
import { buildClients, CLIENT_IDS } from './clients.ts';
import { createControlApi } from './control.ts';
import { CustomerDirectory } from './customers.ts';
import { createDecider } from './decisions.ts';
import { FaultBook } from './faults.ts';
import { sendError, sendJson } from './http.ts';
import { IdTokenMinter } from './id-token.ts';
import { PostgresJournal } from './journal.ts';
import { generateOpKeys, type OpKeys, publicJwkFromPem } from './keys.ts';
import { createOpFront, mtlsEndpointAliases } from './op-front.ts';
import { createPaymentsApi, PaymentLedger } from './payments.ts';
import { createPingDelivery, notificationEndpoint } from './ping.ts';
import { type Arrival, createBankProvider, type Provider } from './provider.ts';
import { RequestRegistry } from './requests.ts';

/** PEM files the bank reads at start (devstack/certificates.ts makes them for development). */
export interface SandboxCertificates {
  /** The CA the bank's server certificate chains to and client certificates must chain to. */
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** The public keys the shop's request objects are verified with: RSA (PS256) and EC P-256 (ES256). */
  signingPublicKey: string;
  es256PublicKey: string;
}

export interface SandboxBankOptions {
  host?: string; // default 127.0.0.1
  port?: number; // bank HTTPS port; 0 = random
  appPort?: number; // bank-app/control HTTP port; 0 = random
  certificates: SandboxCertificates;
  realm?: string; // default 'master' → issuer https://localhost:{port}/master
  testMode?: boolean; // enables the control API; default false
  merchantName?: string; // optional, for display only
  /** Host name in the issuer and payment API URLs (default localhost; e.g. `sandbox` in Docker Compose). */
  publicHost?: string;
  /**
   * The `interval` (integer seconds ≥ 1, CIBA Core §7.3) every bc-authorize acknowledgement
   * carries unless the customer's fault script sets one; default none (the client's 5 s default
   * applies, CIBA Core §7.3). Tests set 1 so polling clients do not wait 5 s per poll.
   */
  defaultInterval?: number;
  /**
   * Where the bank keeps its state across restarts (journal.ts): a PostgreSQL URL and a schema of
   * its own (default `sandbox_bank`). Without it everything lives in memory and a restart forgets
   * every pending request, so their polls answer `invalid_grant`.
   */
  database?: { url: string; schema?: string };
  /**
   * The shop's CIBA client_notification_endpoint (e.g. http://127.0.0.1:3000/ciba/notify/sandbox):
   * registers the ping-mode client `shop-ping` (ping.ts). https, or http on a loopback address.
   */
  notificationEndpoint?: string;
}

export interface SandboxBank {
  issuer: string; // https://localhost:{port}/master
  paymentsApiUrl: string; // https://localhost:{port}/api
  appUrl: string; // http://127.0.0.1:{appPort}/  (bank app page)
  controlUrl: string | null; // http://127.0.0.1:{appPort}/control when testMode
  /** The ports it listens on (a restart on the same ports keeps the issuer and the banks file). */
  port: number;
  appPort: number;
  /** `ping` is null unless the bank was given a notificationEndpoint. */
  clients: { tlsClientAuth: 'shop'; privateKeyJwt: 'shop-jwt'; ping: 'shop-ping' | null };
  close(): Promise<void>; // closes everything, quickly (destroy sockets)
}

const SWEEP_INTERVAL_MS = 30_000;

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Remembers open sockets so close() can destroy keep-alive and half-open TLS connections. */
function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  // 'connection' is the TCP socket, also for HTTPS: destroying it ends unfinished handshakes too.
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  });
}

export async function startSandboxBank(o: SandboxBankOptions): Promise<SandboxBank> {
  const host = o.host ?? '127.0.0.1';
  const realm = o.realm ?? 'master';
  if (!/^[A-Za-z0-9._~-]+$/.test(realm)) throw new Error(`invalid realm ${JSON.stringify(realm)}`);
  if (
    o.defaultInterval !== undefined &&
    (!Number.isInteger(o.defaultInterval) || o.defaultInterval < 1 || o.defaultInterval > 3600)
  ) {
    throw new Error(
      `defaultInterval must be an integer number of seconds (1-3600), got ${o.defaultInterval}`,
    );
  }
  const certs = o.certificates;
  const notifications = o.notificationEndpoint ? notificationEndpoint(o.notificationEndpoint) : null;

  // Listen first: the issuer (and so the provider's configuration) depends on the actual port.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) =>
    sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'starting' });
  const bankServer = createHttpsServer(
    {
      cert: readFileSync(certs.serverCert),
      key: readFileSync(certs.serverKey),
      ca: readFileSync(certs.caCert),
      // RFC 8705 §2: the certificate is requested in the handshake; whether it is required and
      // trusted is decided per endpoint (certificateAuthorized, the payment API).
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => handle(req, res),
  );
  const bankSockets = trackSockets(bankServer);
  let appHandle: typeof handle = handle;
  const appServer = createHttpServer((req, res) => appHandle(req, res));
  const appSockets = trackSockets(appServer);

  const port = await listen(bankServer, o.port ?? 0, host);
  let appPort: number;
  try {
    appPort = await listen(appServer, o.appPort ?? 0, host);
  } catch (error) {
    await closeServer(bankServer, bankSockets);
    throw error;
  }

  const origin = `https://${o.publicHost ?? 'localhost'}:${port}`;
  const issuer = `${origin}/${realm}`;
  const paymentsApiUrl = `${origin}/api`;
  const appUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${appPort}/`;
  const controlUrl = o.testMode ? `http://${host}:${appPort}/control` : null;

  let journal: PostgresJournal | undefined;
  try {
    journal = o.database ? await PostgresJournal.open(o.database.url, o.database.schema) : undefined;
  } catch (error) {
    await Promise.all([closeServer(bankServer, bankSockets), closeServer(appServer, appSockets)]);
    throw error;
  }
  const store = new MapStore(journal);
  const customers = new CustomerDirectory(journal);
  const requests = new RequestRegistry(journal);
  const faults = new FaultBook();
  const ledger = new PaymentLedger(journal);
  const arrivals = new WeakMap<IncomingMessage, Arrival>();
  // The OP's keys are kept with the rest: tokens issued before a restart still verify after it.
  let opKeys = (await journal?.load<OpKeys>('keys'))?.[0]?.data;
  if (!opKeys) {
    opKeys = await generateOpKeys();
    await journal?.put('keys', 'op', opKeys);
  }
  if (journal) {
    store.restore(await journal.load('oidc'));
    requests.restore(await journal.load('request'));
    customers.restore(await journal.load('customer'));
    ledger.restore(await journal.load('payment'));
  }
  const clients = buildClients(
    {
      rsa: await publicJwkFromPem(certs.signingPublicKey, 'PS256'),
      ec: await publicJwkFromPem(certs.es256PublicKey, 'ES256'),
    },
    o.merchantName,
    notifications?.registered,
  );
  const pings = createPingDelivery({
    deliverTo: notifications?.deliverTo ?? null,
    registered: notifications?.registered ?? null,
    requests,
    faults,
  });
  const clientIds = { ...CLIENT_IDS, ping: notifications ? CLIENT_IDS.ping : null };

  const provider: Provider = await createBankProvider({
    issuer,
    paymentsApiUrl,
    mtlsEndpointAliases: mtlsEndpointAliases(issuer),
    signingKeys: opKeys.privateJwks,
    clients,
    merchantName: o.merchantName,
    store,
    requests,
    faults,
    arrivals,
    customers,
    idTokens: new IdTokenMinter(opKeys),
    defaultInterval: o.defaultInterval,
    fetch: pings.fetch,
  });
  const handleOp = createOpFront({
    realmPath: `/${realm}`,
    faults,
    requests,
    arrivals,
    providerCallback: provider.callback(),
  });
  const handlePayments = createPaymentsApi({
    issuer,
    paymentsApiUrl,
    jwks: opKeys.publicJwks,
    ledger,
    faults,
  });
  const decider = createDecider(provider, requests, paymentsApiUrl);

  handle = (req, res) => {
    (async () => {
      if (await handlePayments(req, res)) return;
      if (await handleOp(req, res)) return;
      sendJson(res, 404, {
        error: 'not_found',
        error_description: `try ${issuer}/.well-known/openid-configuration`,
      });
    })().catch((error: unknown) => sendError(res, error));
  };

  const info = () => ({
    issuer,
    paymentsApiUrl,
    appUrl,
    controlUrl,
    clients: clientIds,
    notificationEndpoint: notifications?.deliverTo ?? null,
    defaultInterval: o.defaultInterval ?? null,
    counts: {
      customers: customers.list().length,
      requests: requests.size,
      payments: ledger.list().length,
      storedEntries: store.count(),
      pendingBackchannelRequests: store.count('BackchannelAuthenticationRequest'),
    },
  });
  const control = o.testMode
    ? createControlApi({ info, requests, faults, ledger, decider, customers })
    : null;
  appHandle = createBankApp({ bankName: 'Sandbox Bank', requests, decider, customers, control });

  const sweeper = setInterval(() => {
    store.sweep();
    requests.sweep();
    journal?.sweep().catch(() => {}); // the next sweep tries again
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();

  let closing: Promise<void> | undefined;
  return {
    issuer,
    paymentsApiUrl,
    appUrl,
    controlUrl,
    port,
    appPort,
    clients: clientIds,
    close() {
      closing ??= (async () => {
        clearInterval(sweeper);
        await Promise.all([closeServer(bankServer, bankSockets), closeServer(appServer, appSockets)]);
        await pings.settled();
        await journal?.close();
      })();
      return closing;
    },
  };
}
