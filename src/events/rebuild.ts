/**
 * Rebuilding the metadata tables from the event log (PRODUCT.md §4: the tables are a
 * materialised view of the log). `rebuild` replays the log, in seq order, into a fresh database
 * (migrations applied, hash chain re-verified on the way); `check` rebuilds into a temporary
 * database and compares every replayed table with the live one, row by row by key.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openDatabase } from '../meta/db.js';
import { eventHash, GENESIS_HASH, type EventRow } from '../meta/events.js';
import { EVIDENCE_ACTIONS, finishEvidence } from './replay/governance.js';
import { HANDLERS, TABLE_RULES } from './replay/index.js';
import { ReplayContext, ReplayError, type ParsedEvent, type TableRule } from './replay/types.js';

export { ReplayError };

export interface RebuildResult {
  events: number;
  head: string;
  /** Actions that changed no replayed table (denials, gc.run, webhooks…), with their counts. */
  unhandled: Record<string, number>;
  ms: number;
}

const BATCH = 10_000;

interface RawEvent {
  seq: number;
  time: number;
  actor: string;
  action: string;
  repository: string | null;
  digest: string | null;
  tag: string | null;
  before: string | null;
  after: string | null;
  reason: string | null;
  prev_hash: string;
  hash: string;
}

/**
 * Replays every event of `source` (an open connection; read inside the caller's transaction
 * for a consistent snapshot) into the new database file `target`. Throws ReplayError on a
 * broken chain or an event the log cannot reproduce.
 */
export function rebuildInto(source: Database.Database, target: string): RebuildResult {
  if (existsSync(target)) throw new ReplayError(`${target} exists: rebuild writes a new database`);
  const started = performance.now();
  const out = openDatabase(target).$client;
  try {
    out.pragma('synchronous = OFF');
    // Triggers that maintain derived indexes (search) fire once per event otherwise: they are
    // set aside during the replay and fed the final rows once (see refireDerived).
    const deferred = deferTriggers(out);
    const ctx = new ReplayContext(out);
    const insertEvent = out.prepare(
      'INSERT INTO events (seq, time, actor, action, repository, digest, tag, before, after, reason, prev_hash, hash) VALUES (@seq, @time, @actor, @action, @repository, @digest, @tag, @before, @after, @reason, @prev_hash, @hash)',
    );
    const unhandled: Record<string, number> = {};
    const forEvidence: EventRow[] = [];
    let prev = GENESIS_HASH;
    let count = 0;
    let batch: RawEvent[] = [];
    const apply = out.transaction((rows: RawEvent[]) => {
      for (const r of rows) {
        insertEvent.run(r);
        const handler = HANDLERS[r.action];
        if (handler) {
          const e = r as unknown as ParsedEvent;
          e.prevHash = r.prev_hash;
          e.beforeJson = r.before ? (JSON.parse(r.before) as Record<string, unknown>) : {};
          e.afterJson = r.after ? (JSON.parse(r.after) as Record<string, unknown>) : {};
          handler(ctx, e);
        } else unhandled[r.action] = (unhandled[r.action] ?? 0) + 1;
        // The evidence replay needs only where and when manifests were pushed: never keep the bytes.
        if (EVIDENCE_ACTIONS.has(r.action)) {
          forEvidence.push({ seq: r.seq, time: r.time, actor: r.actor, action: r.action, repository: r.repository, digest: r.digest, tag: r.tag, before: r.before, after: r.action === 'oci.manifest.push' ? null : r.after, reason: r.reason, prevHash: r.prev_hash, hash: r.hash });
        }
      }
    });
    for (const r of source.prepare('SELECT * FROM events ORDER BY seq').iterate() as IterableIterator<RawEvent>) {
      const row = { time: r.time, actor: r.actor, action: r.action, repository: r.repository, digest: r.digest, tag: r.tag, before: r.before, after: r.after, reason: r.reason };
      if (r.prev_hash !== prev || eventHash(prev, row) !== r.hash) throw new ReplayError(`hash chain broken at seq ${r.seq}: the log was altered`);
      prev = r.hash;
      count++;
      batch.push(r);
      if (batch.length >= BATCH) {
        apply(batch);
        batch = [];
      }
    }
    apply(batch);
    out.transaction(() => {
      finishEvidence(ctx, forEvidence);
      refireDerived(out, deferred);
    })();
    return { events: count, head: prev, unhandled, ms: performance.now() - started };
  } finally {
    out.close();
  }
}

/** Tables whose insert triggers feed derived tables (search_docs, search_fts). */
const DERIVING_TABLES = ['manifests', 'tags'];

function deferTriggers(db: Database.Database): string[] {
  const triggers = db
    .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (${DERIVING_TABLES.map(() => '?').join(', ')})`)
    .all(...DERIVING_TABLES) as { name: string; sql: string }[];
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name}"`);
  return triggers.map((t) => t.sql);
}

/**
 * Restores the triggers and re-inserts the final manifest rows so they fire once per manifest
 * (tags are in place by then, so each derived row sees its final tags).
 */
function refireDerived(db: Database.Database, triggers: string[]): void {
  for (const sql of triggers) db.exec(sql);
  db.exec('CREATE TEMP TABLE replay_manifests AS SELECT * FROM manifests');
  db.exec('DELETE FROM manifests');
  db.exec('INSERT INTO manifests SELECT * FROM replay_manifests ORDER BY rowid');
  db.exec('DROP TABLE replay_manifests');
}

export interface Difference {
  table: string;
  key: Record<string, unknown>;
  /** `live-only`: a row the log does not produce; `rebuilt-only`: a row missing from the live table. */
  kind: 'live-only' | 'rebuilt-only' | 'differs';
  columns?: { column: string; live: unknown; rebuilt: unknown }[];
}

const show = (v: unknown): unknown => (Buffer.isBuffer(v) ? `<${v.length} bytes, hex ${v.toString('hex').slice(0, 16)}…>` : v);
const same = (a: unknown, b: unknown): boolean => (Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : a === b);

function tableRows(db: Database.Database, rule: TableRule): Map<string, Record<string, unknown>> {
  const q = (c: string) => `"${c}"`;
  const cols = [...rule.columns.map(q), ...Object.keys(rule.presenceOnly ?? {}).map((c) => `(${q(c)} IS NOT NULL) AS ${q(c)}`)];
  const rows = db.prepare(`SELECT ${cols.join(', ')} FROM ${q(rule.table)}`).all() as Record<string, unknown>[];
  return new Map(rows.map((r) => [JSON.stringify(rule.key.map((k) => r[k])), r]));
}

/** Compares the replayed tables of two databases; every difference, row by row. */
export function compareTables(live: Database.Database, rebuilt: Database.Database, rules: TableRule[] = TABLE_RULES): Difference[] {
  const diffs: Difference[] = [];
  for (const rule of rules) {
    const a = tableRows(live, rule);
    const b = tableRows(rebuilt, rule);
    const keyOf = (r: Record<string, unknown>) => Object.fromEntries(rule.key.map((k) => [k, r[k]]));
    for (const [k, row] of a) {
      const other = b.get(k);
      if (!other) {
        diffs.push({ table: rule.table, key: keyOf(row), kind: 'live-only' });
        continue;
      }
      const columns = Object.keys(row)
        .filter((c) => !same(row[c], other[c]))
        .map((c) => ({ column: c, live: show(row[c]), rebuilt: show(other[c]) }));
      if (columns.length > 0) diffs.push({ table: rule.table, key: keyOf(row), kind: 'differs', columns });
    }
    for (const [k, row] of b) if (!a.has(k)) diffs.push({ table: rule.table, key: keyOf(row), kind: 'rebuilt-only' });
  }
  return diffs;
}

export interface CheckResult extends RebuildResult {
  differences: Difference[];
}

/** Rebuilds the live database's log into a temporary database and compares. */
export function checkDatabase(liveFile: string): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), 'artifact-store-check-'));
  const live = new Database(liveFile, { readonly: true, fileMustExist: true });
  try {
    // One read transaction: the log and the tables are read from the same snapshot while the
    // server keeps writing (WAL).
    live.exec('BEGIN');
    const result = rebuildInto(live, join(dir, 'rebuilt.db'));
    const rebuilt = new Database(join(dir, 'rebuilt.db'), { readonly: true });
    try {
      return { ...result, differences: compareTables(live, rebuilt) };
    } finally {
      rebuilt.close();
    }
  } finally {
    if (live.inTransaction) live.exec('COMMIT');
    live.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatDifference(d: Difference): string {
  const key = JSON.stringify(d.key);
  if (d.kind === 'live-only') return `${d.table} ${key}: in the live table, not produced by the log`;
  if (d.kind === 'rebuilt-only') return `${d.table} ${key}: produced by the log, missing from the live table`;
  return `${d.table} ${key}: ${d.columns!.map((c) => `${c.column} live=${JSON.stringify(c.live)} rebuilt=${JSON.stringify(c.rebuilt)}`).join(', ')}`;
}

/** The CLI's `events rebuild --into <file>` and `events check` (src/cli.ts). Returns the exit code. */
export function runEventsCommand(command: 'rebuild' | 'check', liveFile: string, into: string | undefined, write: (s: string) => void): number {
  try {
    if (command === 'rebuild') {
      if (!into) {
        write('events rebuild: --into <new database file> is required\n');
        return 2;
      }
      const live = new Database(liveFile, { readonly: true, fileMustExist: true });
      try {
        live.exec('BEGIN');
        const r = rebuildInto(live, into);
        write(`rebuilt ${into} from ${r.events} events (head ${r.head}) in ${Math.round(r.ms)} ms\n`);
      } finally {
        if (live.inTransaction) live.exec('COMMIT');
        live.close();
      }
      return 0;
    }
    const r = checkDatabase(liveFile);
    for (const d of r.differences.slice(0, 1000)) write(`${formatDifference(d)}\n`);
    if (r.differences.length > 0) {
      write(`events check: ${r.differences.length} difference(s) between the live tables and a rebuild from ${r.events} events\n`);
      return 1;
    }
    write(`events check: ${TABLE_RULES.length} tables match a rebuild from ${r.events} events (head ${r.head})\n`);
    return 0;
  } catch (err) {
    if (err instanceof ReplayError) {
      write(`events ${command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
