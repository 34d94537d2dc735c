/**
 * A better-sqlite3-shaped connection over PostgreSQL: drizzle's better-sqlite3 driver and our
 * hand-prepared statements run on it unchanged. Each call is synchronous (bridge.ts).
 *
 * Transactions take one advisory lock (per schema) at BEGIN, the PostgreSQL form of SQLite's
 * BEGIN IMMEDIATE: writers are serialised across every process sharing the registry's schema, so the
 * stores' check-then-write guards and the event hash chain (head read, then append) stay a
 * single total order. Reads outside transactions run concurrently (READ COMMITTED).
 */
import { createHash } from 'node:crypto';
import { PgBridge, PgError, type PgQuery, type PgResult } from './bridge.js';
import { CommitBarrier } from './commit-barrier.js';
import { PipelinedReader } from './async-reader.js';
import { LibpqTransport, loadLibpq } from './libpq-transport.js';
import { MISS, TransactionMemory } from './transaction-memory.js';
import { translate } from './translate.js';

/**
 * The advisory lock every write transaction of one registry holds: one key per schema, so
 * registries (or test runs) in other schemas of the same server never wait for each other.
 */
export function writeLockKey(schema: string | undefined): bigint {
  return createHash('sha256').update(`artifact-store writer ${schema ?? 'public'}`).digest().readBigInt64BE(0);
}

export interface RunResult {
  changes: number;
  lastInsertRowid: number;
}

/** pg SQLSTATE → the SQLite code callers already branch on. */
const SQLITE_CODES: Record<string, string> = {
  '23505': 'SQLITE_CONSTRAINT_UNIQUE',
  '23503': 'SQLITE_CONSTRAINT_FOREIGNKEY',
  '23502': 'SQLITE_CONSTRAINT_NOTNULL',
  '23514': 'SQLITE_CONSTRAINT_CHECK',
  P0001: 'SQLITE_CONSTRAINT_TRIGGER',
  '40001': 'SQLITE_BUSY',
  '40P01': 'SQLITE_BUSY',
  '55P03': 'SQLITE_BUSY',
};

export class PostgresDatabaseError extends Error {
  readonly code: string;
  constructor(
    override readonly cause: PgError,
    /** The statement as sent (no parameter values), for the log line of an unexpected failure. */
    readonly statement?: string,
  ) {
    super(cause.message);
    this.name = 'PostgresDatabaseError';
    this.code = (cause.code && SQLITE_CODES[cause.code]) ?? `PG_${cause.code ?? 'ERROR'}`;
  }
  get pgCode(): string | undefined {
    return this.cause.code;
  }
}

function toBuffers(rows: unknown[], arrayMode: boolean): unknown[] {
  // Structured clone turns Buffers into Uint8Arrays; callers expect Buffers as better-sqlite3 gives.
  for (const row of rows) {
    const r = row as Record<string, unknown> | unknown[];
    if (arrayMode) {
      const a = r as unknown[];
      for (let i = 0; i < a.length; i++) if (a[i] instanceof Uint8Array && !Buffer.isBuffer(a[i])) a[i] = asBuffer(a[i] as Uint8Array);
    } else {
      const o = r as Record<string, unknown>;
      for (const k in o) if (o[k] instanceof Uint8Array && !Buffer.isBuffer(o[k])) o[k] = asBuffer(o[k] as Uint8Array);
    }
  }
  return rows;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function normaliseParams(params: unknown[]): unknown[] {
  // better-sqlite3 takes one array or spread values; bigint ids become numbers as SQLite would store them.
  const flat = params.length === 1 && Array.isArray(params[0]) ? (params[0] as unknown[]) : params;
  return flat.map((v) => (typeof v === 'bigint' ? Number(v) : v === undefined ? null : v));
}

export class PgStatement {
  private rawMode = false;
  private pluckMode = false;
  readonly reader: boolean;

  constructor(
    private readonly db: PostgresDatabase,
    readonly source: string,
  ) {
    this.reader = /^\s*(select|with|values|pragma)\b/i.test(source) || /\breturning\b/i.test(source);
  }

  raw(toggle = true): this {
    this.rawMode = toggle;
    if (toggle) this.pluckMode = false;
    return this;
  }

  pluck(toggle = true): this {
    this.pluckMode = toggle;
    if (toggle) this.rawMode = false;
    return this;
  }

  run(...params: unknown[]): RunResult {
    const t = translate(this.source);
    if (t.control) {
      this.db.control(t.control, this.source);
      return { changes: 0, lastInsertRowid: 0 };
    }
    const res = this.db.execute(t.text, normaliseParams(params), 'array');
    const last = t.returningId && res.rows.length ? (res.rows[res.rows.length - 1] as unknown[])[0] : 0;
    return { changes: res.rowCount, lastInsertRowid: Number(last ?? 0) };
  }

  all(...params: unknown[]): unknown[] {
    // Lookups a write transaction may remember (transaction-memory.ts); rows are shared, callers only read them.
    const memory = this.db.inTransaction && this.db.txMemory.isLookup(this.source) ? this.db.txMemory : undefined;
    if (!memory) return this.fetch(params);
    const key = `${this.rawMode ? 'r' : this.pluckMode ? 'p' : 'o'}${this.source}\u0000${JSON.stringify(normaliseParams(params))}`;
    const known = memory.lookup(key);
    if (known !== MISS) return (known as unknown[]).slice();
    const rows = this.fetch(params);
    memory.rememberLookup(key, rows.slice());
    return rows;
  }

  private fetch(params: unknown[]): unknown[] {
    const arrayMode = this.rawMode || this.pluckMode;
    const res = this.db.execute(translate(this.source).text, normaliseParams(params), arrayMode ? 'array' : 'object');
    const rows = toBuffers(res.rows, arrayMode);
    return this.pluckMode ? rows.map((r) => (r as unknown[])[0]) : rows;
  }

  get(...params: unknown[]): unknown {
    return this.all(...params)[0];
  }

  /**
   * all() without blocking the thread (async-reader.ts), for reads outside transactions; undefined
   * when this process has no asynchronous connection (the worker transport): call all() then.
   */
  allAsync(...params: unknown[]): Promise<unknown[]> | undefined {
    const arrayMode = this.rawMode || this.pluckMode;
    const pluck = this.pluckMode;
    const pending = this.db.readAsync(translate(this.source).text, normaliseParams(params), arrayMode ? 'array' : 'object');
    return pending?.then((res) => {
      const rows = toBuffers(res.rows, arrayMode);
      return pluck ? rows.map((r) => (r as unknown[])[0]) : rows;
    });
  }

  getAsync(...params: unknown[]): Promise<unknown> | undefined {
    return this.allAsync(...params)?.then((rows) => rows[0]);
  }

  *iterate(...params: unknown[]): IterableIterator<unknown> {
    yield* this.all(...params);
  }
}

type TxFn = ((...args: unknown[]) => unknown) & { deferred: TxFn; immediate: TxFn; exclusive: TxFn };

export interface PostgresDatabaseOptions {
  url: string;
  schema?: string;
  timeoutMs?: number;
  /** libpq when the addon loads (faster), else the worker bridge; ARTIFACT_STORE_PG_TRANSPORT forces one. */
  transport?: 'libpq' | 'worker';
}

interface Transport {
  query(q: PgQuery): PgResult;
  readonly open: boolean;
  close(): void;
}

function openTransport(options: PostgresDatabaseOptions): Transport {
  const wanted = options.transport ?? (process.env.ARTIFACT_STORE_PG_TRANSPORT as 'libpq' | 'worker' | undefined);
  const Libpq = wanted === 'worker' ? null : loadLibpq();
  if (Libpq) return new LibpqTransport(Libpq, options.url, options.schema);
  if (wanted === 'libpq') throw new Error('ARTIFACT_STORE_PG_TRANSPORT=libpq but the libpq addon is not installed (apt-get install libpq-dev, then npm rebuild libpq)');
  return new PgBridge(options);
}

export class PostgresDatabase {
  readonly dialect = 'postgres' as const;
  readonly memory = false;
  readonly name: string;
  private readonly bridge: Transport;
  private depth = 0;
  /** The open transaction appended to the event log: its COMMIT waits for the WAL flush. */
  private durableCommit = false;
  /**
   * Set by the group commit while its transaction runs: its durability comes from the barrier
   * (commit-barrier.ts) before anyone is answered, so its COMMIT need not wait for the flush.
   */
  barrierCovered = false;
  private readonly lockKey: bigint;
  private savepoints = 0;
  /** What this write transaction remembers instead of asking again (transaction-memory.ts). */
  readonly txMemory = new TransactionMemory();

  constructor(readonly options: PostgresDatabaseOptions) {
    this.bridge = openTransport(options);
    this.lockKey = writeLockKey(options.schema);
    this.name = options.schema ? `postgres:${options.schema}` : 'postgres';
  }

  get open(): boolean {
    return this.bridge.open;
  }

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  prepare(sql: string): PgStatement {
    return new PgStatement(this, sql);
  }

  /**
   * The event log's head hash as this transaction's own last append left it (events.ts reads
   * it instead of asking the server: one round trip fewer per event), or undefined.
   */
  cachedEventHead(): string | undefined {
    return this.depth > 0 ? this.txMemory.eventHead() : undefined;
  }

  /** Called by appendEvent right after its insert. */
  rememberEventHead(hash: string): void {
    if (this.depth > 0) this.txMemory.rememberEventHead(hash);
  }

  /** One statement with parameters; errors carry SQLite-style codes. */
  execute(text: string, params: unknown[], rowMode: 'array' | 'object'): PgResult {
    this.txMemory.note(text);
    try {
      return this.bridge.query({ sql: text, params, rowMode, inTransaction: this.depth > 0 });
    } catch (err) {
      throw err instanceof PgError ? new PostgresDatabaseError(err, text.slice(0, 500)) : err;
    }
  }

  /**
   * Asks that the open transaction's COMMIT wait for PostgreSQL's WAL flush (sessions commit
   * asynchronously: bridge.ts SESSION_SETUP). Every privileged mutation appends an event, and
   * appendEvent asks this, so a revoked key or a changed password survives a PostgreSQL crash.
   */
  requireDurableCommit(): void {
    if (this.depth > 0) this.durableCommit = true;
  }

  /** The pipelined connection for getAsync (libpq transport only), opened on first use. */
  private reader: PipelinedReader | null | undefined;

  /** One read on the pipelined connection, or undefined without one. */
  readAsync(text: string, params: unknown[], rowMode: 'array' | 'object'): Promise<PgResult> | undefined {
    if (this.reader === undefined) {
      const Libpq = this.bridge instanceof LibpqTransport ? loadLibpq() : null;
      this.reader = Libpq ? new PipelinedReader(Libpq, this.options.url, this.options.schema) : null;
    }
    if (!this.reader) return undefined;
    return this.reader.query(text, params, rowMode).catch((err: unknown) => {
      throw err instanceof PgError ? new PostgresDatabaseError(err, text.slice(0, 500)) : err;
    });
  }

  /** Several statements (no parameters), as better-sqlite3's exec. */
  exec(sql: string): this {
    const t = translate(sql);
    if (t.control) this.control(t.control, sql);
    else this.simple(t.text);
    return this;
  }

  /** PostgreSQL SQL as written (migrations): no SQLite rewriting, several statements allowed. */
  execNative(sql: string): PgResult {
    return this.simple(sql);
  }

  private simple(sql: string): PgResult {
    this.txMemory.note(sql);
    try {
      return this.bridge.query({ sql, simple: true, inTransaction: this.depth > 0 });
    } catch (err) {
      throw err instanceof PgError ? new PostgresDatabaseError(err, sql.slice(0, 500)) : err;
    }
  }

  /** BEGIN takes the write lock (any flavour: SQLite's deferred reads become writes later). */
  control(kind: 'begin' | 'commit' | 'rollback', _sql: string): void {
    this.txMemory.boundary();
    if (kind === 'begin') {
      try {
        this.simple(`BEGIN; SELECT pg_advisory_xact_lock(${this.lockKey})`);
      } catch (err) {
        // The lock wait timed out (SQLITE_BUSY) or the connection failed: leave no open block behind.
        this.rollbackQuietly();
        throw err;
      }
      this.depth = 1;
      return;
    }
    // Sent while still counted as inside the transaction: a COMMIT must never go to a fresh
    // connection after a lost one (it would "succeed" with nothing to commit).
    const durable = kind === 'commit' && this.durableCommit && !this.barrierCovered;
    let result: PgResult;
    try {
      result = this.simple(kind === 'rollback' ? 'ROLLBACK' : durable ? 'SET LOCAL synchronous_commit = on; COMMIT' : 'COMMIT');
    } finally {
      this.depth = 0;
      this.savepoints = 0;
      this.durableCommit = false;
    }
    // PostgreSQL aborts the whole transaction at a failed statement (SQLite undoes only that
    // statement) and then answers COMMIT with ROLLBACK: never report that as committed.
    if (kind === 'commit' && result.command === 'ROLLBACK') {
      throw new PostgresDatabaseError(new PgError('the transaction was aborted by an earlier failed statement; nothing was committed', '25P02'), 'COMMIT');
    }
  }

  transaction(fn: (...args: unknown[]) => unknown): TxFn {
    const run = (...args: unknown[]): unknown => {
      if (this.depth > 0) return this.nested(fn, args);
      this.control('begin', 'BEGIN');
      let result: unknown;
      try {
        result = fn(...args);
      } catch (err) {
        if (this.open) this.rollbackQuietly();
        throw err;
      }
      this.control('commit', 'COMMIT');
      return result;
    };
    const wrapped = run as TxFn;
    wrapped.deferred = wrapped;
    wrapped.immediate = wrapped;
    wrapped.exclusive = wrapped;
    return wrapped;
  }

  private nested(fn: (...args: unknown[]) => unknown, args: unknown[]): unknown {
    const name = `pg_sp${++this.savepoints}`;
    this.simple(`SAVEPOINT ${name}`);
    this.depth++;
    try {
      const result = fn(...args);
      this.simple(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      this.simple(`ROLLBACK TO SAVEPOINT ${name}; RELEASE SAVEPOINT ${name}`);
      throw err;
    } finally {
      this.depth--;
    }
  }

  private rollbackQuietly(): void {
    try {
      this.control('rollback', 'ROLLBACK');
    } catch {
      // the connection is gone; the server rolls the transaction back itself
    }
  }

  /** The few pragmas callers read, answered the way SQLite would for this back end. */
  pragma(source: string, opts?: { simple?: boolean }): unknown {
    const name = source.trim().toLowerCase().split(/[\s=(]/)[0];
    const value = name === 'journal_mode' ? 'postgres' : name === 'synchronous' ? 2 : name === 'foreign_keys' ? 1 : undefined;
    if (opts?.simple) return value;
    return value === undefined ? [] : [{ [name!]: value }];
  }

  /**
   * better-sqlite3 runs JS functions inside SQL; PostgreSQL cannot. Registering one is accepted so
   * shared setup code runs, and SQL that calls it fails loudly (callers branch on isPostgres).
   */
  function(_name: string, ..._rest: unknown[]): this {
    return this;
  }

  private barrier: CommitBarrier | undefined;

  /** The asynchronous durability barrier for group commit (commit-barrier.ts), opened on first use. */
  commitBarrier(): CommitBarrier {
    return (this.barrier ??= new CommitBarrier(this.options.url));
  }

  close(): this {
    if (this.depth > 0) this.rollbackQuietly();
    this.barrier?.close();
    this.reader?.close();
    this.bridge.close();
    return this;
  }
}
