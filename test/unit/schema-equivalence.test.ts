/**
 * The PostgreSQL schema (drizzle-pg/*.sql) describes the same tables as the SQLite one
 * (drizzle/*.sql): tables, columns in order with type, NOT NULL and default, primary keys,
 * indexes, foreign keys and trigger names. A column or index added on one side only fails here.
 * Also checks what the pg file emulates: SQLite-compat functions, AUTOINCREMENT, the append-only
 * event log and the search triggers, by running the same SQL on both and comparing results.
 * Needs a PostgreSQL server: ARTIFACT_STORE_TEST_POSTGRES_URL (CI sets it), else skipped.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsFolder, openDatabase, type Db } from '../../src/meta/db.js';

const url = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;

/** SQLite internals, FTS5 (its pg counterpart is a separate migration) and each side's bookkeeping. */
const IGNORED_TABLES = /^(sqlite_.*|search_fts.*|__drizzle_migrations|autoincrement_counters|artifact_store_migrations)$/;
const TYPES: Record<string, string> = { integer: 'bigint', text: 'text', blob: 'bytea' };

interface Column { name: string; type: string; notNull: boolean; default: string | null; generated: boolean }
interface Table { columns: Column[]; primaryKey: string[]; indexes: string[]; foreignKeys: string[] }
type Schema = Record<string, Table>;

/** Defaults in one spelling: SQLite's false/true are 0/1, both "now in ms" expressions are 'now'. */
function normalizeDefault(d: string | null): string | null {
  if (d === null) return null;
  if (/unixepoch\('subsec'\)|clock_timestamp\(\)/.test(d)) return 'now';
  return ({ false: '0', true: '1' } as Record<string, string>)[d] ?? d.replace(/::(text|bigint)$/, '');
}

function describeSqlite(db: Db): Schema {
  const c = db.$client;
  const names = (c.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]).filter((t) => !IGNORED_TABLES.test(t));
  const schema: Schema = {};
  for (const t of names) {
    type Info = { name: string; type: string; notnull: number; dflt_value: string | null; pk: number; hidden: number };
    const cols = c.prepare(`PRAGMA table_xinfo("${t}")`).all() as Info[];
    const idx = (c.prepare(`PRAGMA index_list("${t}")`).all() as { name: string; unique: number; origin: string }[]).filter((i) => i.origin === 'c');
    const fks = c.prepare(`PRAGMA foreign_key_list("${t}")`).all() as { table: string; from: string; to: string }[];
    schema[t] = {
      columns: cols.map((col) => ({
        name: col.name,
        type: TYPES[col.type.toLowerCase()] ?? col.type,
        notNull: col.notnull === 1 || col.pk > 0,
        default: normalizeDefault(col.dflt_value),
        generated: col.hidden === 2 || col.hidden === 3,
      })),
      primaryKey: cols.filter((col) => col.pk > 0).sort((a, b) => a.pk - b.pk).map((col) => col.name),
      indexes: idx
        .map((i) => `${i.unique ? 'unique ' : ''}${i.name}(${(c.prepare(`PRAGMA index_info("${i.name}")`).all() as { name: string }[]).map((x) => x.name).join(',')})`)
        .sort(),
      foreignKeys: fks.map((f) => `${f.from} -> ${f.table}(${f.to})`).sort(),
    };
  }
  return schema;
}

async function describePostgres(client: pg.Client, ns: string): Promise<Schema> {
  const q = async <T>(sql: string, args: unknown[] = []) => (await client.query(sql, args)).rows as T[];
  const tables = (await q<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'", [ns]))
    .map((r) => r.t)
    .filter((t) => !IGNORED_TABLES.test(t));
  const schema: Schema = {};
  for (const t of tables) {
    const rel = `"${ns}"."${t}"`;
    const cols = await q<{ name: string; type: string; not_null: boolean; dflt: string | null; generated: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type, a.attnotnull AS not_null, a.attgenerated AS generated,
              CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS dflt
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [rel],
    );
    const idx = await q<{ name: string; is_unique: boolean; is_pk: boolean; cols: string[] }>(
      `SELECT c.relname AS name, i.indisunique AS is_unique, i.indisprimary AS is_pk,
              array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS cols
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass`,
      [rel],
    );
    const fks = await q<{ fk: string }>(
      `SELECT a.attname || ' -> ' || rc.relname || '(' || ra.attname || ')' AS fk
         FROM pg_constraint k, unnest(k.conkey, k.confkey) AS u(src, dst)
         JOIN pg_attribute a ON a.attrelid = $1::regclass AND a.attnum = u.src
         JOIN pg_class rc ON true JOIN pg_attribute ra ON ra.attrelid = rc.oid AND ra.attnum = u.dst
        WHERE k.conrelid = $1::regclass AND k.contype = 'f' AND rc.oid = k.confrelid`,
      [rel],
    );
    schema[t] = {
      columns: cols.map((col) => ({ name: col.name, type: col.type, notNull: col.not_null, default: normalizeDefault(col.dflt), generated: col.generated !== '' })),
      primaryKey: idx.find((i) => i.is_pk)?.cols ?? [],
      indexes: idx.filter((i) => !i.is_pk).map((i) => `${i.is_unique ? 'unique ' : ''}${i.name}(${i.cols.join(',')})`).sort(),
      foreignKeys: fks.map((f) => f.fk).sort(),
    };
  }
  return schema;
}

/** Rows as arrays of strings (SQLite gives numbers, pg int8 strings): compares values, not driver types. */
const plain = (rows: Record<string, unknown>[]) => rows.map((r) => Object.values(r).map((v) => (v === null ? null : Buffer.isBuffer(v) ? v.toString('hex') : String(v))));

describe.skipIf(!url)('SQLite and PostgreSQL schemas', () => {
  const ns = `schema_eq_${randomBytes(6).toString('hex')}`;
  let client: pg.Client;
  let sqlite: Db;

  /** The same SQL on both back ends; rows compared as strings. */
  const both = async (sql: string) => ({ sqlite: plain(sqlite.$client.prepare(sql).all() as Record<string, unknown>[]), pg: plain((await client.query(sql)).rows) });

  beforeAll(async () => {
    // :memory: is SQLite even when the suite runs on PostgreSQL (openDatabase maps file paths to pg schemas).
    sqlite = openDatabase(':memory:');
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`CREATE SCHEMA "${ns}"`);
    await client.query(`SET search_path TO "${ns}"`);
    const folder = migrationsFolder('drizzle-pg');
    for (const file of readdirSync(folder).filter((f) => f.endsWith('.sql')).sort()) {
      await client.query('BEGIN');
      await client.query(readFileSync(join(folder, file), 'utf8'));
      await client.query('COMMIT');
    }
  });

  afterAll(async () => {
    sqlite?.$client.close();
    if (client) {
      await client.query(`DROP SCHEMA IF EXISTS "${ns}" CASCADE`);
      await client.end();
    }
  });

  it('describe the same tables, columns, keys, indexes and foreign keys', async () => {
    const lite = describeSqlite(sqlite);
    const post = await describePostgres(client, ns);
    expect(Object.keys(post).sort()).toEqual(Object.keys(lite).sort());
    for (const t of Object.keys(lite)) expect(post[t], t).toEqual(lite[t]);
    expect(Object.keys(lite).length).toBeGreaterThan(30);
  });

  it('notices a column added on one side only', async () => {
    await client.query('BEGIN');
    try {
      await client.query('ALTER TABLE blobs ADD COLUMN extra bigint');
      expect((await describePostgres(client, ns)).blobs).not.toEqual(describeSqlite(sqlite).blobs);
    } finally {
      await client.query('ROLLBACK');
    }
  });

  it('every SQLite trigger exists in PostgreSQL, except those feeding the FTS5 index', async () => {
    const lite = (sqlite.$client.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all() as { name: string; sql: string }[])
      .filter((t) => !t.sql.includes('search_fts'))
      .map((t) => t.name);
    expect(lite).toContain('search_manifest_ai');
    const pgNames = new Set((await client.query('SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal', [ns])).rows.map((r) => r.tgname as string));
    expect(lite.filter((n) => !pgNames.has(n))).toEqual([]);
  });

  it('no LANGUAGE sql function is planned anew at every call (a SET clause forbids inlining; plpgsql caches plans)', async () => {
    // drizzle-pg/0003: such functions in the search triggers cost ~120-220 µs a call on PostgreSQL 15.
    const r = await client.query("SELECT p.proname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = $1::regnamespace AND l.lanname = 'sql' AND p.proconfig IS NOT NULL ORDER BY 1", [ns]);
    expect(r.rows.map((row) => row.proname as string)).toEqual([]);
    const plpgsql = await client.query("SELECT count(*)::int AS n FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = $1::regnamespace AND l.lanname = 'plpgsql' AND p.proname IN ('search_document', 'search_tag_list', 'search_is_signed', 'search_family_words')", [ns]);
    expect(plpgsql.rows[0].n).toBe(4);
  });

  it('seeds the same rows', async () => {
    expect(await both('SELECT id, generation, holder, held_until FROM gc_state ORDER BY id')).toEqual({ sqlite: [['1', '0', null, null]], pg: [['1', '0', null, null]] });
  });

  it.each([
    "SELECT instr('a/b/c', '/') AS a, instr('abc', '/') AS b, instr(NULL, '/') AS c",
    "SELECT group_concat(column1, '-') AS a, group_concat(column1) AS b FROM (VALUES ('a'), (NULL), ('b')) AS v",
    "SELECT group_concat(column1, '-') AS a, group_concat(column1) AS b FROM (VALUES ('a')) AS v WHERE 1 = 0",
    'SELECT group_concat(column1) AS a FROM (VALUES (NULL), (NULL)) AS v',
    'SELECT key, value FROM json_each(\'["x", 2, null, true, false, "a b"]\')',
    'SELECT key, value FROM json_each(\'{"z": "1", "a": "x y", "n": null, "k": 5}\')',
    'SELECT key, value FROM json_each(\'"scalar"\')',
    'SELECT count(*) AS n FROM json_each(NULL)',
    "SELECT value FROM json_each('[\"sha256:a\",\"sha256:b\"]') WHERE value = 'sha256:b'",
    'SELECT json_each.value FROM json_each(\'{"k": "v", "o": "w"}\') WHERE json_each.key = \'o\'',
    'SELECT json_extract(\'{"name": "n", "a": {"b": [1, 2]}, "t": true}\', \'$.name\') AS a, json_extract(\'{"a": {"b": [1, 2]}}\', \'$.a.b[1]\') AS b, json_extract(\'{"x": 1}\', \'$.missing\') AS c, json_extract(\'{"t": true}\', \'$.t\') AS d, json_extract(NULL, \'$.x\') AS e',
    'SELECT max(3, 5) AS a, max(3, NULL) AS b, min(3, 5) AS c, min(NULL, 1) AS d',
    'SELECT sum(column1 > 1) AS a FROM (VALUES (1), (2), (3)) AS v',
    'SELECT sum(column1 > 1) AS a FROM (VALUES (1)) AS v WHERE 1 = 0',
  ])('SQLite-compat SQL gives the same rows: %s', async (sql) => {
    const r = await both(sql);
    expect(r.pg).toEqual(r.sqlite);
  });

  it('AUTOINCREMENT: a rolled-back insert gives its id back, an explicit id raises the next, a deleted highest id is never reused', async () => {
    const ids = { sqlite: [] as string[], pg: [] as string[] };
    const id = (rows: Record<string, unknown>[]) => String(rows[0]?.id);
    const lite = sqlite.$client;
    const add = (name: string, explicit?: number) =>
      explicit === undefined ? `INSERT INTO principals (name, kind) VALUES ('${name}', 'user') RETURNING id` : `INSERT INTO principals (id, name, kind) VALUES (${explicit}, '${name}', 'user') RETURNING id`;
    // SQLite
    ids.sqlite.push(id(lite.prepare(add('a')).all() as Record<string, unknown>[]));
    lite.exec('BEGIN');
    lite.prepare(add('rolled-back')).all();
    lite.exec('ROLLBACK');
    ids.sqlite.push(id(lite.prepare(add('b')).all() as Record<string, unknown>[]));
    ids.sqlite.push(id(lite.prepare(add('c', 10)).all() as Record<string, unknown>[]));
    ids.sqlite.push(id(lite.prepare(add('d')).all() as Record<string, unknown>[]));
    lite.prepare("DELETE FROM principals WHERE name = 'd'").run();
    ids.sqlite.push(id(lite.prepare(add('e')).all() as Record<string, unknown>[]));
    // PostgreSQL
    ids.pg.push(id((await client.query(add('a'))).rows));
    await client.query('BEGIN');
    await client.query(add('rolled-back'));
    await client.query('ROLLBACK');
    ids.pg.push(id((await client.query(add('b'))).rows));
    ids.pg.push(id((await client.query(add('c', 10))).rows));
    ids.pg.push(id((await client.query(add('d'))).rows));
    await client.query("DELETE FROM principals WHERE name = 'd'");
    ids.pg.push(id((await client.query(add('e'))).rows));

    expect(ids.sqlite).toEqual(['1', '2', '10', '11', '12']);
    expect(ids.pg).toEqual(ids.sqlite);
    // The floor is written only because the highest row was deleted.
    expect((await client.query("SELECT seq FROM autoincrement_counters WHERE name = 'principals'")).rows[0].seq).toBe('11');
    // A skipped conflicting insert uses an id in SQLite, none here: live and replay on each back end agree with themselves.
    lite.prepare("INSERT INTO principals (name, kind) VALUES ('a', 'user') ON CONFLICT DO NOTHING").run();
    await client.query("INSERT INTO principals (name, kind) VALUES ('a', 'user') ON CONFLICT DO NOTHING");
    expect(id(lite.prepare(add('f')).all() as Record<string, unknown>[])).toBe('14');
    expect(id((await client.query(add('f'))).rows)).toBe('13');
  });

  it('the event log refuses UPDATE and DELETE on both', async () => {
    const insert = "INSERT INTO events (time, actor, action, prev_hash, hash) VALUES (1, 'a', 'x', 'p', 'h')";
    sqlite.$client.prepare(insert).run();
    await client.query(insert);
    for (const sql of ["UPDATE events SET actor = 'b'", 'DELETE FROM events']) {
      expect(() => sqlite.$client.prepare(sql).run()).toThrow('events are append-only');
      await expect(client.query(sql)).rejects.toThrow('events are append-only');
    }
    await expect(client.query('TRUNCATE events')).rejects.toThrow('events are append-only');
    expect(await both('SELECT seq, actor FROM events')).toEqual({ sqlite: [['1', 'a']], pg: [['1', 'a']] });
  });

  it('the search triggers derive the same documents', async () => {
    const steps = [
      "INSERT INTO repositories (name, created_at) VALUES ('lib/alpine', 1), ('_registry/models', 1), ('solo', 1)",
      "INSERT INTO repository_visibility (name, visibility) VALUES ('lib/alpine', 'public')",
      "INSERT INTO manifests (repository_id, digest, media_type, payload, size, annotations, created_at) VALUES (1, 'sha256:aa', 'm', 'p', 3, '{\"org.title\": \"Hello\", \"k\": \"v w\"}', 100)",
      "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (1, 'latest', 'sha256:aa', 200), (1, 'v1', 'sha256:aa', 150), (1, 'sha256-aa.sig', 'sha256:bb', 210)",
      "INSERT INTO manifests (repository_id, digest, media_type, payload, size, subject, artifact_type, created_at) VALUES (1, 'sha256:cc', 'm', 'p', 4, 'sha256:aa', 'application/vnd.dev.sigstore.bundle.v0.3+json', 300)",
      "INSERT INTO manifests (repository_id, digest, media_type, payload, size, created_at) VALUES (3, 'sha256:dd', 'm', 'p', 5, 400)",
      "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (3, 'sha256-dd.SIG', 'sha256:ee', 410)",
      "UPDATE tags SET digest = 'sha256:dd', updated_at = 500 WHERE repository_id = 1 AND name = 'v1'",
      "DELETE FROM tags WHERE name = 'sha256-aa.sig'",
      "DELETE FROM manifests WHERE digest = 'sha256:cc'",
      "UPDATE repository_visibility SET visibility = 'private' WHERE name = 'lib/alpine'",
      "INSERT INTO repository_visibility (name, visibility) VALUES ('solo', 'public')",
      "INSERT INTO family_entry_versions (family, id, version, digest, layer_digest, entry, actor) VALUES ('models', 'e1', 1, 'sha256:ff', 'sha256:l', '{\"name\": \"Nm\", \"description\": \"Desc\"}', 'me')",
      "INSERT INTO manifests (repository_id, digest, media_type, payload, size, created_at) VALUES (2, 'sha256:ff', 'm', 'p', 6, 600)",
      "INSERT INTO family_entry_versions (family, id, version, digest, layer_digest, entry, actor) VALUES ('models', 'e1', 2, 'sha256:ff', 'sha256:l', '{\"title\": \"T2\", \"owner\": \"o\"}', 'me')",
      "DELETE FROM repository_visibility WHERE name = 'solo'",
      // One statement, signature before its subject: pg runs AFTER ROW triggers at statement end.
      "INSERT INTO manifests (repository_id, digest, media_type, payload, size, subject, artifact_type, created_at) VALUES (3, 'sha256:s1', 'm', 'p', 7, 'sha256:x1', 'application/vnd.dev.cosign.artifact.sig.v1+json', 700), (3, 'sha256:x1', 'm', 'p', 8, NULL, NULL, 800)",
    ];
    for (const sql of steps) {
      sqlite.$client.prepare(sql).run();
      await client.query(sql);
    }
    const r = await both('SELECT * FROM search_docs ORDER BY id');
    expect(r.sqlite.length).toBe(5);
    expect(r.pg).toEqual(r.sqlite);
  });
});
