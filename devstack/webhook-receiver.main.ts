/**
 * A webhook receiver in a process of its own (devstack/webhook-receiver.ts), for tests and chaos
 * runs that need a receiver they can kill: `tsx devstack/webhook-receiver.main.ts [--port N]`.
 * It prints `listening <port>` once it listens, then one JSON line per delivery; its control
 * routes (/_receiver/secrets, /_receiver/behaviour, /_receiver/received) steer it.
 * `WEBHOOK_RECEIVER_SECRETS` (whsec_ secrets, comma-separated) verifies from the first delivery
 * on: a receiver restarted on the same port needs no control call before it can verify.
 */
import { startWebhookReceiver } from './webhook-receiver.ts';

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
const secrets = (process.env.WEBHOOK_RECEIVER_SECRETS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const receiver = await startWebhookReceiver({
  port,
  secrets,
  keep: 200_000,
  onReceived: (webhook) => process.stdout.write(`${JSON.stringify(webhook)}\n`),
});
process.stdout.write(`listening ${receiver.port}\n`);
const stop = () => void receiver.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
