/**
 * A webhook receiver in its own process (devstack/webhook-receiver.main.ts): a real HTTP server
 * that verifies each delivery with `standardwebhooks`, steered over its control routes, and
 * killable like a merchant's server that goes down.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { ReceivedWebhook, ReceiverBehaviour } from '../../devstack/webhook-receiver.ts';

export interface ReceiverProcess {
  url: string;
  port: number;
  setSecrets(secrets: string[]): Promise<void>;
  setBehaviour(behaviour: ReceiverBehaviour): Promise<void>;
  received(): Promise<ReceivedWebhook[]>;
  /** Waits until `predicate` holds of what arrived (polling), or throws after `timeoutMs`. */
  waitFor(
    predicate: (received: ReceivedWebhook[]) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedWebhook[]>;
  kill(): Promise<void>;
}

export async function startReceiverProcess(port = 0): Promise<ReceiverProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'devstack/webhook-receiver.main.ts', '--port', String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const listening = await new Promise<number>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      const match = /listening (\d+)/.exec(out);
      if (match) {
        child.stdout?.off('data', onData);
        child.stdout?.resume(); // its delivery lines are read over the control route instead
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`receiver exited (${code}): ${stderr}`)));
  });
  const base = `http://127.0.0.1:${listening}`;
  const put = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, { method: 'PUT', body: JSON.stringify(body) });
    if (res.status !== 204) throw new Error(`receiver ${path}: ${res.status}`);
  };
  const received = async () =>
    (await (await fetch(`${base}/_receiver/received`)).json()) as ReceivedWebhook[];
  return {
    url: `${base}/webhooks`,
    port: listening,
    setSecrets: (secrets) => put('/_receiver/secrets', secrets),
    setBehaviour: (behaviour) => put('/_receiver/behaviour', behaviour),
    received,
    async waitFor(predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: ReceivedWebhook[] = [];
      while (Date.now() < deadline) {
        last = await received();
        if (predicate(last)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the receiver did not get what was awaited; it has: ${JSON.stringify(last)}`);
    },
    async kill() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
