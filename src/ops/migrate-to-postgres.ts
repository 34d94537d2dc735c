/**
 * `db migrate-to-postgres --from <metadata.db> [--to postgres://…]`: copies an embedded
 * registry's metadata (SQLite) into an empty PostgreSQL database or schema, then proves the copy
 * before it becomes visible. Blob bytes are not copied: they stay in the storage driver, which
 * the PostgreSQL-backed processes share (PRODUCT.md §9). Stop the registry first: the copy is a
 * consistent snapshot of the source, so writes made after it starts would be left behind. The
 * source is first brought to the current SQLite schema, as the registry does when it starts, so
 * its columns are the ones the PostgreSQL schema mirrors.
 *
 * Everything happens in ONE target transaction, holding the registry's write lock: the tables,
 * the AUTOINCREMENT counters, then the checks (row counts per table, the event chain verified
 * on the target, its head equal to the source's). A failure anywhere rolls back and leaves the
 * target as empty as it was, so the command can simply be run again.
 */
import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { isPostgresUrl, openDatabase, openSqliteDatabase, type Db } from '../meta/db.js';
import { verifyChain } from '../meta/events.js';
import type { PostgresDatabase } from '../meta/pg/facade.js';
import { AUTOINCREMENT_COLUMNS } from '../meta/pg/translate.js';

export class MigrationError extends Error {}

export interface MigrationReport {
  tables: { name: string; rows: number }[];
  rows: number;
  events: number;
  head: string | null;
  /** AUTOINCREMENT counters set on the target (sqlite_sequence's values). */
  counters: Record<string, number>;
  /** Fractional millisecond timestamps (SQLite REAL in an integer column) rounded into bigint. */
  rounded: number;
  /** Tables only the target has, with their rows after the copy (filled by its triggers, e.g. the search index, or empty). */
  targetOnly: { name: string; rows: number }[];
  seconds: number;
  /** The copy transaction alone (opening, migrating the target schema and planning excluded). */
  copySeconds: number;
}

/** SQLite's own tables, the FTS5 index (search_fts and its shadow tables: PostgreSQL indexes search_docs its own way) and drizzle's journal. */
const SOURCE_SKIP = /^(sqlite_|search_fts|__drizzle_migrations$)/;
/** PostgreSQL bookkeeping: the migration journal and the AUTOINCREMENT counters (set from sqlite_sequence below). */
const TARGET_SKIP = new Set(['artifact_store_migrations', 'autoincrement_counters']);
/** Rows per INSERT, and a byte budget per INSERT (manifest payloads can be large). */
const BATCH_ROWS = 500;
const BATCH_BYTES = 4 << 20;
const MAX_PARAMS = 30_000;

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;

interface TableCopy {
  name: string;
  columns: string[];
  /** Target columns of type bigint: a fractional SQLite value there is rounded (as pg's own default rounds). */
  bigint: Set<string>;
}

export function migrateToPostgres(from: string, to: string, log: (line: string) => void = () => {}): MigrationReport {
  if (!isPostgresUrl(to)) throw new MigrationError(`the target must be a postgres:// URL, not ${JSON.stringify(redact(to))}`);
  if (!existsSync(from)) throw new MigrationError(`no SQLite database at ${from}`);
  const started = process.hrtime.bigint();
  // The SQLite path explicitly: test mode (ARTIFACT_STORE_TEST_POSTGRES_URL) must not redirect the source.
  const source = openSqliteDatabase(from);
  let target: Db | undefined;
  try {
    target = openDatabase(to);
    const src = source.$client;
    const pg = target.$client as unknown as PostgresDatabase;
    // One read transaction: every table comes from the same snapshot (WAL), even if a writer is still running.
    src.exec('BEGIN');
    const plan = planTables(src, pg);
    let report!: MigrationReport;
    const copyStarted = process.hrtime.bigint();
    pg.transaction(() => {
      // Under the write lock: no registry process can write between the check and the copy.
      refuseUnlessEmpty(pg, plan.tables);
      report = copyAll(source, target!, plan, log);
    })();
    src.exec('COMMIT');
    const now = process.hrtime.bigint();
    report.copySeconds = Number(now - copyStarted) / 1e9;
    report.seconds = Number(now - started) / 1e9;
    return report;
  } finally {
    if (source.$client.inTransaction) source.$client.exec('ROLLBACK');
    source.$client.close();
    target?.$client.close();
  }
}

interface Plan {
  tables: TableCopy[];
  targetOnly: string[];
}

function planTables(src: Database.Database, pg: PostgresDatabase): Plan {
  const sourceTables = (src.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]).filter((t) => !SOURCE_SKIP.test(t));
  const targetTables = (pg.prepare("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1").pluck().all() as string[]).filter((t) => !TARGET_SKIP.has(t));
  const missing = sourceTables.filter((t) => !targetTables.includes(t));
  if (missing.length > 0) throw new MigrationError(`the target has no table for ${missing.join(', ')}: is the PostgreSQL schema older than this database?`);
  const tables: TableCopy[] = [];
  for (const name of sourceTables) {
    // table_xinfo's hidden 2/3 are generated columns (search_docs.scope): PostgreSQL computes its own.
    const columns = (src.prepare('SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid').pluck().all(name) as string[]);
    const pgColumns = pg.prepare("SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND is_generated = 'NEVER'").all(name) as { name: string; type: string }[];
    const pgNames = new Set(pgColumns.map((c) => c.name));
    const onlySource = columns.filter((c) => !pgNames.has(c));
    const onlyTarget = [...pgNames].filter((c) => !columns.includes(c));
    if (onlySource.length > 0 || onlyTarget.length > 0) {
      throw new MigrationError(`table ${name} differs: only in SQLite [${onlySource.join(', ')}], only in PostgreSQL [${onlyTarget.join(', ')}]`);
    }
    tables.push({ name, columns, bigint: new Set(pgColumns.filter((c) => c.type === 'bigint').map((c) => c.name)) });
  }
  return { tables: dependencyOrder(tables, foreignKeys(src, pg, sourceTables)), targetOnly: targetTables.filter((t) => !sourceTables.includes(t)) };
}

/** child → parents, from both schemas' foreign keys (they should agree; the union is safe either way). */
function foreignKeys(src: Database.Database, pg: PostgresDatabase, tables: string[]): Map<string, Set<string>> {
  const deps = new Map<string, Set<string>>(tables.map((t) => [t, new Set<string>()]));
  const add = (child: string, parent: string) => {
    if (child !== parent && deps.has(child) && deps.has(parent)) deps.get(child)!.add(parent);
  };
  for (const t of tables) for (const parent of src.prepare('SELECT "table" FROM pragma_foreign_key_list(?)').pluck().all(t) as string[]) add(t, parent);
  const pgFks = pg
    .prepare("SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace")
    .all() as { child: string; parent: string }[];
  for (const fk of pgFks) add(fk.child, fk.parent);
  return deps;
}

/** Parents before children (principals before api_keys, repositories and blobs before repository_blobs…), else by name. */
function dependencyOrder(tables: TableCopy[], deps: Map<string, Set<string>>): TableCopy[] {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const ordered: TableCopy[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new MigrationError(`foreign keys form a cycle: ${[...path, name].join(' → ')}`);
    state.set(name, 'visiting');
    for (const parent of [...deps.get(name)!].sort()) visit(parent, [...path, name]);
    state.set(name, 'done');
    ordered.push(byName.get(name)!);
  };
  for (const t of tables) visit(t.name, []);
  return ordered;
}

/**
 * A migration goes into an empty database: merging two registries' ids and event chains is not
 * a copy. The one row a fresh schema already holds is gc_state's seed (generation 0, no holder),
 * which the copy replaces with the source's.
 */
function refuseUnlessEmpty(pg: PostgresDatabase, tables: TableCopy[]): void {
  const full: string[] = [];
  for (const { name } of tables) {
    const sql = name === 'gc_state' ? 'SELECT count(*) FROM gc_state WHERE generation <> 0 OR holder IS NOT NULL' : `SELECT count(*) FROM ${q(name)}`;
    const n = pg.prepare(sql).pluck().get() as number;
    if (n > 0) full.push(`${name} (${n} rows)`);
  }
  if (full.length > 0) throw new MigrationError(`the target database is not empty: ${full.join(', ')}. Migrate into a new database or schema (postgres://…?schema=<new name>)`);
}

/**
 * Tables the target's triggers write while other tables are copied: emptied and copied last,
 * as they are in SQLite. search_docs is derived (triggers on manifests, tags, visibility and
 * family versions); rebuilding it by those triggers would give other ids (the search cursor's
 * tie-break), updated_at from the copy's order instead of the tag history, and family words only
 * for entries copied before their manifest. Copying its rows gives identical content (pg
 * recomputes the generated scope from the same columns), and its own triggers then fill what
 * PostgreSQL derives from it (the search_fts index, which SQLite's FTS5 tables are not copied to).
 */
const DERIVED_LAST = ['search_docs'];

function copyAll(source: Db, target: Db, plan: Plan, log: (line: string) => void): MigrationReport {
  const src = source.$client;
  const pg = target.$client as unknown as PostgresDatabase;
  // Triggers stay on, as for any write: foreign keys are checked, tables only PostgreSQL has are
  // fed, and a trigger that added rows to a copied table shows up in the row counts below. The
  // AUTOINCREMENT triggers only raise counters for explicit ids; setCounters sets them after.
  // Except the ones maintaining DERIVED_LAST from other tables: their work would be emptied away.
  const order = [...plan.tables.filter((t) => !DERIVED_LAST.includes(t.name)), ...plan.tables.filter((t) => DERIVED_LAST.includes(t.name))];
  const paused = derivedMaintainers(pg);
  for (const t of paused) pg.execNative(`ALTER TABLE ${q(t.table)} DISABLE TRIGGER ${q(t.trigger)}`);
  pg.execNative('DELETE FROM gc_state');
  const tables: MigrationReport['tables'] = [];
  let rounded = 0;
  for (const t of order) {
    if (DERIVED_LAST.includes(t.name)) pg.execNative(`DELETE FROM ${q(t.name)}`);
    const t0 = performance.now();
    let copied: { rows: number; rounded: number };
    try {
      copied = copyTable(src, pg, t);
    } catch (err) {
      throw new MigrationError(`copying ${t.name} failed, nothing was committed: ${err instanceof Error ? err.message : String(err)}`);
    }
    rounded += copied.rounded;
    tables.push({ name: t.name, rows: copied.rows });
    if (copied.rows > 0) log(`${t.name}: ${copied.rows} rows in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  }
  for (const t of paused) pg.execNative(`ALTER TABLE ${q(t.table)} ENABLE TRIGGER ${q(t.trigger)}`);
  const counters = setCounters(src, pg, plan.tables);
  const { events, head } = verifyCopy(source, target, tables);
  const targetOnly = plan.targetOnly.map((name) => ({ name, rows: pg.prepare(`SELECT count(*) FROM ${q(name)}`).pluck().get() as number }));
  return { tables, rows: tables.reduce((n, t) => n + t.rows, 0), events, head, counters, rounded, targetOnly, seconds: 0, copySeconds: 0 };
}

/**
 * Triggers on other tables whose function writes a DERIVED_LAST table (the search upkeep on
 * manifests, tags, visibility, family versions: ~4 ms a manifest here, half the copy's time).
 * Paused by ALTER TABLE, which is transactional (the ROLLBACK of a failed copy re-enables them)
 * and needs the tables' owner: the role that ran the migrations. Any other role keeps them on,
 * which is slower and gives the same result.
 */
function derivedMaintainers(pg: PostgresDatabase): { table: string; trigger: string }[] {
  const names = DERIVED_LAST.map((n) => `'${n}'`).join(', ');
  const rows = pg
    .prepare(
      `SELECT c.relname AS "table", t.tgname AS "trigger", pg_has_role(current_user, c.relowner, 'USAGE') AS owner FROM pg_trigger t
       JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
       WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace AND c.relname NOT IN (${names})
         AND p.prosrc ~* '\\m(${DERIVED_LAST.join('|')})\\M' ORDER BY 1, 2`,
    )
    .all() as { table: string; trigger: string; owner: number }[];
  return rows.every((r) => r.owner) ? rows.map(({ table, trigger }) => ({ table, trigger })) : [];
}

function copyTable(src: Database.Database, pg: PostgresDatabase, t: TableCopy): { rows: number; rounded: number } {
  const cols = t.columns.map(q).join(', ');
  const width = t.columns.length;
  const maxRows = Math.max(1, Math.min(BATCH_ROWS, Math.floor(MAX_PARAMS / width)));
  const bigintAt = t.columns.map((c) => t.bigint.has(c));
  let batch: unknown[] = [];
  let bytes = 0;
  let rows = 0;
  let rounded = 0;
  const flush = () => {
    const n = batch.length / width;
    if (n === 0) return;
    const tuples: string[] = [];
    for (let r = 0; r < n; r++) tuples.push(`(${t.columns.map((_, c) => `$${r * width + c + 1}`).join(', ')})`);
    pg.execute(`INSERT INTO ${q(t.name)} (${cols}) VALUES ${tuples.join(', ')}`, batch, 'array');
    rows += n;
    batch = [];
    bytes = 0;
  };
  // rowid order where there is one: ids and event seqs arrive ascending, as they were written.
  const order = (src.prepare("SELECT count(*) FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'").pluck().get(t.name) as number) > 0 ? '' : ' ORDER BY rowid';
  const read = src.prepare(`SELECT ${cols} FROM ${q(t.name)}${order}`).raw();
  for (const row of read.iterate() as IterableIterator<unknown[]>) {
    for (let c = 0; c < width; c++) {
      const v = row[c];
      if (bigintAt[c] && typeof v === 'number' && !Number.isInteger(v)) {
        // unixepoch('subsec') * 1000 defaults can leave a REAL in an integer column.
        row[c] = Math.round(v);
        rounded++;
      } else if (typeof v === 'string') bytes += v.length;
      else if (Buffer.isBuffer(v)) bytes += v.length * 2;
      batch.push(row[c] ?? null);
    }
    if (batch.length / width >= maxRows || bytes >= BATCH_BYTES) flush();
  }
  flush();
  return { rows, rounded };
}

/**
 * Each AUTOINCREMENT counter at sqlite_sequence's value: ids of deleted rows are never handed out
 * again (max(id) would not know them). Counters the copy's triggers raised (search_docs rows
 * built and emptied) go back to the source's; none ends below the highest id now in its table.
 */
function setCounters(src: Database.Database, pg: PostgresDatabase, tables: TableCopy[]): Record<string, number> {
  const counters: Record<string, number> = {};
  const names = new Set(tables.map((t) => t.name));
  const hasSequence = (src.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'").pluck().get() as number) > 0;
  const sequence = hasSequence ? (src.prepare('SELECT name, seq FROM sqlite_sequence ORDER BY name').all() as { name: string; seq: number }[]) : [];
  for (const { name, seq } of sequence) if (names.has(name)) counters[name] = seq;
  for (const [table, column] of Object.entries(AUTOINCREMENT_COLUMNS)) {
    if (!names.has(table)) continue;
    const max = (pg.prepare(`SELECT max(${q(column)}) FROM ${q(table)}`).pluck().get() as number | null) ?? 0;
    if (max > (counters[table] ?? 0)) counters[table] = max;
  }
  pg.execNative('DELETE FROM autoincrement_counters');
  for (const [name, seq] of Object.entries(counters)) pg.execute('INSERT INTO autoincrement_counters (name, seq) VALUES ($1, $2)', [name, seq], 'array');
  return counters;
}

/** Inside the transaction: a mismatch throws, and the rollback leaves the target empty. */
function verifyCopy(source: Db, target: Db, copied: MigrationReport['tables']): { events: number; head: string | null } {
  const pg = target.$client as unknown as PostgresDatabase;
  const problems: string[] = [];
  for (const t of copied) {
    const n = pg.prepare(`SELECT count(*) FROM ${q(t.name)}`).pluck().get() as number;
    const expected = source.$client.prepare(`SELECT count(*) FROM ${q(t.name)}`).pluck().get() as number;
    if (n !== t.rows || n !== expected) problems.push(`${t.name}: ${expected} rows in SQLite, ${t.rows} copied, ${n} in PostgreSQL`);
  }
  const chain = verifyChain(target);
  if (!chain.ok) problems.push(`the event chain does not verify on the target at seq ${chain.brokenAt}`);
  const headOf = (db: Db) => (db.$client.prepare('SELECT hash FROM events ORDER BY seq DESC LIMIT 1').pluck().get() as string | undefined) ?? null;
  const head = headOf(target);
  if (head !== headOf(source)) problems.push(`event head differs: SQLite ${headOf(source)}, PostgreSQL ${head}`);
  if (problems.length > 0) throw new MigrationError(`the copy does not match, nothing was committed:\n  ${problems.join('\n  ')}`);
  return { events: chain.ok ? chain.count : 0, head };
}

/** A URL for messages: the password replaced. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

/** The CLI's `db migrate-to-postgres`: exit 0 when copied and verified, 1 when refused or not matching, 2 on a usage error. */
export function runMigrateCommand(opts: { from?: string | undefined; to?: string | undefined }, out: (s: string) => void, err: (s: string) => void): number {
  if (!opts.from) {
    err('db migrate-to-postgres: --from <SQLite metadata file> is required (e.g. ./data/metadata.db)\n');
    return 2;
  }
  if (!opts.to) {
    err('db migrate-to-postgres: no target: pass --to postgres://… or set ARTIFACT_STORE_DATABASE_URL (config databaseUrl)\n');
    return 2;
  }
  try {
    const r = migrateToPostgres(opts.from, opts.to, (line) => out(`  ${line}\n`));
    const nonEmpty = r.tables.filter((t) => t.rows > 0).length;
    out(
      `migrated ${opts.from} → ${redact(opts.to)}: ${r.tables.length} tables (${nonEmpty} with rows), ${r.rows} rows, ${r.events} events (chain verified, head ${r.head ?? 'none'}) in ${r.seconds.toFixed(2)} s (copy and checks ${r.copySeconds.toFixed(2)} s: ${Math.round(r.rows / Math.max(r.copySeconds, 1e-3))} rows/s)\n`,
    );
    if (r.rounded > 0) out(`note: ${r.rounded} fractional millisecond timestamps rounded to whole milliseconds\n`);
    if (r.targetOnly.length > 0) out(`note: tables only PostgreSQL has (derived by its triggers, not copied): ${r.targetOnly.map((t) => `${t.name} ${t.rows} rows`).join(', ')}\n`);
    return 0;
  } catch (e) {
    err(`db migrate-to-postgres: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
