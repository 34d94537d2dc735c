/**
 * Group commit for the metadata write path. Write closures that arrive in the same event-loop
 * turn (concurrent manifest PUTs, tag moves, blob link commits) run in ONE `BEGIN IMMEDIATE …
 * COMMIT`, so they share one WAL append and one fsync instead of paying one each.
 *
 * - Arrival order: items run one after another in the order `run` was called, each seeing the
 *   writes of the items before it (the event hash chain stays linear).
 * - Isolation of failures: each item runs inside its own SAVEPOINT; an item that throws is
 *   rolled back alone and its caller gets its own error, the others still commit.
 * - "A 201 means durable", power loss included: a caller's promise resolves only after COMMIT
 *   and an fsync of the WAL that covers it (see `durability`). If the transaction itself fails
 *   (BEGIN busy past busy_timeout, COMMIT I/O error, or an error that made SQLite abort the
 *   whole transaction), every item of the batch that had not already failed is rejected with
 *   that error: nothing of it was committed.
 *
 * Items must be synchronous (better-sqlite3): a closure returning a promise is refused.
 */
import { open, type FileHandle } from 'node:fs/promises';
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
  /** WAL fsyncs done for group commits (`durability: 'wal-fsync'`). */
  syncs: number;
}

/**
 * How a batch is made durable before its callers hear of it:
 * - `wal-fsync` (default): COMMIT at the connection's level (NORMAL: no fsync inside SQLite),
 *   then fdatasync the WAL file on the thread pool and resolve after it. WAL frames are only
 *   appended (or, after a checkpoint that synced the database, rewritten from the start), so an
 *   fsync that starts after a COMMIT returned covers that commit and every earlier one. The
 *   event loop keeps serving while the disk syncs, and batches committed meanwhile share the
 *   next fsync. Writes are visible to readers a moment before they are durable; no one is told
 *   "created" before they are.
 * - `full`: synchronous=FULL for the batch's COMMIT (SQLite fsyncs inside COMMIT, on the
 *   event loop).
 * - `commit`: resolve after COMMIT at the connection's level (NORMAL: survives a process crash,
 *   not a power loss).
 */
export type Durability = 'wal-fsync' | 'full' | 'commit';

/** fdatasync of a file by path; a missing WAL was checkpointed (and synced) and removed by SQLite. */
async function syncFile(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

export class WriteBatcher {
  private queue: Item[] = [];
  private scheduled = false;
  private readonly savepoint: Statement;
  private readonly release: Statement;
  private readonly rollbackTo: Statement;
  /** `full`: the connection's own synchronous level, restored after each batch. */
  private readonly baseLevel: number | undefined;
  /** `wal-fsync`: the WAL file to sync, committed items waiting for it, whether a sync runs. */
  private readonly walPath: string | undefined;
  private unsynced: { item: Item; value: unknown }[] = [];
  /** The WAL kept open while the connection is: SQLite removes the file only when the last connection closes. */
  private walHandle: FileHandle | undefined;
  private syncing = false;
  /** Counters for tests and the benchmark notes (how much sharing happened). */
  readonly stats: BatchStats = { batches: 0, items: 0, largest: 0, syncs: 0 };

  constructor(
    private readonly db: Db,
    durability: Durability = 'wal-fsync',
    /** Upper bound of items per transaction: keeps one COMMIT (and the event loop) short. */
    private readonly maxBatch = 128,
  ) {
    const client = db.$client;
    const level = client.pragma('synchronous', { simple: true }) as number;
    const wal = client.pragma('journal_mode', { simple: true }) === 'wal' && !client.memory;
    // Nothing to add when SQLite already syncs every commit (a FULL or EXTRA connection).
    if (level < 2 && durability === 'full') this.baseLevel = level;
    if (level < 2 && durability === 'wal-fsync' && wal) this.walPath = `${client.name}-wal`;
    this.savepoint = client.prepare('SAVEPOINT write_item');
    this.release = client.prepare('RELEASE write_item');
    this.rollbackTo = client.prepare('ROLLBACK TO write_item');
  }

  /** Runs `fn` inside the next group transaction; resolves with its result once that is committed and durable. */
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
    if (this.walPath === undefined) {
      for (const d of done) d.item.resolve(d.value);
      return;
    }
    this.unsynced.push(...done);
    this.syncWal(this.walPath);
  }

  private async datasyncWal(path: string): Promise<void> {
    if (!this.db.$client.open) {
      // Closed since: the file may be gone or replaced; sync what the path names now.
      const fh = this.walHandle;
      this.walHandle = undefined;
      await fh?.close();
      return syncFile(path);
    }
    if (!this.walHandle) {
      try {
        this.walHandle = await open(path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
    }
    await this.walHandle.datasync();
  }

  /** One fsync at a time; what commits while it runs waits for the next, which covers it all. */
  private syncWal(path: string): void {
    if (this.syncing || this.unsynced.length === 0) return;
    this.syncing = true;
    const group = this.unsynced;
    this.unsynced = [];
    const settle = (err?: unknown): void => {
      this.stats.syncs++;
      this.syncing = false;
      // Committed but not known to be on disk: the caller is not told it is (pushes are idempotent, it may retry).
      for (const d of group) if (err === undefined) d.item.resolve(d.value);
      else d.item.reject(err);
      this.syncWal(path);
    };
    this.datasyncWal(path).then(() => settle(), settle);
  }
}

const batchers = new WeakMap<Db, WriteBatcher>();

/** The one batcher of a database handle: every store writing through it shares its batches. */
export function writeBatcher(db: Db): WriteBatcher {
  let b = batchers.get(db);
  if (!b) batchers.set(db, (b = new WriteBatcher(db)));
  return b;
}
