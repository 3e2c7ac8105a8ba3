/**
 * The two pieces every claim loop of the worker is made of (the token poller, the webhook
 * dispatcher): a nap that work can cut short, and a writer that gathers results and writes them
 * in batches.
 */

export interface Nap {
  /** Waits `ms`, or less if `wake` is called meanwhile. */
  nap(ms: number): Promise<void>;
  /** Ends the current nap at once (nothing when none is running). */
  wake(): void;
}

export function createNap(): Nap {
  let wake: (() => void) | undefined;
  return {
    nap: (ms) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }).finally(() => {
        wake = undefined;
      }),
    wake: () => wake?.(),
  };
}

export interface BatchWriter<T> {
  /** Queues one item: written with others at most `flushMs` later, or at once when the batch is full. */
  add(item: T): void;
  /** Writes what is queued and waits for every write in progress. */
  close(): Promise<void>;
}

/**
 * Gathers items and hands them to `write` in batches of at most `maxBatch`, at most `flushMs`
 * after the first of a batch arrived. `write` must not reject: it handles (logs) its own failures.
 */
export function createBatchWriter<T>(
  flushMs: number,
  maxBatch: number,
  write: (batch: T[]) => Promise<void>,
): BatchWriter<T> {
  let batch: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  const writes = new Set<Promise<void>>();
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    const written = write(items);
    writes.add(written);
    void written.finally(() => writes.delete(written));
  };
  return {
    add(item) {
      batch.push(item);
      if (batch.length >= maxBatch) flush();
      else timer ??= setTimeout(flush, flushMs);
    },
    async close() {
      flush();
      await Promise.all(writes);
    },
  };
}
