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
 * - A failed WAL sync is final (`fail`): every later write gets a retryable 503 until restart.
 * - Batches are bounded by items and by declared payload bytes, one batch per event-loop turn.
 * - `durableSeq()`: the event seq up to which the log is on disk, for readers that publish events.
 *
 * Items must be synchronous (better-sqlite3): a closure returning a promise is refused.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Statement } from 'better-sqlite3';
import type { Logger } from 'pino';
import { ociError, type AppError } from '../errors/catalogue.js';
import { isPostgres, type Db } from './db.js';
import { notDurableError, syncFile } from './durability.js';
import type { PostgresDatabase } from './pg/facade.js';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

interface Item {
  fn: (tx: Tx) => unknown;
  bytes: number;
  /** Answered after the WAL sync (the default); false: at COMMIT, as a transaction of its own would be. */
  durable: boolean;
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
  /** Most payload bytes in one transaction. */
  largestBytes: number;
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
 *   "created" before they are, and the event log is published only up to `durableSeq()`.
 * - `full`: synchronous=FULL for the batch's COMMIT (SQLite fsyncs inside COMMIT, on the
 *   event loop).
 * - `commit`: resolve after COMMIT at the connection's level (NORMAL: survives a process crash,
 *   not a power loss).
 */
export type Durability = 'wal-fsync' | 'full' | 'commit';

export interface BatcherOptions {
  durability?: Durability;
  /** Upper bound of items per transaction. */
  maxItems?: number;
  /**
   * Upper bound of payload bytes per transaction (the size each `run` declares); an item larger
   * than this runs alone. Keeps one synchronous transaction (and the event loop) short.
   */
  maxBytes?: number;
  /** The WAL sync (default: fdatasync of the WAL file). A seam for tests that need a failing disk. */
  sync?: (walPath: string) => Promise<void>;
}

/** A reader waiting for the watermark to pass the head it saw. */
type Waiter = (seq: number) => void;

export class WriteBatcher {
  private queue: Item[] = [];
  private scheduled = false;
  private readonly savepoint: Statement;
  private readonly release: Statement;
  private readonly rollbackTo: Statement;
  private readonly maxItems: number;
  private readonly maxBytes: number;
  /** `full`: the connection's own synchronous level, restored after each batch. */
  private readonly baseLevel: number | undefined;
  /** The WAL file to sync (`wal-fsync`, `full`): undefined when there is nothing to sync (memory, rollback journal, `commit`). */
  private readonly walPath: string | undefined;
  /** `wal-fsync`: callers are answered only after a WAL sync that started after their commit. */
  private readonly syncCommits: boolean;
  private readonly doSync: (walPath: string) => Promise<void>;
  /** PostgreSQL: a failed barrier is a lost connection, not a lost write: callers get a retryable 503, later writes go on. */
  private readonly pg: boolean = false;
  private readonly commitMode: Statement | undefined;
  private unsynced: { item: Item; value: unknown }[] = [];
  /** The WAL kept open while the connection is: SQLite removes the file only when the last connection closes. */
  private walHandle: FileHandle | undefined;
  private syncing = false;
  /** Highest event seq committed before a WAL sync that completed started: on disk. */
  private durable = 0;
  private waiters: Waiter[] = [];
  private headSeq: Statement<[], number> | undefined;
  private failure: AppError | undefined;
  private log: Pick<Logger, 'error'> | undefined;
  /** Counters for tests and the benchmark notes (how much sharing happened). */
  readonly stats: BatchStats = { batches: 0, items: 0, largest: 0, largestBytes: 0, syncs: 0 };

  constructor(
    private readonly db: Db,
    opts: BatcherOptions = {},
  ) {
    const durability = opts.durability ?? 'wal-fsync';
    this.maxItems = opts.maxItems ?? 128;
    this.maxBytes = opts.maxBytes ?? 8 * 1024 * 1024;
    this.doSync = opts.sync ?? ((path) => this.datasyncWal(path));
    const client = db.$client;
    if (isPostgres(db)) {
      // PostgreSQL: the batch commits without waiting for the WAL flush and an asynchronous
      // barrier (pg/commit-barrier.ts) stands in for the fdatasync; 'full' and 'commit' are
      // PostgreSQL's own synchronous COMMIT.
      this.pg = true;
      if (durability === 'wal-fsync') {
        const barrier = (client as unknown as PostgresDatabase).commitBarrier();
        this.walPath = 'postgres';
        this.syncCommits = true;
        this.doSync = opts.sync ?? (() => barrier.wait());
      } else this.syncCommits = false;
      this.savepoint = client.prepare('SAVEPOINT write_item');
      this.release = client.prepare('RELEASE write_item');
      this.rollbackTo = client.prepare('ROLLBACK TO write_item');
      // Sessions commit asynchronously (pg/bridge.ts SESSION_SETUP); 'full' flushes inside COMMIT.
      if (durability === 'full') this.commitMode = client.prepare('SET LOCAL synchronous_commit = on');
      return;
    }
    const level = client.pragma('synchronous', { simple: true }) as number;
    const wal = client.pragma('journal_mode', { simple: true }) === 'wal' && !client.memory;
    // Nothing to add when SQLite already syncs every commit (a FULL or EXTRA connection).
    if (level < 2 && durability === 'full') this.baseLevel = level;
    if (level < 2 && durability !== 'commit' && wal) this.walPath = `${client.name}-wal`;
    this.syncCommits = this.walPath !== undefined && durability === 'wal-fsync';
    this.savepoint = client.prepare('SAVEPOINT write_item');
    this.release = client.prepare('RELEASE write_item');
    this.rollbackTo = client.prepare('ROLLBACK TO write_item');
  }

  /** Where the one error-level line about a failed sync goes (the server's logger). */
  logTo(log: Pick<Logger, 'error'>): void {
    this.log = log;
  }

  /** Set once a WAL sync failed: the process must be restarted (SQLite recovers the WAL then). */
  get failed(): AppError | undefined {
    return this.failure;
  }

  /**
   * Runs `fn` inside the next group transaction; resolves with its result once that is committed
   * and durable. `bytes`: the payload size the item writes (counts towards `maxBytes`).
   * `durable: false`: resolves once committed, without waiting for the WAL sync — for writes that
   * would otherwise be a transaction of their own at the connection's level (NORMAL: no fsync),
   * such as an upload session's row or lease: they share the batch's COMMIT instead of paying one.
   */
  run<T>(fn: (tx: Tx) => T, bytes = 0, durable = true): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, bytes, durable, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Items waiting for the next batch. */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * The durable-sequence watermark: the highest event seq that is on disk. Readers that tell the
   * outside world about events (webhooks, checkpoints, the events API) read only up to it, so
   * nothing they publish can be erased by a power loss and its seq reused. Writes from outside
   * the batcher (other transactions, other processes) are covered too: when the log's head is
   * past the watermark, a WAL sync is started (or the one in flight is followed by another), so
   * the answer lags the head by at most one or two fdatasyncs. Stops moving after a failed sync.
   */
  durableSeq(): Promise<number> {
    const client = this.db.$client;
    if (this.failure || !client.open) return Promise.resolve(this.durable);
    const head = this.head();
    if (this.walPath === undefined || head <= this.durable) return Promise.resolve(Math.max(head, this.durable));
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.syncWal();
    });
  }

  private head(): number {
    this.headSeq ??= this.db.$client.prepare<[], number>('SELECT coalesce(max(seq), 0) FROM events').pluck();
    return this.headSeq.get() ?? 0;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate (not a microtask): requests parsed in the same poll phase join this batch.
    setImmediate(() => this.flush());
  }

  /** One batch per event-loop turn: requests get served between two large batches. */
  private flush(): void {
    this.scheduled = false;
    if (this.failure) {
      for (const item of this.queue.splice(0)) item.reject(this.failure);
      return;
    }
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < this.maxItems) {
      const size = this.queue[n]!.bytes;
      if (n > 0 && bytes + size > this.maxBytes) break;
      bytes += size;
      n++;
    }
    if (n > 0) this.commit(this.queue.splice(0, n), bytes);
    if (this.queue.length > 0) this.schedule();
  }

  private commit(batch: Item[], bytes: number): void {
    const done: { item: Item; value: unknown }[] = [];
    const failed = new Set<Item>();
    const client = this.db.$client;
    // Not settable inside a transaction: switched before BEGIN and back after COMMIT. Through
    // exec, not a kept prepared statement: SQLite applies this pragma while compiling it.
    const raise = this.baseLevel !== undefined && !client.inTransaction;
    if (raise) client.exec('PRAGMA synchronous = FULL');
    try {
      // PostgreSQL: every statement is a round trip. A lone item needs no savepoint (its failure
      // rolls the whole transaction back, which is all it held).
      const savepoints = !(this.pg && batch.length === 1);
      this.db.transaction((tx) => {
        this.commitMode?.run();
        if (this.pg) (client as unknown as PostgresDatabase).barrierCovered = this.syncCommits;
        // PostgreSQL: an item's RELEASE and the next item's SAVEPOINT share one round trip.
        let open = false;
        for (const [i, item] of batch.entries()) {
          if (!savepoints) {
            done.push({ item, value: this.runItem(item, tx) });
            continue;
          }
          if (!open) this.savepoint.run();
          open = false;
          try {
            const value = this.runItem(item, tx);
            if (this.pg && i < batch.length - 1) {
              client.exec('RELEASE write_item; SAVEPOINT write_item');
              open = true;
            } else this.release.run();
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
      // `full`: SQLite's own fsync inside COMMIT failed: the same rule as a failed WAL sync.
      const code = (err as { code?: string }).code ?? ((err as { cause?: { code?: string } }).cause?.code);
      if (code === 'SQLITE_IOERR_FSYNC') this.fail(err, []);
      return;
    } finally {
      if (raise) client.exec(`PRAGMA synchronous = ${this.baseLevel}`);
      if (this.pg) (client as unknown as PostgresDatabase).barrierCovered = false;
    }
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    this.stats.largestBytes = Math.max(this.stats.largestBytes, bytes);
    if (!this.syncCommits) {
      for (const d of done) d.item.resolve(d.value);
      return;
    }
    const durable = done.filter((d) => d.item.durable);
    for (const d of done) if (!d.item.durable) d.item.resolve(d.value);
    if (durable.length === 0) return;
    this.unsynced.push(...durable);
    this.syncWal();
  }

  private runItem(item: Item, tx: Tx): unknown {
    const value = item.fn(tx);
    if (value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function') {
      throw new TypeError('WriteBatcher items must be synchronous');
    }
    return value;
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

  /**
   * One sync at a time; what commits while it runs waits for the next, which covers it all.
   * The head seq is read before the sync starts: every commit up to it is in the WAL (or already
   * checkpointed and synced by SQLite), whichever connection or process wrote it.
   */
  private syncWal(): void {
    const path = this.walPath;
    if (path === undefined || this.failure || this.syncing) return;
    if (this.unsynced.length === 0 && this.waiters.length === 0) return;
    this.syncing = true;
    const group = this.unsynced;
    this.unsynced = [];
    // Readers asking from now on wait for the next sync: this one may have read the head before their commit.
    const asked = this.waiters;
    this.waiters = [];
    let upTo: number;
    try {
      upTo = this.db.$client.open ? this.head() : this.durable;
    } catch {
      upTo = this.durable; // no events table (a bare database): nothing for the watermark
    }
    const settle = (err?: unknown): void => {
      this.stats.syncs++;
      this.syncing = false;
      if (err !== undefined) {
        for (const w of asked) w(this.durable);
        if (this.pg) {
          // The commits may well be durable; unconfirmed, their callers retry (PUTs are idempotent).
          const retry = ociError('UNAVAILABLE', `the metadata database did not confirm the write (${err instanceof Error ? err.message : String(err)}): retry`, { headers: { 'Retry-After': '1' } });
          for (const d of group) d.item.reject(retry);
          this.syncWal();
          return;
        }
        return this.fail(err, group);
      }
      this.durable = Math.max(this.durable, upTo);
      for (const d of group) d.item.resolve(d.value);
      for (const w of asked) w(this.durable);
      this.syncWal();
    };
    this.doSync(path).then(() => settle(), settle);
  }

  /**
   * A sync failed. On Linux a writeback error is reported once and the pages are then marked
   * clean, and SQLite's WAL recovery stops at the first bad frame: a later successful sync proves
   * nothing about anything committed after this point. So nothing more is acknowledged: the
   * callers waiting (committed, maybe not on disk) and every later write get a retryable 503,
   * the watermark stops, /readyz reports it; a restart lets SQLite recover the WAL.
   */
  private fail(cause: unknown, group: { item: Item }[]): void {
    const first = this.failure === undefined;
    this.failure ??= notDurableError(cause);
    if (first) {
      const line = { err: cause, durableSeq: this.durable };
      const msg = 'metadata database: syncing the WAL failed; refusing writes until restart (SQLite recovers the WAL on start)';
      if (this.log) this.log.error(line, msg);
      else console.error(JSON.stringify({ level: 'error', msg, err: String(cause), durableSeq: this.durable }));
    }
    for (const d of [...group, ...this.unsynced.splice(0)]) d.item.reject(this.failure);
    for (const item of this.queue.splice(0)) item.reject(this.failure);
    for (const w of this.waiters.splice(0)) w(this.durable);
  }
}

const batchers = new WeakMap<Db, WriteBatcher>();

/**
 * The one batcher of a database handle: every store writing through it shares its batches (and
 * every reader its watermark). `opts` apply only when this call creates it.
 */
export function writeBatcher(db: Db, opts?: BatcherOptions): WriteBatcher {
  let b = batchers.get(db);
  if (!b) batchers.set(db, (b = new WriteBatcher(db, opts)));
  return b;
}
