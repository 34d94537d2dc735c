/**
 * The append-only event log. Each event is chained to the previous one by a SHA-256 over its
 * predecessor's hash and its own canonical fields, so any rewrite of history is detectable
 * (and the database refuses UPDATE/DELETE on the table outright).
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { and, asc, gt, lte } from 'drizzle-orm';
import type { Db } from './db.js';
import { events } from './schema.js';

export const GENESIS_HASH = `sha256:${'0'.repeat(64)}`;

export interface EventInput {
  actor: string;
  /** An audit-action id, e.g. `oci.manifest.push`. */
  action: string;
  repository?: string | null;
  digest?: string | null;
  tag?: string | null;
  before?: unknown;
  after?: unknown;
  reason?: string | null;
}

export type EventRow = typeof events.$inferSelect;

type Tx = Pick<Db, 'select' | 'insert'>;

const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v));

export function eventHash(prevHash: string, e: Omit<EventRow, 'seq' | 'hash' | 'prevHash'>): string {
  const canonical = JSON.stringify([e.time, e.actor, e.action, e.repository, e.digest, e.tag, e.before, e.after, e.reason]);
  return `sha256:${createHash('sha256').update(prevHash).update('\n').update(canonical).digest('hex')}`;
}

/**
 * Fail closed on unknown audit actions (PRODUCT.md §5): the families module installs the check;
 * it throws for an action that is not a registered, enabled audit-action entry, which rolls the
 * mutation's transaction back. Cached in memory by the module: this runs on every write.
 */
let auditActionCheck: ((action: string, tx: Tx) => void) | undefined;
export function setAuditActionCheck(check: ((action: string, tx: Tx) => void) | undefined): void {
  auditActionCheck = check;
}

/** The two statements every append runs, prepared once per connection (drizzle prepares on each call). */
interface AppendStatements {
  head: Statement<[], string | undefined>;
  insert: Statement<unknown[]>;
}
const appendStatements = new WeakMap<Database.Database, AppendStatements>();

/** The better-sqlite3 connection under a drizzle database or transaction (both carry the session). */
export function clientOf(q: Tx): Database.Database {
  return (q as unknown as { session: { client: Database.Database } }).session.client;
}

function statementsFor(client: Database.Database): AppendStatements {
  let s = appendStatements.get(client);
  if (!s) {
    s = {
      // The head is read inside the caller's write transaction (not cached across transactions):
      // a rolled-back savepoint or another process appending can never leave a stale predecessor.
      // On PostgreSQL, where each read is a round trip, the facade remembers this transaction's
      // own last append until anything else could have moved the head (EventHeadMemory).
      head: client.prepare<[], string>('SELECT hash FROM events ORDER BY seq DESC LIMIT 1').pluck(),
      insert: client.prepare('INSERT INTO events (time, actor, action, repository, digest, tag, before, after, reason, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    };
    appendStatements.set(client, s);
  }
  return s;
}

/** PostgreSQL's facade (pg/facade.ts): the head left by this transaction's own last append. */
interface EventHeadMemory {
  cachedEventHead(): string | undefined;
  rememberEventHead(hash: string): void;
}

/** Appends one event; call inside the transaction of the mutation it records. */
export function appendEvent(tx: Tx, input: EventInput): EventRow {
  auditActionCheck?.(input.action, tx);
  const client = clientOf(tx);
  // PostgreSQL commits asynchronously by default; a privileged mutation's commit waits for the flush.
  (client as unknown as { requireDurableCommit?: () => void }).requireDurableCommit?.();
  const st = statementsFor(client);
  const pg = client as unknown as Partial<EventHeadMemory>;
  const prevHash = pg.cachedEventHead?.() ?? st.head.get() ?? GENESIS_HASH;
  const row = {
    time: Date.now(),
    actor: input.actor,
    action: input.action,
    repository: input.repository ?? null,
    digest: input.digest ?? null,
    tag: input.tag ?? null,
    before: json(input.before),
    after: json(input.after),
    reason: input.reason ?? null,
  };
  const hash = eventHash(prevHash, row);
  const res = st.insert.run(row.time, row.actor, row.action, row.repository, row.digest, row.tag, row.before, row.after, row.reason, prevHash, hash);
  pg.rememberEventHead?.(hash);
  return { seq: Number(res.lastInsertRowid), ...row, prevHash, hash };
}

/** Events after `afterSeq`, at most up to `upTo` (publishers pass the durable watermark: meta/write-batcher.ts). */
export function listEvents(db: Db, afterSeq: number, limit: number, upTo?: number): EventRow[] {
  const where = upTo === undefined ? gt(events.seq, afterSeq) : and(gt(events.seq, afterSeq), lte(events.seq, upTo));
  return db.select().from(events).where(where).orderBy(asc(events.seq)).limit(limit).all();
}

/** Walks the whole chain; returns the first sequence number whose hash does not verify. */
export function verifyChain(db: Db): { ok: true; count: number } | { ok: false; brokenAt: number } {
  let prev = GENESIS_HASH;
  let count = 0;
  let after = 0;
  for (;;) {
    const batch = listEvents(db, after, 1000);
    if (batch.length === 0) return { ok: true, count };
    for (const e of batch) {
      if (e.prevHash !== prev || eventHash(prev, e) !== e.hash) return { ok: false, brokenAt: e.seq };
      prev = e.hash;
      after = e.seq;
      count++;
    }
  }
}
