/** Opens the metadata database (SQLite file, or PostgreSQL by URL) and applies its migrations. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { migratePostgres } from './pg/migrate.js';
import { PostgresDatabase } from './pg/facade.js';
import * as schema from './schema.js';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/** drizzle/ (and drizzle-pg/) sit at the package root, whether we run from src/ (tsx, vitest) or dist/src/. */
export function migrationsFolder(name: 'drizzle' | 'drizzle-pg' = 'drizzle'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  const marker = name === 'drizzle' ? join('meta', '_journal.json') : '0000_init.sql';
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, name);
    if (existsSync(join(candidate, marker))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`${name}/ migrations folder not found`);
}

/** The metadata database a configuration names: PostgreSQL when databaseUrl is set, else `<dataDir>/metadata.db`. */
export function metadataTarget(config: { dataDir: string; databaseUrl?: string | undefined }): string {
  return config.databaseUrl ?? join(resolve(config.dataDir), 'metadata.db');
}

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/** True when the metadata lives in PostgreSQL (the few SQLite-only statements branch on it). */
export function isPostgres(db: Db): boolean {
  return (db.$client as unknown as { dialect?: string }).dialect === 'postgres';
}

/**
 * A number that changes when another connection (another registry process) committed: SQLite's
 * PRAGMA data_version. On PostgreSQL, the event log's head: every privileged write appends an
 * event in its transaction, so a cache keyed on it sees every other process's change.
 */
export function changeCounter(db: Db): () => number {
  const q = isPostgres(db) ? db.$client.prepare('SELECT coalesce(max(seq), 0) FROM events').pluck() : db.$client.prepare('PRAGMA data_version').pluck();
  return () => q.get() as number;
}

/**
 * Opens `target`: a SQLite file path, `:memory:`, or a `postgres://` URL (`?schema=name` picks a
 * schema other than public). With ARTIFACT_STORE_TEST_POSTGRES_URL set (the test suite's second
 * run), a file path opens instead its own schema on that server, named from the path's hash, so
 * every test's data directory keeps isolated metadata shared by its server, CLI and test process.
 */
export function openDatabase(target: string): Db {
  const testPg = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
  if (isPostgresUrl(target)) return openPostgres(target);
  if (testPg && target !== ':memory:') {
    return openPostgres(testPg, testModeSchema(target));
  }
  return openSqlite(target);
}

/** The schema test mode opens for a SQLite file path (a hash of its absolute path). */
export function testModeSchema(file: string): string {
  return `t_${createHash('sha256').update(resolve(file)).digest('hex').slice(0, 24)}`;
}

function openPostgres(url: string, schemaOverride?: string): Db {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Node's message repeats the whole URL, password included: never print it.
    throw new Error('the database URL is not a valid URL (percent-encode reserved characters such as # / ? @ in the user name and password)');
  }
  const schemaName = schemaOverride ?? parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  const connection = parsed.toString();
  if (schemaName !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schemaName)) {
    throw new Error(`database schema name ${JSON.stringify(schemaName)} must be lower-case letters, digits and _`);
  }
  const client = new PostgresDatabase({ url: connection, schema: schemaName });
  try {
    migratePostgres(client, schemaName, migrationsFolder('drizzle-pg'));
  } catch (err) {
    client.close();
    throw err;
  }
  const db = drizzle(client as unknown as Database.Database, { schema }) as Db;
  immediateByDefault(db);
  return db;
}

/** A SQLite file even in test mode (ARTIFACT_STORE_TEST_POSTGRES_URL): `db migrate-to-postgres` reads its source so. */
export function openSqliteDatabase(file: string): Db {
  return openSqlite(file);
}

function openSqlite(file: string): Db {
  if (file !== ':memory:') mkdirSync(dirname(resolve(file)), { recursive: true });
  const sqlite = new Database(file);
  // WAL lets readers run beside the single writer; NORMAL is durable across process crashes
  // (an OS crash can lose the last transactions, never corrupt the file). Pushes, tag moves,
  // deletes and blob links go through the group commit (write-batcher.ts), which fdatasyncs the
  // WAL before answering: those survive power loss too, and so does everything committed before.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = drizzle(sqlite, { schema }) as Db;
  immediateByDefault(db);
  migrate(db, { migrationsFolder: migrationsFolder() });
  return db;
}

/**
 * Every `db.transaction(fn)` starts with BEGIN IMMEDIATE unless it asks otherwise. A deferred
 * transaction reads first and upgrades to a write lock later; when another process (the CLI
 * beside the server, a second server) committed in between, SQLite answers SQLITE_BUSY at
 * once, and busy_timeout cannot retry an upgrade. IMMEDIATE takes the write lock up front, so
 * a second writer waits (busy_timeout) instead of failing. Nested `tx.transaction` calls are
 * savepoints and are unaffected; read-only code does not use transactions.
 */
function immediateByDefault(db: Db): void {
  const begin = db.transaction.bind(db);
  db.transaction = ((fn, config) => begin(fn, { behavior: 'immediate', ...config })) as Db['transaction'];
}

const repoIdQueries = new WeakMap<Database.Database, Database.Statement<[string], number>>();

/** `SELECT id FROM repositories WHERE name = ?`, prepared once per connection: every push and most reads ask it. */
export function repositoryIdQuery(db: Db): Database.Statement<[string], number> {
  let q = repoIdQueries.get(db.$client);
  if (!q) {
    repoIdQueries.set(db.$client, (q = db.$client.prepare<[string], number>('SELECT id FROM repositories WHERE name = ?').pluck()));
    keepWithinTransactions(db, q, ['repositories']);
  }
  return q;
}

/**
 * PostgreSQL: a write transaction may keep this lookup's answers until a statement names one of
 * `tables` (pg/transaction-memory.ts): group-committed items ask the same few things. SQLite
 * answers in microseconds and keeps nothing.
 */
export function keepWithinTransactions(db: Db, stmt: { readonly source: string }, tables: string[]): void {
  const memory = (db.$client as unknown as { txMemory?: { allowLookup(text: string, tables: string[]): void } }).txMemory;
  memory?.allowLookup(stmt.source, tables);
}

/**
 * A one-row read for the hot pull paths that does not hold the event loop: on PostgreSQL it goes
 * through the pipelined connection (pg/async-reader.ts; one round trip per event-loop turn for
 * all concurrent pulls), on SQLite it is the statement itself (answered in microseconds). Only
 * for reads outside transactions.
 */
export function asyncGet<P extends unknown[], R>(stmt: Database.Statement<P, R>): (...params: P) => R | undefined | Promise<R | undefined> {
  const pg = stmt as unknown as { getAsync?: (...params: unknown[]) => Promise<unknown> | undefined };
  if (typeof pg.getAsync !== 'function') return (...params) => stmt.get(...params);
  return (...params) => (pg.getAsync!(...params) as Promise<R | undefined> | undefined) ?? stmt.get(...params);
}

/** asyncGet for every row. */
export function asyncAll<P extends unknown[], R>(stmt: Database.Statement<P, R>): (...params: P) => R[] | Promise<R[]> {
  const pg = stmt as unknown as { allAsync?: (...params: unknown[]) => Promise<unknown[]> | undefined };
  if (typeof pg.allAsync !== 'function') return (...params) => stmt.all(...params);
  return (...params) => (pg.allAsync!(...params) as Promise<R[]> | undefined) ?? stmt.all(...params);
}
