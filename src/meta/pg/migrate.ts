/**
 * PostgreSQL migrations: drizzle-pg/*.sql applied in name order, each once and in its own
 * transaction, recorded in artifact_store_migrations. A session advisory lock per schema makes
 * several processes starting at the same moment apply them exactly once: the first migrates,
 * the others wait and then find nothing left to do.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PostgresDatabase } from './facade.js';

function lockKey(schema: string): bigint {
  return createHash('sha256').update(`artifact-store migrations ${schema}`).digest().readBigInt64BE(0);
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function migratePostgres(client: PostgresDatabase, schema: string | undefined, folder: string): string[] {
  const key = lockKey(schema ?? 'public');
  const applied: string[] = [];
  client.exec(`SELECT pg_advisory_lock(${key})`);
  try {
    if (schema) client.exec(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    client.exec('CREATE TABLE IF NOT EXISTS artifact_store_migrations (name text PRIMARY KEY, applied_at bigint NOT NULL)');
    const done = new Set(client.prepare('SELECT name FROM artifact_store_migrations').pluck().all() as string[]);
    const files = readdirSync(folder).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
    for (const file of files) {
      if (done.has(file)) continue;
      const body = readFileSync(join(folder, file), 'utf8');
      client.transaction(() => {
        client.execNative(body);
        client.prepare('INSERT INTO artifact_store_migrations (name, applied_at) VALUES (?, ?)').run(file, Date.now());
      })();
      applied.push(file);
    }
  } finally {
    if (client.open) client.exec(`SELECT pg_advisory_unlock(${key})`);
  }
  return applied;
}
