/** Opens the metadata database (SQLite file) and applies migrations from drizzle/. */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as schema from './schema.js';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/** drizzle/ sits at the package root, whether we run from src/ (tsx, vitest) or dist/src/. */
function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'drizzle');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('drizzle/ migrations folder not found');
}

export function openDatabase(file: string): Db {
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
  if (!q) repoIdQueries.set(db.$client, (q = db.$client.prepare<[string], number>('SELECT id FROM repositories WHERE name = ?').pluck()));
  return q;
}
