/**
 * Where CPU time goes, from V8 profiles: the API's under the load of (a) and (b), the worker's
 * and this process's (the sandbox bank) during the windows of (c). A figure says how fast; these
 * say what to change to make it faster.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { type Bench, log } from './bench.context.ts';
import { plan } from './bench.options.ts';
import type { Load } from './cannon.ts';
import { round } from './lib.ts';
import type { HttpTargets } from './processes.ts';

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

export type ProfileSummary = ReturnType<typeof summarizeProfile>;

/** The V8 profiler of this process (node:inspector), for a window of a run. */
export async function startProfiler(): Promise<{ stop(): Promise<CpuProfile> }> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop() {
      const { profile } = (await post('Profiler.stop')) as { profile: CpuProfile };
      session.disconnect();
      return profile;
    },
  };
}

/**
 * Self time of a V8 .cpuprofile (a file, or a profile taken in this process), by package / source
 * file, and the top functions, in % of the busy (non-idle) samples taken after the first `skipMs`
 * (start-up and warm-up) and, with `untilMs`, before that time.
 */
export function summarizeProfile(
  file: string | CpuProfile,
  skipMs: number,
  untilMs = Number.POSITIVE_INFINITY,
) {
  const profile: CpuProfile = typeof file === 'string' ? JSON.parse(readFileSync(file, 'utf8')) : file;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<number, number>();
  let t = 0;
  for (const [i, id] of profile.samples.entries()) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < skipMs * 1000 || t > untilMs * 1000 || byId.get(id)?.functionName === '(idle)') continue;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const where = (url: string, fn: string) => {
    if (!url)
      return fn === '(garbage collector)' ? 'gc' : fn === '(idle)' || fn === '(program)' ? fn : 'native';
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) return m[1]!;
    if (url.startsWith('node:')) return 'node:internals';
    const src = /\/(src|sandbox|bench)\/(.+)$/.exec(url);
    return src ? `${src[1]}/${src[2]}` : url;
  };
  const byPlace = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const [id, t] of self) {
    const cf = byId.get(id);
    if (!cf) continue;
    const place = where(cf.url, cf.functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + t);
    const fn = `${cf.functionName || '(anonymous)'} ${place}:${cf.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + t);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${k} ${round((100 * v) / total, 1)}%`);
  return { byPlace: top(byPlace, 15), byFunction: top(byFn, 15) };
}

/** The .cpuprofile a child started with `--cpu-prof-dir=<dir>` wrote on exit, if any. */
export const profileFile = (dir: string) => {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  return file ? join(dir, file) : undefined;
};

/**
 * Where the time of a create or of a status read goes: one more 16-connection run against a
 * profiled API (it takes the place of `targets.api`), summarized from after its warm-up.
 */
export async function profileApi(
  bench: Bench,
  targets: HttpTargets,
  name: string,
  load: Load,
): Promise<ProfileSummary | undefined> {
  const profDir = join(bench.dir, `prof-${name}`);
  mkdirSync(profDir);
  const spawnedAt = Date.now();
  targets.api = await bench.processes.startApi({ QUEUE_PREFIX: 'ab' }, [
    '--cpu-prof',
    `--cpu-prof-dir=${profDir}`,
  ]);
  await load(16, plan.warmup);
  const skipMs = Date.now() - spawnedAt;
  await load(16, plan.duration);
  await bench.processes.stopChild(targets.api.child);
  const file = profileFile(profDir);
  if (!file) {
    log(`no CPU profile was written for ${name}`);
    return undefined;
  }
  return summarizeProfile(file, skipMs);
}
