/**
 * The table-coverage registry stays complete: every table of the migrated schema is either
 * replayed from the log (with every column accounted for) or listed as not replayed with a
 * reason. A new table or column without a replay rule fails here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/meta/db.js';
import { HANDLERS, NOT_REPLAYED, TABLE_RULES } from '../../src/events/replay/index.js';

const dir = mkdtempSync(join(tmpdir(), 'replay-coverage-'));
const db = openDatabase(join(dir, 'schema.db')).$client;
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

// The schema is read from SQLite's catalogue (sqlite_master, PRAGMA table_info). On PostgreSQL
// the same tables and columns are proven by schema-equivalence.test.ts, so these two checks run
// on SQLite only; the handler check below runs on both.
const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const tables = onPostgres ? [] : (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]);
const columnsOf = (t: string) => (db.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[]).map((c) => c.name).sort();

describe('replay coverage', () => {
  it.skipIf(onPostgres)('every table of the schema is replayed or explicitly not replayed, never both', () => {
    const ruled = new Set(TABLE_RULES.map((r) => r.table));
    const unaccounted = tables.filter((t) => !ruled.has(t) && !(t in NOT_REPLAYED));
    expect(unaccounted, 'tables with no replay rule and no NOT_REPLAYED reason').toEqual([]);
    expect(tables.filter((t) => ruled.has(t) && t in NOT_REPLAYED)).toEqual([]);
    // No stale entries: a dropped table must leave the registry too.
    expect([...ruled, ...Object.keys(NOT_REPLAYED)].filter((t) => !tables.includes(t))).toEqual([]);
    for (const reason of Object.values(NOT_REPLAYED)) expect(reason.length).toBeGreaterThan(10);
  });

  it.skipIf(onPostgres).each(TABLE_RULES.map((r) => [r.table, r] as const))('every column of %s is reconstructed or listed with a reason', (table, rule) => {
    const accounted = [...rule.columns, ...Object.keys(rule.presenceOnly ?? {}), ...Object.keys(rule.notCompared ?? {})].sort();
    expect(accounted).toEqual(columnsOf(table));
    expect(new Set(accounted).size).toBe(accounted.length);
    for (const k of rule.key) expect(rule.columns).toContain(k);
    for (const reason of [...Object.values(rule.presenceOnly ?? {}), ...Object.values(rule.notCompared ?? {})]) expect(reason.length).toBeGreaterThan(10);
  });

  it('handlers exist for the OCI, identity and families actions', () => {
    for (const a of ['oci.manifest.push', 'oci.tag.move', 'gc.blob.delete', 'identity.user.create', 'identity.key.create', 'family.entry.create', 'namespace.governance.set']) expect(HANDLERS[a]).toBeTypeOf('function');
  });
});
