/**
 * The upload-session statements (POST, PATCH, PUT run several per request), prepared once per
 * connection: drizzle built and prepared each again per call, which cost more than running them
 * (profiled: ~30% of a small-blob push's main-thread time). Plain SQL that SQLite and
 * PostgreSQL (pg/translate.ts) both take as written.
 */
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';

export interface UploadRowState {
  repository: string;
  state: string;
}

export interface UploadStatements {
  insert: Statement<[string, string, string, string | null, number, number]>;
  countByOwner: Statement<[string], number>;
  get: Statement<[string], { id: string; repository: string; state: string; updatedAt: number }>;
  exists: Statement<[string], number>;
  save: Statement<[string, number, string]>;
  saveHeld: Statement<[string, number, string, string]>;
  remove: Statement<[string]>;
  /** Who holds the lease now (null: nobody; it may have run out). */
  holderOf: Statement<[string], string | null>;
  /** Takes the lease unless another holder's is live; returns the row it took it on. */
  lease: Statement<[string, number, string, number, string], UploadRowState>;
  renew: Statement<[number, string, string]>;
  release: Statement<[string, string]>;
}

const prepared = new WeakMap<Database.Database, UploadStatements>();

export function uploadStatements(client: Database.Database): UploadStatements {
  let s = prepared.get(client);
  if (!s) {
    s = {
      insert: client.prepare('INSERT INTO uploads (id, repository, state, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)'),
      countByOwner: client.prepare<[string], number>('SELECT count(*) FROM uploads WHERE owner = ?').pluck(),
      get: client.prepare('SELECT id, repository, state, updated_at AS updatedAt FROM uploads WHERE id = ?'),
      exists: client.prepare<[string], number>('SELECT 1 FROM uploads WHERE id = ?').pluck(),
      save: client.prepare('UPDATE uploads SET state = ?, updated_at = ? WHERE id = ?'),
      saveHeld: client.prepare('UPDATE uploads SET state = ?, updated_at = ? WHERE id = ? AND lease_holder = ?'),
      remove: client.prepare('DELETE FROM uploads WHERE id = ?'),
      holderOf: client.prepare<[string], string | null>('SELECT lease_holder FROM uploads WHERE id = ?').pluck(),
      lease: client.prepare(
        'UPDATE uploads SET lease_holder = ?, lease_until = ? WHERE id = ? AND (lease_until IS NULL OR lease_until < ? OR lease_holder = ?) RETURNING repository, state',
      ),
      renew: client.prepare('UPDATE uploads SET lease_until = ? WHERE id = ? AND lease_holder = ?'),
      release: client.prepare('UPDATE uploads SET lease_holder = NULL, lease_until = NULL WHERE id = ? AND lease_holder = ?'),
    };
    prepared.set(client, s);
  }
  return s;
}
