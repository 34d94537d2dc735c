/**
 * Group commit for the metadata write path. Write closures that arrive in the same event-loop
 * turn (concurrent manifest PUTs, tag moves, blob link commits) run in ONE `BEGIN IMMEDIATE …
 * COMMIT`, so they share one WAL append (and, under synchronous=FULL, one fsync) instead of
 * paying one each.
 *
 * - Arrival order: items run one after another in the order `run` was called, each seeing the
 *   writes of the items before it (the event hash chain stays linear).
 * - Isolation of failures: each item runs inside its own SAVEPOINT; an item that throws is
 *   rolled back alone and its caller gets its own error, the others still commit.
 * - "A 201 means durable": a caller's promise settles only after COMMIT has returned. If the
 *   transaction itself fails (BEGIN busy past busy_timeout, COMMIT I/O error, or an error that
 *   made SQLite abort the whole transaction), every item of the batch that had not already
 *   failed is rejected with that error: nothing of it was committed.
 *
 * Items must be synchronous (better-sqlite3): a closure returning a promise is refused.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

interface Item {
  fn: (tx: Tx) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** The transaction as a whole failed: no item of the batch was committed. */
export class BatchAbortedError extends Error {
  constructor(cause: unknown) {
    super(`group commit aborted: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export interface BatchStats {
  batches: number;
  items: number;
  largest: number;
}

export class WriteBatcher {
  private queue: Item[] = [];
  private scheduled = false;
  private readonly savepoint: Statement;
  private readonly release: Statement;
  private readonly rollbackTo: Statement;
  /** The connection's own synchronous level, restored after each batch; undefined: no raise. */
  private readonly baseLevel: number | undefined;
  /** Counters for tests and the benchmark notes (how much sharing happened). */
  readonly stats: BatchStats = { batches: 0, items: 0, largest: 0 };

  constructor(
    private readonly db: Db,
    /**
     * Commit group transactions with synchronous=FULL (the WAL is fsynced before COMMIT returns,
     * so what a 201 acknowledged survives power loss, not only a process crash). The connection
     * stays at its own level (NORMAL) for everything else; one fsync covers the whole batch.
     */
    fullSync = true,
    /** Upper bound of items per transaction: keeps one COMMIT (and the event loop) short. */
    private readonly maxBatch = 128,
  ) {
    const client = db.$client;
    const level = client.pragma('synchronous', { simple: true }) as number;
    // Only when it raises the level (a FULL or EXTRA connection is left alone).
    if (fullSync && level < 2) this.baseLevel = level;
    this.savepoint = client.prepare('SAVEPOINT write_item');
    this.release = client.prepare('RELEASE write_item');
    this.rollbackTo = client.prepare('ROLLBACK TO write_item');
  }

  /** Runs `fn` inside the next group transaction; resolves with its result after COMMIT. */
  run<T>(fn: (tx: Tx) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate (not a microtask): requests parsed in the same poll phase join this batch.
        setImmediate(() => this.flush());
      }
    });
  }

  /** Items waiting for the next batch. */
  get pending(): number {
    return this.queue.length;
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) this.commit(this.queue.splice(0, this.maxBatch));
  }

  private commit(batch: Item[]): void {
    const done: { item: Item; value: unknown }[] = [];
    const failed = new Set<Item>();
    const client = this.db.$client;
    // Not settable inside a transaction: switched before BEGIN and back after COMMIT. Through
    // exec, not a kept prepared statement: SQLite applies this pragma while compiling it.
    const raise = this.baseLevel !== undefined && !client.inTransaction;
    if (raise) client.exec('PRAGMA synchronous = FULL');
    try {
      this.db.transaction((tx) => {
        for (const item of batch) {
          this.savepoint.run();
          try {
            const value = item.fn(tx);
            if (value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function') {
              throw new TypeError('WriteBatcher items must be synchronous');
            }
            this.release.run();
            done.push({ item, value });
          } catch (err) {
            // Some errors (SQLITE_FULL, IOERR, …) make SQLite roll the whole transaction back:
            // then the earlier items are gone too, and the batch fails as one.
            if (!client.inTransaction) throw new BatchAbortedError(err);
            this.rollbackTo.run();
            this.release.run();
            failed.add(item);
            item.reject(err);
          }
        }
      });
    } catch (err) {
      // Nothing of the batch was committed: every item that had not failed on its own fails now.
      for (const item of batch) if (!failed.has(item)) item.reject(err);
      return;
    } finally {
      if (raise) client.exec(`PRAGMA synchronous = ${this.baseLevel}`);
    }
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    for (const d of done) d.item.resolve(d.value);
  }
}

const batchers = new WeakMap<Db, WriteBatcher>();

/** The one batcher of a database handle: every store writing through it shares its batches. */
export function writeBatcher(db: Db): WriteBatcher {
  let b = batchers.get(db);
  if (!b) batchers.set(db, (b = new WriteBatcher(db)));
  return b;
}
