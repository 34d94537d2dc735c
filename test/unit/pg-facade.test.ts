/**
 * The PostgreSQL back end's own contract (src/meta/pg): SQL rewriting, the better-sqlite3 shape
 * over both transports, transactions under the global write lock, and migrations applied once
 * when several processes open a fresh schema at the same moment. Needs a PostgreSQL server:
 * ARTIFACT_STORE_TEST_POSTGRES_URL (CI's PostgreSQL run sets it).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/meta/db.js';
import { PostgresDatabase } from '../../src/meta/pg/facade.js';
import { loadLibpq } from '../../src/meta/pg/libpq-transport.js';
import { translate } from '../../src/meta/pg/translate.js';

const url = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const DB_MODULE = fileURLToPath(new URL('../../src/meta/db.ts', import.meta.url));

describe('SQLite → PostgreSQL rewriting', () => {
  it('numbers placeholders, quotes backticks and mixed-case aliases, leaves strings alone', () => {
    expect(translate("SELECT `a`, b AS repoId, count(*) AS n FROM t WHERE x = ? AND y = '?' AND z = ?").text).toBe(
      `SELECT "a", b AS "repoId", count(*) AS n FROM t WHERE x = $1 AND y = '?' AND z = $2`,
    );
    expect(translate('SELECT CAST(x AS INTEGER) FROM t').text).toBe('SELECT CAST(x AS INTEGER) FROM t');
    expect(translate('CREATE TEMP TABLE x AS SELECT 1').text).toBe('CREATE TEMP TABLE x AS SELECT 1');
    expect(translate("SELECT 1 FROM t WHERE name LIKE 'a%'").text).toBe("SELECT 1 FROM t WHERE name ILIKE 'a%'");
  });

  it('INSERT OR IGNORE becomes ON CONFLICT DO NOTHING; autoincrement inserts return their id', () => {
    expect(translate('INSERT OR IGNORE INTO tags (a) VALUES (?)').text).toBe('INSERT INTO tags (a) VALUES ($1) ON CONFLICT DO NOTHING');
    const t = translate('INSERT INTO repositories (name) VALUES (?)');
    expect(t.text).toBe('INSERT INTO repositories (name) VALUES ($1) RETURNING "id"');
    expect(t.returningId).toBe('id');
    expect(translate('INSERT INTO events (x) VALUES (?) RETURNING seq').returningId).toBeUndefined();
    expect(translate('BEGIN IMMEDIATE').control).toBe('begin');
  });
});

const transports = (['libpq', 'worker'] as const).filter((t) => t === 'worker' || loadLibpq() !== null);

describe.skipIf(!url)('PostgreSQL facade', () => {
  const schemas: string[] = [];
  const fresh = (): string => {
    const s = `pgf_${randomBytes(6).toString('hex')}`;
    schemas.push(s);
    return s;
  };
  afterAll(() => {
    const admin = new PostgresDatabase({ url: url! });
    for (const s of schemas) admin.exec(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    admin.close();
  });

  for (const transport of transports) {
    it(`answers like better-sqlite3 over the ${transport} transport`, () => {
      const schema = fresh();
      const db = new PostgresDatabase({ url: url!, schema, transport });
      try {
        db.exec(`CREATE SCHEMA "${schema}"`);
        db.exec('CREATE TABLE t (id bigint PRIMARY KEY, name text, payload bytea)');
        const ins = db.prepare('INSERT INTO t (id, name, payload) VALUES (?, ?, ?)');
        expect(ins.run(1, 'a', Buffer.from([0, 1, 2, 255])).changes).toBe(1);
        expect(ins.run(2, null, null).changes).toBe(1);
        expect(db.prepare('SELECT id, name, payload, id = 1 AS isOne FROM t ORDER BY id').all()).toEqual([
          { id: 1, name: 'a', payload: Buffer.from([0, 1, 2, 255]), isOne: 1 },
          { id: 2, name: null, payload: null, isOne: 0 },
        ]);
        expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(2);
        expect(db.prepare('SELECT id, name FROM t WHERE id = ?').raw().get(1)).toEqual([1, 'a']);
        expect(db.prepare('SELECT 1 FROM t WHERE id = ?').get(99)).toBeUndefined();
        expect(() => ins.run(1, 'dup', null)).toThrow(expect.objectContaining({ code: 'SQLITE_CONSTRAINT_UNIQUE' }));
        // A failed transaction leaves nothing; a nested one rolls back alone.
        expect(() =>
          db.transaction(() => {
            ins.run(3, 'c', null);
            throw new Error('boom');
          })(),
        ).toThrow('boom');
        db.transaction(() => {
          ins.run(4, 'd', null);
          expect(() =>
            db.transaction(() => {
              ins.run(5, 'e', null);
              ins.run(4, 'again', null);
            })(),
          ).toThrow();
          expect(db.inTransaction).toBe(true);
        })();
        expect(db.prepare('SELECT id FROM t ORDER BY id').pluck().all()).toEqual([1, 2, 4]);
        // A failed statement whose error is caught inside the transaction: SQLite would undo only
        // that statement; PostgreSQL aborted everything, so the COMMIT must fail, never "succeed".
        expect(() =>
          db.transaction(() => {
            ins.run(6, 'f', null);
            try {
              ins.run(1, 'dup', null);
            } catch {
              /* swallowed on purpose */
            }
          })(),
        ).toThrow(/aborted|current transaction/);
        expect(db.prepare('SELECT count(*) FROM t WHERE id = 6').pluck().get()).toBe(0);
        // A transaction that must be durable (it appended an event) commits with the flush.
        db.transaction(() => {
          db.requireDurableCommit();
          ins.run(7, 'g', null);
        })();
        expect(db.prepare('SELECT count(*) FROM t WHERE id = 7').pluck().get()).toBe(1);
      } finally {
        db.close();
      }
    });
  }

  it('a write transaction holds the registry-wide write lock: a second connection waits for it', () => {
    const schema = fresh();
    const a = new PostgresDatabase({ url: url!, schema });
    const b = new PostgresDatabase({ url: url!, schema, transport: 'worker' });
    try {
      a.exec(`CREATE SCHEMA "${schema}"`);
      a.exec('CREATE TABLE t (id bigint PRIMARY KEY)');
      a.exec('BEGIN');
      // b cannot take the lock while a holds it: lock_timeout is 15 s, so ask with a short one.
      b.exec("SET lock_timeout = '200ms'");
      expect(() => b.transaction(() => b.prepare('INSERT INTO t VALUES (1)').run())()).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
      a.exec('COMMIT');
      b.transaction(() => b.prepare('INSERT INTO t VALUES (1)').run())();
      expect(a.prepare('SELECT count(*) FROM t').pluck().get()).toBe(1);
    } finally {
      a.close();
      b.close();
    }
  });

  for (const transport of transports) it(`after PostgreSQL drops the connection (${transport}): at most one retryable failure, then it reconnects; a transaction never continues on a new connection`, () => {
    const schema = fresh();
    const db = new PostgresDatabase({ url: url!, schema, transport });
    const admin = new PostgresDatabase({ url: url! });
    const kill = () => {
      const pid = db.prepare('SELECT pg_backend_pid()').pluck().get();
      admin.prepare('SELECT pg_terminate_backend(?)').run(pid);
      // pg_terminate_backend only signals: wait until the backend is really gone.
      while (admin.prepare('SELECT count(*) FROM pg_stat_activity WHERE pid = ?').pluck().get(pid) !== 0);
    };
    try {
      db.exec(`CREATE SCHEMA "${schema}"`);
      db.exec('CREATE TABLE t (id bigint PRIMARY KEY)');
      kill();
      // libpq finds the loss when it next sends (that statement fails, retryably); the worker's
      // client notices a connection that dies while idle and reconnects before the next one.
      try {
        db.prepare('SELECT count(*) FROM t').pluck().get();
        expect(transport).toBe('worker');
      } catch (err) {
        expect(err).toMatchObject({ code: expect.stringMatching(/^PG_(08|57P0)/) });
      }
      expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(0);
      expect(() =>
        db.transaction(() => {
          db.prepare('INSERT INTO t VALUES (1)').run();
          kill();
          db.prepare('INSERT INTO t VALUES (2)').run();
        })(),
      ).toThrow();
      expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(0);
    } finally {
      db.close();
      admin.close();
    }
  });

  it('six processes opening one fresh schema at once apply each migration exactly once', async () => {
    const schema = fresh();
    const target = `${url}${url!.includes('?') ? '&' : '?'}schema=${schema}`;
    const script = `
      const { openDatabase } = await import(${JSON.stringify(DB_MODULE)});
      const db = openDatabase(${JSON.stringify(target)});
      console.log(db.$client.prepare('SELECT count(*) FROM repositories').pluck().get());
      db.$client.close();`;
    const env = { ...process.env, ARTIFACT_STORE_TEST_POSTGRES_URL: '' };
    const runs = Array.from({ length: 6 }, () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => resolve({ code, out, err }));
      }),
    );
    const results = await Promise.all(runs);
    for (const r of results) expect(r, r.err).toMatchObject({ code: 0, out: '0\n' });
    const db = openDatabase(target);
    try {
      const names = db.$client.prepare('SELECT name FROM artifact_store_migrations ORDER BY name').pluck().all() as string[];
      expect(names.length).toBeGreaterThan(0);
      expect(new Set(names).size).toBe(names.length);
    } finally {
      db.$client.close();
    }
  }, 60_000);
});
