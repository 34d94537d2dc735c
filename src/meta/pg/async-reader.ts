/**
 * Reads that do not block the event loop: the hot pull lookups (manifest by tag or digest, blob
 * size) on a libpq connection of their own in pipeline mode. Everything asked during one
 * event-loop turn goes out in one write and comes back in one read, so a process serving 64
 * concurrent pulls waits for PostgreSQL once per turn instead of once per request (the
 * synchronous facade holds the thread ~75 µs per statement).
 *
 * Only for single read statements outside transactions. A turn's reads end with one Sync (libpq
 * 15 flushes the socket at every PQpipelineSync: one Sync per query cost a send() per read,
 * ~5% of the event loop under load), so they share one implicit transaction; each still sees
 * what was committed before it ran (READ COMMITTED), on any connection or process — the same
 * answer the synchronous connection would give. A read that fails aborts the reads after it in
 * that segment: those are sent again in the next turn, so a failing read never fails its
 * neighbours. Re-sent reads go first in the next turn, so each turn settles at least the oldest
 * of them and new failing reads cannot keep one waiting.
 */
import { PgError, type PgResult } from './bridge.js';
import { connectLibpq, encodeParam, finishConnection, readResult, resultError, type Libpq, type LibpqConstructor } from './libpq-transport.js';

interface Request {
  sql: string;
  params: (string | null)[];
  arrayMode: boolean;
  resolve(result: PgResult): void;
  reject(err: Error): void;
  /** Its own prepare failed: the answer, instead of "aborted". */
  prepareError?: PgError;
}

/** What the server will answer, in order: a prepare's status, a query's rows, a Sync's marker. */
type Expected =
  | { kind: 'prepare'; request: Request }
  | { kind: 'query'; request: Request; result?: PgResult; error?: PgError; aborted?: boolean }
  | { kind: 'sync' };

const WATCHDOG_MS = 500;

/** Errors after which the server closes the session (terminated, shutting down, connection failure). */
const SESSION_ENDING = /^(08|57P0[1-3])/;

/** PQtransactionStatus once the connection is bad. */
const PQTRANS_UNKNOWN = 4;

/** Statements kept prepared on the connection; past this, unnamed (parsed on every call). */
const MAX_PREPARED = 256;

export class PipelinedReader {
  private pq: Libpq | undefined;
  private readonly prepared = new Map<string, string>();
  /** Names are never reused on a connection (a failed prepare leaves a gap, not a clash). */
  private preparedCount = 0;
  private outbox: Request[] = [];
  /** Reads aborted by a failure before them in their segment, oldest first: sent before `outbox`. */
  private retries: Request[] = [];
  private expected: Expected[] = [];
  /** Where `expected` is read from (shifting a long array on every result costs more). */
  private head = 0;
  private scheduled = false;
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly Ctor: LibpqConstructor,
    private readonly url: string,
    private readonly schema: string | undefined,
  ) {}

  get open(): boolean {
    return !this.closed;
  }

  query(sql: string, params: readonly unknown[], rowMode: 'array' | 'object'): Promise<PgResult> {
    if (this.closed) return Promise.reject(new PgError('the database connection is closed', '08003'));
    return new Promise<PgResult>((resolve, reject) => {
      this.outbox.push({ sql, params: params.map(encodeParam), arrayMode: rowMode === 'array', resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: requests parsed in the same poll phase share one write.
    setImmediate(() => this.send());
  }

  private connection(): Libpq {
    if (this.pq && this.pq.transactionStatus() === PQTRANS_UNKNOWN) this.lose(new PgError('the connection to PostgreSQL was lost', '08006'));
    if (this.pq) return this.pq;
    const pq = connectLibpq(this.Ctor, this.url, this.schema);
    if (!pq.setNonBlocking(true) || !pq.enterPipelineMode()) {
      finishConnection(pq);
      throw new PgError('cannot enter libpq pipeline mode', '08001');
    }
    pq.on('readable', () => this.receive());
    pq.startReader();
    this.prepared.clear();
    this.pq = pq;
    return pq;
  }

  private send(): void {
    this.scheduled = false;
    const batch = this.retries.length > 0 ? this.retries.concat(this.outbox) : this.outbox;
    this.retries = [];
    this.outbox = [];
    if (batch.length === 0) return;
    let pq: Libpq;
    try {
      pq = this.connection();
    } catch (err) {
      for (const r of batch) r.reject(err as Error);
      return;
    }
    for (const [i, request] of batch.entries()) {
      let name = this.prepared.get(request.sql);
      let sent = true;
      if (!name && this.prepared.size < MAX_PREPARED) {
        name = `ar${++this.preparedCount}`;
        sent = pq.sendPrepare(name, request.sql, request.params.length);
        this.prepared.set(request.sql, name);
        this.expected.push({ kind: 'prepare', request });
      }
      sent &&= name ? pq.sendQueryPrepared(name, request.params) : pq.sendQueryParams(request.sql, request.params);
      this.expected.push({ kind: 'query', request });
      if (sent && i === batch.length - 1) {
        sent = pq.pipelineSync();
        this.expected.push({ kind: 'sync' });
      }
      if (!sent) {
        const err = new PgError(`PostgreSQL connection failed: ${pq.errorMessage().trim()}`, '08006');
        this.lose(err);
        for (const r of batch.slice(i + 1)) r.reject(err);
        return;
      }
    }
    this.flushOut();
    this.watch();
  }

  /**
   * libuv stops a socket watcher that reports an error (a reset connection) without telling the
   * addon, so no 'readable' would ever come: while answers are awaited, look every
   * WATCHDOG_MS ourselves (consumeInput then reports the broken connection).
   */
  private watch(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => {
      if (this.head >= this.expected.length) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
        return;
      }
      this.receive();
    }, WATCHDOG_MS);
    this.watchdog.unref();
  }

  /** Non-blocking writes: what the socket did not take goes when it is writable again. */
  private flushOut(): void {
    const pq = this.pq;
    if (!pq) return;
    const state = pq.flush();
    // writable() swaps the socket watcher's read interest for write interest: restore it after.
    if (state === 1)
      pq.writable(() => {
        pq.startReader();
        this.flushOut();
      });
    else if (state === -1) this.lose(new PgError(`PostgreSQL connection failed: ${pq.errorMessage().trim()}`, '08006'));
  }

  private receive(): void {
    const pq = this.pq;
    if (!pq) return;
    if (!pq.consumeInput()) return this.lose(new PgError(`PostgreSQL connection failed: ${pq.errorMessage().trim()}`, '08006'));
    let ended: PgError | undefined;
    while (this.head < this.expected.length && !pq.isBusy()) {
      const next = this.expected[this.head]!;
      if (!pq.getResult()) {
        // The end of a prepare's or a query's results (a Sync has no such end).
        this.head++;
        if (next.kind === 'query') this.settle(next);
        continue;
      }
      const status = pq.resultStatus();
      if (status === 'PGRES_PIPELINE_SYNC') {
        this.head++;
        continue;
      }
      const aborted = status === 'PGRES_PIPELINE_ABORTED';
      const error = aborted ? undefined : resultError(pq);
      if (error && SESSION_ENDING.test(error.code ?? '')) ended = error;
      if (next.kind === 'prepare') {
        // Not prepared (failed, or aborted by an earlier read): prepared again when next asked.
        if (aborted || error) this.prepared.delete(next.request.sql);
        if (error) next.request.prepareError = error;
      } else if (next.kind === 'query') {
        if (aborted) next.aborted = true;
        else if (error) next.error = error;
        else next.result = readResult(pq, next.request.arrayMode);
      }
    }
    // The server ended the session (restart, pg_terminate_backend): its FATAL error was delivered
    // above as the answer of the query it interrupted; what else was in flight fails now.
    if (ended || pq.transactionStatus() === PQTRANS_UNKNOWN) return this.lose(new PgError('the connection to PostgreSQL was lost', '08006'));
    if (this.head === this.expected.length) {
      this.expected = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.expected = this.expected.slice(this.head);
      this.head = 0;
    }
  }

  private settle(q: Extract<Expected, { kind: 'query' }>): void {
    if (q.aborted && q.request.prepareError) q.request.reject(q.request.prepareError);
    else if (q.aborted) {
      // An earlier read of its segment failed: asked again with the next turn's reads.
      this.retries.push(q.request);
      this.schedule();
    } else if (q.error) q.request.reject(q.error);
    else if (q.result) q.request.resolve(q.result);
    else q.request.reject(new PgError('PostgreSQL sent no result for the query', '08006'));
  }

  /** The connection broke: every query in flight fails (the caller answers 503); the next one reconnects. */
  private lose(err: PgError): void {
    const pending = this.expected.slice(this.head);
    this.expected = [];
    this.head = 0;
    const pq = this.pq;
    this.pq = undefined;
    if (pq) {
      pq.stopReader();
      finishConnection(pq);
    }
    for (const e of pending) if (e.kind === 'query') e.request.reject(err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.lose(new PgError('the database connection is closed', '08003'));
    for (const r of [...this.retries.splice(0), ...this.outbox.splice(0)]) r.reject(new PgError('the database connection is closed', '08003'));
  }
}
