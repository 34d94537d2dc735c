/**
 * Synchronous PostgreSQL calls for the metadata stores. The stores are written against
 * better-sqlite3's synchronous API (check-and-write guards rely on it); on PostgreSQL a worker
 * thread owns one `pg` connection and the calling thread blocks on an Atomics word until the
 * worker has posted the answer, which it then takes with receiveMessageOnPort. One statement
 * is in flight per process at a time, exactly as with one SQLite connection; processes scale
 * out beside each other (PRODUCT.md §9).
 */
import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

export interface PgQuery {
  sql: string;
  params?: readonly unknown[];
  /** 'array': rows as value arrays in column order (better-sqlite3's raw()); 'object' by column name. */
  rowMode?: 'array' | 'object';
  /** Several statements in one round trip, no parameters (simple query protocol). */
  simple?: boolean;
  /** The statement continues an open transaction: after a lost connection it must fail, not reconnect. */
  inTransaction?: boolean;
}

export interface PgResult {
  rows: unknown[];
  rowCount: number;
  fields: string[];
  /** The command tag of the (last) statement: 'ROLLBACK' answers a COMMIT of an aborted transaction. */
  command?: string;
}

/**
 * Session settings of every metadata connection. A stuck statement or lock wait fails instead of
 * freezing the process (SQLite's busy_timeout). synchronous_commit off is SQLite's NORMAL: a
 * commit survives this process crashing, and what is acknowledged as durable (pushes, tags, blob
 * links, the published event log) waits for the group commit's barrier (commit-barrier.ts) —
 * without it, every small write transaction would hold the event loop for a WAL flush.
 */
export const SESSION_SETUP = [
  "SET application_name = 'artifact-store'",
  'SET client_min_messages = warning',
  "SET statement_timeout = '60s'",
  "SET lock_timeout = '15s'",
  // A replica that stalls or loses its network inside a transaction releases the write lock.
  "SET idle_in_transaction_session_timeout = '60s'",
  'SET synchronous_commit = off',
].join('; ');

/**
 * Connection parameters added to the URL unless it sets them: a dead peer is noticed within
 * ~25 s (TCP keepalives) and an unreachable server fails a connect after 10 s instead of the
 * kernel's ~2 minutes (every call blocks the event loop).
 */
export function withConnectionDefaults(url: string): string {
  const u = new URL(url);
  const defaults: Record<string, string> = { connect_timeout: '10', keepalives: '1', keepalives_idle: '10', keepalives_interval: '5', keepalives_count: '3' };
  for (const [k, v] of Object.entries(defaults)) if (!u.searchParams.has(k)) u.searchParams.set(k, v);
  return u.toString();
}

export class PgError extends Error {
  constructor(message: string, readonly code: string | undefined, readonly detail?: string) {
    super(message);
    this.name = 'PgError';
  }
}

type Reply = { ok: true; result: PgResult } | { ok: false; message: string; code?: string; detail?: string };

/** The worker's source, evaluated as CommonJS; `pg` comes in by absolute path (works from src/ and dist/). */
const WORKER_SOURCE = String.raw`
const { workerData } = require('node:worker_threads');
const pg = require(workerData.pgPath);
const { port, flag, url, schema, applicationName, setup } = workerData;
// SQLite hands integers back as numbers and booleans as 0/1: so does this connection.
const own = { 20: (v) => Number(v), 1700: (v) => Number(v), 16: (v) => (v === 't' ? 1 : 0) };
const types = { getTypeParser: (oid, format) => (format !== 'binary' && own[oid]) || pg.types.getTypeParser(oid, format) };
let client;
let ready;
let dead = false;
function connect() {
  // The old client is closed (no leaked connection), and only the current one's events count.
  if (client) client.end().catch(() => {});
  const c = new pg.Client({ connectionString: url, types, application_name: applicationName, keepAlive: true, keepAliveInitialDelayMillis: 10000, connectionTimeoutMillis: 10000 });
  const lost = () => { if (client === c) dead = true; };
  c.on('error', lost);
  c.on('end', lost);
  client = c;
  dead = false;
  ready = (async () => {
    await c.connect();
    await c.query(setup);
    if (schema) await c.query('SET search_path TO "' + schema.replace(/"/g, '""') + '"');
  })();
  ready.catch(lost);
}
connect();
function answer(reply) {
  port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}
port.on('message', async (q) => {
  try {
    // A lost connection is replaced before a statement that starts fresh, never inside a transaction.
    if (dead && !q.inTransaction && !q.close) connect();
    if (dead && q.inTransaction) throw Object.assign(new Error('the connection to PostgreSQL was lost inside a transaction'), { code: '08006' });
    await ready;
    if (q.close) { await client.end().catch(() => {}); answer({ ok: true, result: { rows: [], rowCount: 0, fields: [] } }); port.close(); return; }
    const res = q.simple
      ? await client.query(q.sql)
      : await client.query({ text: q.sql, values: q.params ?? [], rowMode: q.rowMode === 'array' ? 'array' : undefined });
    const last = Array.isArray(res) ? res[res.length - 1] : res;
    answer({ ok: true, result: { rows: last?.rows ?? [], rowCount: last?.rowCount ?? 0, fields: (last?.fields ?? []).map((f) => f.name), command: last?.command } });
  } catch (err) {
    // Errors without a SQLSTATE come from the client side, 08/57P0x from a server ending the session: the connection is gone.
    if (!(err && err.code) || /^(08|57P0)/.test(err.code)) dead = true;
    answer({ ok: false, message: String(err && err.message || err), code: (err && err.code) || (dead ? '08006' : undefined), detail: err && err.detail });
  }
});
`;

export interface BridgeOptions {
  url: string;
  /** Schema for `search_path` (created by the caller before use). */
  schema?: string;
  /** A statement that has not answered within this many ms fails the call (the process keeps running). */
  timeoutMs?: number;
}

export class PgBridge {
  private worker!: Worker;
  private port!: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private readonly timeoutMs: number;
  private closed = false;
  private broken: Error | undefined;

  constructor(private readonly opts: BridgeOptions) {
    this.timeoutMs = opts.timeoutMs ?? 75_000;
    this.start();
  }

  private start(): void {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const pgPath = createRequire(import.meta.url).resolve('pg');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { port: port2, flag: this.flag, url: this.opts.url, schema: this.opts.schema, pgPath, applicationName: 'artifact-store', setup: SESSION_SETUP },
      transferList: [port2],
    });
    // The worker must never keep the process alive on its own (CLI commands exit when done).
    this.worker.unref();
    this.port.unref();
    this.broken = undefined;
  }

  query(q: PgQuery): PgResult {
    if (this.closed) throw new PgError('the database connection is closed', '08003');
    if (this.broken) {
      // Its transaction (if any) died with the old worker's connection; a fresh statement gets a new worker.
      if (q.inTransaction) throw this.broken;
      this.start();
    }
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage(q);
    if (Atomics.wait(this.flag, 0, 0, this.timeoutMs) === 'timed-out') {
      // The answer may still arrive later and would be taken as the reply to the next call:
      // this worker (and its connection) is dropped; the next statement outside a transaction starts another.
      this.broken = new PgError(`PostgreSQL did not answer within ${this.timeoutMs} ms`, '57014');
      void this.worker.terminate();
      throw this.broken;
    }
    const msg = receiveMessageOnPort(this.port);
    if (!msg) throw new PgError('PostgreSQL bridge lost its answer', '08006');
    const reply = msg.message as Reply;
    if (!reply.ok) throw new PgError(reply.message, reply.code, reply.detail);
    return reply.result;
  }

  get open(): boolean {
    return !this.closed;
  }

  close(): void {
    if (this.closed) return;
    try {
      if (!this.broken) this.query({ sql: '', simple: true, ...{ close: true } } as PgQuery);
    } catch {
      // closing anyway
    }
    this.closed = true;
    void this.worker.terminate();
  }
}
