/**
 * Rebuilding the metadata tables from the event log (PRODUCT.md §4: the tables are a
 * materialised view of the log). `rebuild` replays the log, in seq order, into a fresh database
 * (migrations applied, hash chain re-verified on the way); `check` rebuilds into a temporary
 * database and compares every replayed table with the live one, row by row by key.
 *
 * Both back ends: the live database is a SQLite file or PostgreSQL (a URL, or a test-mode path
 * that openDatabase redirects to a schema). A rebuild target is opened by openDatabase too, so it
 * is a new SQLite file or a new, empty PostgreSQL schema (`postgres://…?schema=<new>`). `check`
 * on PostgreSQL rebuilds into a throw-away schema beside the live one in the same database
 * (`<schema>_rebuild_<random>`), dropped after the comparison. `rebuild --into <file>` from a
 * PostgreSQL registry writes a SQLite file: the replay only reads the log through the source
 * connection, so the target's back end is whatever the target names (a portable copy).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isPostgresUrl, openDatabase } from '../meta/db.js';
import { eventHash, GENESIS_HASH, type EventRow } from '../meta/events.js';
import type { PostgresDatabase } from '../meta/pg/facade.js';
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

/** The facade of a PostgreSQL connection (openDatabase's `$client`), or undefined for SQLite. */
function asPostgres(db: Database.Database): PostgresDatabase | undefined {
  return (db as unknown as { dialect?: string }).dialect === 'postgres' ? (db as unknown as PostgresDatabase) : undefined;
}

/** A target as printed: a postgres:// URL without its password (no secrets in output or logs). */
function shown(target: string): string {
  if (!isPostgresUrl(target)) return target;
  const url = new URL(target);
  if (url.password) url.password = '***';
  return url.toString();
}

/**
 * Opens the rebuild target, which must be new: a SQLite file that does not exist, or a
 * PostgreSQL schema holding no rows yet (openDatabase creates and migrates it; a test-mode path
 * names a schema, not a file, so there the emptiness decides too).
 */
function openTarget(target: string): Database.Database {
  if (existsSync(target)) throw new ReplayError(`${target} exists: rebuild writes a new database`);
  const out = openDatabase(target).$client;
  const pg = asPostgres(out);
  if (!pg) {
    out.pragma('synchronous = OFF');
    return out;
  }
  const used = ['events', ...TABLE_RULES.map((r) => r.table)].filter((t) => out.prepare(`SELECT EXISTS (SELECT 1 FROM "${t}")`).pluck().get());
  if (used.length > 0) {
    out.close();
    throw new ReplayError(`${shown(target)} exists and holds rows (${used.slice(0, 5).join(', ')}): rebuild writes a new database or schema`);
  }
  // A throw-away copy: no flush per commit, and the one large refill (refireDerived) may take
  // longer than the connection's statement_timeout.
  pg.execNative("SET synchronous_commit = off; SET statement_timeout = '0'");
  return out;
}

/** The log in seq order, a page at a time (one query per page: bounded memory on either back end). */
function* eventsOf(source: Database.Database): Generator<RawEvent> {
  const page = source.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
  let after = 0;
  for (;;) {
    const rows = page.all(after, BATCH) as RawEvent[];
    yield* rows;
    if (rows.length < BATCH) return;
    after = rows[rows.length - 1]!.seq;
  }
}

/**
 * Replays every event of `source` (an open connection; read inside the caller's transaction
 * for a consistent snapshot) into the new database `target` (a file path or a postgres:// URL).
 * Throws ReplayError on a broken chain or an event the log cannot reproduce.
 */
export function rebuildInto(source: Database.Database, target: string): RebuildResult {
  const started = performance.now();
  const out = openTarget(target);
  try {
    // Triggers that maintain derived indexes (search) fire once per event otherwise: they are
    // set aside during the replay and fed the final rows once (see refireDerived).
    const deferred = deferTriggers(out);
    const ctx = new ReplayContext(out);
    const insertEvent = out.prepare(
      'INSERT INTO events (seq, "time", actor, action, repository, digest, tag, "before", "after", reason, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const unhandled: Record<string, number> = {};
    const forEvidence: EventRow[] = [];
    let prev = GENESIS_HASH;
    let count = 0;
    let batch: RawEvent[] = [];
    const apply = out.transaction((rows: RawEvent[]) => {
      for (const r of rows) {
        insertEvent.run(r.seq, r.time, r.actor, r.action, r.repository, r.digest, r.tag, r.before, r.after, r.reason, r.prev_hash, r.hash);
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
    for (const r of eventsOf(source)) {
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

/** Tables whose insert triggers feed derived tables (search_docs, and search_fts from it). */
const DERIVING_TABLES = ['manifests', 'tags'];

/** How to put the deriving triggers back: SQLite's CREATE TRIGGER texts, or PostgreSQL's names to enable. */
type Deferred = { sqlite: string[] } | { postgres: { table: string; trigger: string }[] };

function deferTriggers(db: Database.Database): Deferred {
  const pg = asPostgres(db);
  if (pg) {
    // PostgreSQL: disabled, not dropped (ALTER TABLE is transactional; the schema is ours, new).
    // Not session_replication_role: that would also silence the AUTOINCREMENT triggers, which
    // raise autoincrement_counters for the explicit ids the replay writes (drizzle-pg/0000_init.sql),
    // and foreign keys. None of those sits on these two tables; the name test keeps it so.
    const rows = db
      .prepare(
        `SELECT c.relname AS "table", t.tgname AS "trigger" FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace AND c.relname IN (${DERIVING_TABLES.map(() => '?').join(', ')})
           AND t.tgname NOT LIKE '%autoincrement%' ORDER BY 1, 2`,
      )
      .all(...DERIVING_TABLES) as { table: string; trigger: string }[];
    for (const r of rows) pg.execNative(`ALTER TABLE "${r.table}" DISABLE TRIGGER "${r.trigger}"`);
    return { postgres: rows };
  }
  const triggers = db
    .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (${DERIVING_TABLES.map(() => '?').join(', ')})`)
    .all(...DERIVING_TABLES) as { name: string; sql: string }[];
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name}"`);
  return { sqlite: triggers.map((t) => t.sql) };
}

/**
 * Restores the triggers and re-inserts the final manifest rows so they fire once per manifest
 * (tags are in place by then, so each derived row sees its final tags).
 */
function refireDerived(db: Database.Database, deferred: Deferred): void {
  const pg = asPostgres(db);
  if ('postgres' in deferred) for (const r of deferred.postgres) pg!.execNative(`ALTER TABLE "${r.table}" ENABLE TRIGGER "${r.trigger}"`);
  else for (const sql of deferred.sqlite) db.exec(sql);
  // Sent as written on PostgreSQL (the SQLite rewriting would read `AS SELECT` as an alias to quote).
  const exec = (sql: string) => (pg ? pg.execNative(sql) : db.exec(sql));
  exec('CREATE TEMP TABLE replay_manifests AS SELECT * FROM manifests');
  exec('DELETE FROM manifests');
  // Replay order gives the derived rows their ids: SQLite's rowid; PostgreSQL has no insertion
  // order, created_at (the replay's clock) is the nearest, ties broken by the key.
  exec(`INSERT INTO manifests SELECT * FROM replay_manifests ORDER BY ${pg ? 'created_at, repository_id, digest' : 'rowid'}`);
  exec('DROP TABLE replay_manifests');
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

/**
 * The live database for reading: SQLite read-only (a missing file is an error, not a new
 * database); PostgreSQL through openDatabase (a URL, or a path the test suite's PostgreSQL run
 * redirects to its schema, as openDatabase does).
 */
function openLive(target: string): Database.Database {
  const pg = isPostgresUrl(target) || (!!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL && target !== ':memory:');
  return pg ? openDatabase(target).$client : new Database(target, { readonly: true, fileMustExist: true });
}

/**
 * One read snapshot for the log and the tables while the server keeps writing. SQLite: a read
 * transaction (WAL). PostgreSQL: REPEATABLE READ, read only, begun natively: the facade's BEGIN
 * would take the registry's write lock and stall every writer for the whole rebuild.
 */
function readSnapshot<T>(live: Database.Database, fn: () => T): T {
  const pg = asPostgres(live);
  if (pg) pg.execNative('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  else live.exec('BEGIN');
  try {
    return fn();
  } finally {
    if (pg) {
      if (pg.open) pg.execNative('COMMIT');
    } else if (live.inTransaction) live.exec('COMMIT');
  }
}

/**
 * Where `check` rebuilds: a temporary SQLite file, or on PostgreSQL a new schema beside the live
 * one (same server and database, same rights), `<live schema>_rebuild_<random>`.
 */
function scratchTarget(live: Database.Database): { target: string; cleanup: () => void } {
  const pg = asPostgres(live);
  if (!pg) {
    const dir = mkdtempSync(join(tmpdir(), 'artifact-store-check-'));
    return { target: join(dir, 'rebuilt.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  const base = pg.options.schema ?? (live.prepare('SELECT current_schema()').pluck().get() as string);
  const schema = `${base.slice(0, 63 - 18)}_rebuild_${randomBytes(4).toString('hex')}`;
  const url = new URL(pg.options.url);
  url.searchParams.set('schema', schema);
  return { target: url.toString(), cleanup: () => void (pg.open && pg.execNative(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)) };
}

/** Rebuilds the live database's log into a temporary database and compares. */
export function checkDatabase(liveTarget: string): CheckResult {
  const live = openLive(liveTarget);
  try {
    const scratch = scratchTarget(live);
    try {
      return readSnapshot(live, () => {
        const result = rebuildInto(live, scratch.target);
        const rebuilt = asPostgres(live) ? openDatabase(scratch.target).$client : new Database(scratch.target, { readonly: true });
        try {
          return { ...result, differences: compareTables(live, rebuilt) };
        } finally {
          rebuilt.close();
        }
      });
    } finally {
      scratch.cleanup();
    }
  } finally {
    live.close();
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
      const live = openLive(liveFile);
      try {
        const r = readSnapshot(live, () => rebuildInto(live, into));
        write(`rebuilt ${shown(into)} from ${r.events} events (head ${r.head}) in ${Math.round(r.ms)} ms\n`);
      } finally {
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
