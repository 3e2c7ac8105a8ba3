/**
 * `npx tsx bench/report.ts bench/results-full.json`: the raw numbers of a `npm run bench -- --json FILE`
 * run as Markdown tables (pasted into bench/RESULTS.md).
 */
import { readFileSync } from 'node:fs';

type Cannon = { rps: number; p50: number; p99: number; non2xx: number; errors: number };
type Cores = Record<string, number>;
type Lateness = { n: number; p50: number; p99: number; max: number; censored?: number };
interface Results {
  date: string;
  command: string;
  machine: Record<string, unknown>;
  create: Record<string, { api: Cannon; bare: Cannon; cores: Cores; pgPerRequest: Record<string, number> }>;
  status: Record<string, { api: Cannon; bare: Cannon; cores: Cores }>;
  queryCost?: Record<string, { perSecond: number; cpuUsPerQuery: number }>;
  pending: Record<
    string,
    {
      K: number;
      creation: string;
      pendingInWindow: number;
      allAwaitingSeconds: number;
      windowSeconds: number;
      pollsPerSecond: number;
      expectedPollsPerSecond: number;
      latenessMs: Lateness;
      cores: Cores;
      workerRssMaxMiB: number;
      redisUsedMiB: number;
      pgPerPoll: Record<string, number>;
      statementsPerPoll: { total: number; serverMsPerUnit: number };
      approval: { n: number; outcomes: Record<string, number>; latencyMs: Lateness };
      memory: { workerRssPerCheckout: number; redisPerCheckout: number; postgresPerCheckout: number };
    }
  >;
  naive: Record<
    string,
    {
      K: number;
      pollsPerSecondFromBankSample: number;
      expectedPollsPerSecond: number;
      cores: Cores;
      rssMiB: number;
      rssPerLoop: number;
      latenessMs: Lateness;
    }
  >;
}

const r = JSON.parse(readFileSync(process.argv[2] ?? 'bench/results-full.json', 'utf8')) as Results;
const out: string[] = [];
const ratio = (a: number, b: number) => (b ? (a / b).toFixed(3) : '-');
/** A markdown table: the header, its separator (as many cells as the header) and the rows. */
const table = (header: string[], rows: Array<Array<string | number>>) => {
  for (const cells of [header, header.map(() => '---'), ...rows]) out.push(`| ${cells.join(' | ')} |`);
};
const lateness = (l: Results['pending'][string]['latenessMs']) =>
  `${l.p50} / ${l.p99} / ${l.max} (${l.n}, ${l.censored ?? 0})`;
/** (a) and (b): the API next to the bare route, per connection count. */
const vsBare = (runs: Results['status'], extra?: { header: string; cell: (c: string) => string | number }) =>
  table(
    [
      'conns',
      'API req/s',
      'p50 ms',
      'p99 ms',
      'bare req/s',
      'bare p99 ms',
      'ratio',
      'API cores',
      'PG cores',
      ...(extra ? [extra.header] : []),
    ],
    Object.entries(runs).map(([c, x]) => [
      c,
      x.api.rps,
      x.api.p50,
      x.api.p99,
      x.bare.rps,
      x.bare.p99,
      ratio(x.api.rps, x.bare.rps),
      x.cores.api ?? '-',
      x.cores.postgres ?? '-',
      ...(extra ? [extra.cell(c)] : []),
    ]),
  );

out.push(`${r.command} — ${r.date} — ${JSON.stringify(r.machine)}`, '');
out.push('**(a) POST /v1/checkouts vs bare POST** (API process CPU in cores; Postgres per create)', '');
vsBare(r.create, { header: 'write tx/create', cell: (c) => r.create[c]?.pgPerRequest.writeXacts ?? '-' });
out.push('', '**(b) GET /v1/checkouts/{id} (clientSecret) vs bare GET**', '');
vsBare(r.status);
if (r.queryCost) {
  out.push('', '**(g) one query, 16 in flight, pool of 10**', '');
  table(
    ['query', 'per second', 'client CPU µs per query'],
    Object.entries(r.queryCost).map(([k, v]) => [k, v.perSecond, v.cpuUsPerQuery]),
  );
}
out.push('', '**(c)/(d)/(e) K checkouts awaiting approval, interval 5 s, one worker (concurrency 50)**', '');
table(
  [
    'K',
    'created via',
    'all awaiting after s',
    'polls/s (needed)',
    'lateness p50 / p99 / max ms (n, censored)',
    'worker cores',
    'PG cores',
    'Redis cores',
    'bank+bench cores',
    'machine busy cores',
    'write tx / statements / PG server ms per poll',
    'approval→succeeded p50 / p99 ms (n)',
    'per pending: worker RSS / Redis / PG bytes',
    'worker RSS max MiB',
    'Redis MiB',
  ],
  Object.values(r.pending).map((x) => [
    x.K,
    x.creation,
    x.allAwaitingSeconds,
    `${x.pollsPerSecond} (${x.expectedPollsPerSecond})`,
    lateness(x.latenessMs),
    x.cores.worker ?? '-',
    x.cores.postgres ?? '-',
    x.cores.redis ?? '-',
    x.cores.bench ?? '-',
    x.cores.machine ?? '-',
    `${x.pgPerPoll.writeXacts} / ${x.statementsPerPoll.total} / ${x.statementsPerPoll.serverMsPerUnit}`,
    `${x.approval.latencyMs.p50} / ${x.approval.latencyMs.p99} (${x.approval.latencyMs.n}/${x.approval.n}) ${JSON.stringify(x.approval.outcomes)}`,
    `${x.memory.workerRssPerCheckout} / ${x.memory.redisPerCheckout} / ${x.memory.postgresPerCheckout}`,
    x.workerRssMaxMiB,
    x.redisUsedMiB,
  ]),
);
out.push(
  '',
  '**(f) naive: one openid-client `pollBackchannelAuthenticationGrant` loop per checkout, one process**',
  '',
);
table(
  [
    'K',
    'polls/s (needed)',
    'lateness p50 / p99 / max ms (n, censored)',
    'process cores',
    'bank+bench cores',
    'RSS MiB',
    'RSS per loop B',
  ],
  Object.values(r.naive).map((x) => [
    x.K,
    `~${x.pollsPerSecondFromBankSample} (${x.expectedPollsPerSecond})`,
    lateness(x.latenessMs),
    x.cores.naive ?? '-',
    x.cores.bench ?? '-',
    x.rssMiB,
    x.rssPerLoop,
  ]),
);
console.log(out.join('\n'));
