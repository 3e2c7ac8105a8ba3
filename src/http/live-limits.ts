/**
 * How many streams and held reads stay open at once, per credential and per API process, so that a
 * browser tab left open or a script that opens streams in a loop cannot hold every connection and
 * timer of the process. Counted in memory, per process: N API processes allow N times as many.
 * Over a limit: 429 problem+json `live_limit_reached` with `Retry-After`.
 */
import { ProblemError } from './problem.ts';

export type LiveKind = 'stream' | 'held_read';

export interface LiveLimitSettings {
  /** Open streams per process. */
  maxStreams: number;
  /** Held reads per process. */
  maxHeldReads: number;
}

/** When a slot may free up: a held read lasts at most 30 s, a stream until its checkout ends. */
const RETRY_AFTER_SECONDS = 5;

const WHAT: Record<LiveKind, string> = { stream: 'open streams', held_read: 'held reads' };

/** The open streams and held reads of one process, by credential. */
export class LiveLimits {
  readonly #settings: LiveLimitSettings;
  readonly #open: Record<LiveKind, number> = { stream: 0, held_read: 0 };
  readonly #byCredential = new Map<string, number>();

  constructor(settings: LiveLimitSettings) {
    this.#settings = settings;
  }

  /** Open streams and held reads now, in this process. */
  get open(): Readonly<Record<LiveKind, number>> {
    return this.#open;
  }

  /**
   * Takes a slot of `kind` for `credential` (a stable key: the API key's id, or the checkout a
   * clientSecret opens), allowing at most `perCredential` of that kind for it. Returns the
   * function that gives the slot back (idempotent). Throws ProblemError `live_limit_reached`
   * (429) when this process or this credential is at its limit.
   */
  acquire(kind: LiveKind, credential: string, perCredential: number): () => void {
    const processMax = kind === 'stream' ? this.#settings.maxStreams : this.#settings.maxHeldReads;
    if (this.#open[kind] >= processMax) {
      throw new ProblemError(
        'live_limit_reached',
        `This API process has ${processMax} ${WHAT[kind]} open, its limit; retry in ${RETRY_AFTER_SECONDS} s`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    const key = `${kind}:${credential}`;
    const held = this.#byCredential.get(key) ?? 0;
    if (held >= perCredential) {
      throw new ProblemError(
        'live_limit_reached',
        `This credential has ${perCredential} ${WHAT[kind]} open, its limit; close one or retry in ${RETRY_AFTER_SECONDS} s`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    this.#open[kind] += 1;
    this.#byCredential.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open[kind] -= 1;
      const left = (this.#byCredential.get(key) ?? 1) - 1;
      if (left > 0) this.#byCredential.set(key, left);
      else this.#byCredential.delete(key);
    };
  }
}
