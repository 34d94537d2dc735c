/**
 * A test's direct handle on a registry's metadata, to read or seed rows the API does not expose:
 * the SQLite file, or (test mode on PostgreSQL, ARTIFACT_STORE_TEST_POSTGRES_URL) the schema the
 * registry derives from that file's path, through the better-sqlite3-style facade. SQL written
 * for it must run on both (the facade rewrites `?`, INSERT OR IGNORE and the like).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { openDatabase, testModeSchema } from '../../src/meta/db.js';

export const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;

export function openMetadata(dataDir: string, options: { readonly?: boolean } = {}): Database.Database {
  const file = join(dataDir, 'metadata.db');
  return onPostgres ? openDatabase(file).$client : new Database(file, options);
}

/** Test mode's schema for a data directory's metadata. */
export function metadataSchema(dataDir: string): string {
  return testModeSchema(join(dataDir, 'metadata.db'));
}
