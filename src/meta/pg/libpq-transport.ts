/**
 * Synchronous PostgreSQL through libpq (the `libpq` addon, an optional dependency built against
 * Debian's libpq-dev): one blocking round trip per statement on the calling thread, ~75 µs on
 * loopback here, against ~330 µs through the worker bridge (bridge.ts), which stays the fallback
 * when the addon is not installed. Statements are prepared once per connection by their text.
 */
import { createRequire } from 'node:module';
import { PgError, SESSION_SETUP, withConnectionDefaults, type PgQuery, type PgResult } from './bridge.js';

export interface Libpq {
  connectSync(conninfo: string): void;
  exec(sql: string): void;
  execParams(sql: string, params: (string | null)[]): void;
  prepare(name: string, sql: string, nParams: number): void;
  execPrepared(name: string, params: (string | null)[]): void;
  resultStatus(): string;
  resultErrorMessage(): string;
  resultErrorFields(): { sqlState?: string; messagePrimary?: string; messageDetail?: string } | undefined;
  errorMessage(): string;
  ntuples(): number;
  nfields(): number;
  fname(i: number): string;
  ftype(i: number): number;
  getvalue(row: number, col: number): string;
  getisnull(row: number, col: number): boolean;
  cmdTuples(): string;
  cmdStatus(): string;
  /** PQtransactionStatus: 0 idle, 1 active, 2 in a transaction, 3 in a failed one, 4 unknown (connection bad). */
  transactionStatus(): number;
  finish(): void;
  connected: boolean;
  // The asynchronous side (async-reader.ts): pipeline mode on a non-blocking connection.
  setNonBlocking(on: boolean): boolean;
  enterPipelineMode(): boolean;
  pipelineSync(): boolean;
  sendPrepare(name: string, sql: string, nParams: number): boolean;
  sendQueryPrepared(name: string, params: (string | null)[]): boolean;
  sendQueryParams(sql: string, params: (string | null)[]): boolean;
  flush(): number;
  consumeInput(): boolean;
  isBusy(): boolean;
  getResult(): boolean;
  startReader(): void;
  stopReader(): void;
  writable(cb: () => void): void;
  on(event: 'readable', listener: () => void): void;
}

export type LibpqConstructor = new () => Libpq;

let loaded: LibpqConstructor | null | undefined;

/** The addon, or null when it is not installed (or not built for this Node). */
export function loadLibpq(): LibpqConstructor | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('libpq') as LibpqConstructor;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

const INTEGER_OIDS = new Set([20, 21, 23, 26, 700, 701, 1700]);
const BOOL_OID = 16;
const BYTEA_OID = 17;

export function encodeParam(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return '\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (typeof v === 'boolean') return v ? '1' : '0';
  return String(v);
}

function decode(oid: number, text: string): unknown {
  if (INTEGER_OIDS.has(oid)) return Number(text);
  if (oid === BOOL_OID) return text === 't' ? 1 : 0;
  if (oid === BYTEA_OID) return Buffer.from(text.slice(2), 'hex');
  return text;
}

const MAX_PREPARED = 2000;
const PQTRANS_UNKNOWN = 4;

export class LibpqTransport {
  private pq: Libpq;
  private readonly prepared = new Map<string, string>();
  /** Statement names are never reused on a connection (a cleared cache must not meet an old name). */
  private preparedCount = 0;
  private closed = false;
  /** The connection broke: the next statement outside a transaction connects again. */
  private lost = false;

  constructor(
    private readonly Ctor: LibpqConstructor,
    private readonly url: string,
    private readonly schema: string | undefined,
  ) {
    this.pq = this.connect();
  }

  private connect(): Libpq {
    const pq = connectLibpq(this.Ctor, this.url, this.schema);
    this.prepared.clear();
    this.preparedCount = 0;
    return pq;
  }

  /**
   * After a lost connection (PostgreSQL restarted, a network cut), a statement that does not
   * continue a transaction reconnects; one inside a transaction fails with the transaction,
   * whose work the server rolled back.
   */
  private reconnectIfLost(inTransaction: boolean | undefined): void {
    if (!this.lost) return;
    if (inTransaction) throw new PgError('the connection to PostgreSQL was lost inside a transaction', '08006');
    finishConnection(this.pq);
    this.pq = this.connect();
    this.lost = false;
  }

  get open(): boolean {
    return !this.closed;
  }

  query(q: PgQuery): PgResult {
    if (this.closed) throw new PgError('the database connection is closed', '08003');
    this.reconnectIfLost(q.inTransaction);
    const pq = this.pq;
    if (q.simple) {
      pq.exec(q.sql);
    } else {
      const params = (q.params ?? []).map(encodeParam);
      let name = this.prepared.get(q.sql);
      if (!name && this.prepared.size >= MAX_PREPARED && !q.inTransaction) {
        // Only between transactions: inside an aborted one DEALLOCATE would fail and leave the
        // cache pointing at statements that no longer exist.
        pq.exec('DEALLOCATE ALL');
        if (pq.resultStatus() === 'PGRES_COMMAND_OK') this.prepared.clear();
      }
      if (!name && this.prepared.size < MAX_PREPARED) {
        name = `as${++this.preparedCount}`;
        pq.prepare(name, q.sql, params.length);
        this.check();
        this.prepared.set(q.sql, name);
      }
      if (name) pq.execPrepared(name, params);
      else pq.execParams(q.sql, params);
    }
    this.check();
    return this.read(q.rowMode === 'array' && !q.simple);
  }

  private check(): void {
    const err = resultError(this.pq);
    if (!err) return;
    if (err.code === '08006') this.lost = true;
    throw err;
  }

  private read(arrayMode: boolean): PgResult {
    return readResult(this.pq, arrayMode);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    finishConnection(this.pq);
  }
}

/** A connected session with the registry's settings (bridge.ts SESSION_SETUP) and search_path. */
export function connectLibpq(Ctor: LibpqConstructor, url: string, schema: string | undefined): Libpq {
  const pq = new Ctor();
  try {
    pq.connectSync(withConnectionDefaults(url));
  } catch (err) {
    finishConnection(pq);
    throw new PgError(`cannot connect to PostgreSQL: ${(err as Error).message.trim()}`, '08001');
  }
  const path = schema ? `; SET search_path TO "${schema.replace(/"/g, '""')}"` : '';
  pq.exec(SESSION_SETUP + path);
  if (pq.resultStatus() !== 'PGRES_COMMAND_OK') {
    const message = pq.resultErrorMessage().trim();
    finishConnection(pq);
    throw new PgError(`cannot set up the PostgreSQL session: ${message}`, '08001');
  }
  return pq;
}

/** The current result's error (code 08006 when the connection is gone), or undefined. */
export function resultError(pq: Libpq): PgError | undefined {
  const status = pq.resultStatus();
  if (status !== 'PGRES_FATAL_ERROR' && status !== 'PGRES_BAD_RESPONSE' && status !== 'PGRES_NONFATAL_ERROR' && status !== '') return undefined;
  const fields = pq.resultErrorFields();
  const message = fields?.messagePrimary ?? (pq.resultErrorMessage() || pq.errorMessage() || 'PostgreSQL error').trim();
  const gone = pq.transactionStatus() === PQTRANS_UNKNOWN || !fields?.sqlState;
  return new PgError(message, fields?.sqlState ?? (gone ? '08006' : undefined), fields?.messageDetail);
}

/** The current result as rows (by column name, or value arrays in column order). */
export function readResult(pq: Libpq, arrayMode: boolean): PgResult {
  const n = pq.ntuples();
  const width = pq.nfields();
  const fields: string[] = [];
  const oids: number[] = [];
  for (let c = 0; c < width; c++) {
    fields.push(pq.fname(c));
    oids.push(pq.ftype(c));
  }
  const rows: unknown[] = new Array(n);
  for (let r = 0; r < n; r++) {
    if (arrayMode) {
      const row: unknown[] = new Array(width);
      for (let c = 0; c < width; c++) row[c] = pq.getisnull(r, c) ? null : decode(oids[c]!, pq.getvalue(r, c));
      rows[r] = row;
    } else {
      const row: Record<string, unknown> = {};
      for (let c = 0; c < width; c++) row[fields[c]!] = pq.getisnull(r, c) ? null : decode(oids[c]!, pq.getvalue(r, c));
      rows[r] = row;
    }
  }
  const tuples = pq.cmdTuples();
  return { rows, rowCount: tuples ? Number(tuples) : n, fields, command: pq.cmdStatus().split(' ')[0] };
}

/**
 * Closed connections kept reachable for a moment: the addon's finish() closes its libuv socket
 * watcher, which lives inside the native object; if the JS object were collected before libuv
 * completed that close (in the same loop iteration's close phase), libuv would touch freed
 * memory and abort the process (`uv__finish_close` assertion, seen in the test suite).
 */
const retired = new Set<Libpq>();

export function finishConnection(pq: Libpq): void {
  pq.finish();
  retired.add(pq);
  setTimeout(() => retired.delete(pq), 1000).unref();
}
