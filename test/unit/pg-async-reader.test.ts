/**
 * The pipelined read connection (src/meta/pg/async-reader.ts) behind the pull path's lookups on
 * PostgreSQL: many reads in one event-loop turn answered in order and each with its own rows, a
 * failing read that does not take its neighbours down, commits of the synchronous connection
 * visible at once, and a killed connection that fails what was in flight and then reconnects.
 * Needs a PostgreSQL server (ARTIFACT_STORE_TEST_POSTGRES_URL) and the libpq addon.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { asyncGet } from '../../src/meta/db.js';
import { PostgresDatabase, PostgresDatabaseError } from '../../src/meta/pg/facade.js';
import { loadLibpq } from '../../src/meta/pg/libpq-transport.js';
import type Database from 'better-sqlite3';

const url = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;

describe.skipIf(!url || !loadLibpq())('PostgreSQL pipelined reads', () => {
  const schema = `pgar_${randomBytes(6).toString('hex')}`;
  const db = url ? new PostgresDatabase({ url, schema, transport: 'libpq' }) : undefined;
  afterAll(() => {
    db?.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    db?.close();
  });
  const setup = (() => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      db!.exec(`CREATE SCHEMA "${schema}"`);
      db!.exec('CREATE TABLE t (id bigint PRIMARY KEY, name text, payload bytea)');
      const insert = db!.prepare('INSERT INTO t (id, name, payload) VALUES (?, ?, ?)');
      db!.transaction(() => {
        for (let i = 1; i <= 300; i++) insert.run(i, i % 7 === 0 ? null : `n${i}`, Buffer.from([i & 255, 0, 255]));
      })();
    };
  })();
  const statement = <P extends unknown[], R>(sql: string) => db!.prepare(sql) as unknown as Database.Statement<P, R>;

  it('answers hundreds of reads sent in one turn, each with its own row, as get() would', async () => {
    setup();
    const byId = statement<[number], { id: number; name: string | null; payload: Buffer }>('SELECT id, name, payload FROM t WHERE id = ?');
    const read = asyncGet(byId);
    const ids = Array.from({ length: 400 }, (_, i) => (i * 37) % 320);
    const rows = await Promise.all(ids.map((id) => read(id)));
    for (const [i, id] of ids.entries()) expect(rows[i]).toEqual(byId.get(id));
    expect(Buffer.isBuffer(rows.find((r) => r)?.payload)).toBe(true);
    const name = asyncGet((db!.prepare('SELECT name FROM t WHERE id = ?') as unknown as Database.Statement<[number], string>).pluck());
    expect(await Promise.all([name(8), name(14), name(999)])).toEqual(['n8', null, undefined]);
  });

  it('fails only the read that fails; its neighbours in the same turn are answered', async () => {
    setup();
    const read = asyncGet(statement<[unknown], { id: number }>('SELECT id FROM t WHERE id = ?'));
    const results = await Promise.allSettled([read(1), read('not a number'), read(2), read(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const failure = (results[1] as PromiseRejectedResult).reason;
    expect(failure).toBeInstanceOf(PostgresDatabaseError);
    expect((failure as PostgresDatabaseError).pgCode).toBe('22P02');
    expect((results[2] as PromiseFulfilledResult<{ id: number }>).value).toEqual({ id: 2 });
  });

  it('a read whose statement cannot be prepared fails alone, however many reads share its turn', async () => {
    setup();
    const good = asyncGet(statement<[number], { id: number }>('SELECT id FROM t WHERE id = ?'));
    const bad = asyncGet(statement<[number], unknown>('SELECT no_such_column FROM t WHERE id = ?'));
    const ids = Array.from({ length: 50 }, (_, i) => i + 1);
    const results = await Promise.allSettled([...ids.slice(0, 25).map((id) => good(id)), bad(1), bad(2), ...ids.slice(25).map((id) => good(id))]);
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    expect(failed).toEqual([25, 26]);
    for (const i of failed) expect(((results[i] as PromiseRejectedResult).reason as PostgresDatabaseError).pgCode).toBe('42703');
    const rows = results.filter((r): r is PromiseFulfilledResult<{ id: number }> => r.status === 'fulfilled').map((r) => r.value.id);
    expect(rows).toEqual(ids);
  });

  it('sees what the synchronous connection committed, at once', async () => {
    setup();
    const read = asyncGet(statement<[number], { name: string }>('SELECT name FROM t WHERE id = ?'));
    for (let i = 0; i < 20; i++) {
      db!.transaction(() => db!.prepare('UPDATE t SET name = ? WHERE id = 5').run(`v${i}`))();
      expect(await read(5)).toEqual({ name: `v${i}` });
    }
  });

  it('a killed connection fails the reads in flight with a connection error, then reconnects', async () => {
    setup();
    const pid = asyncGet((db!.prepare('SELECT pg_backend_pid()') as unknown as Database.Statement<[], number>).pluck());
    const first = await pid();
    const slow = asyncGet(statement<[], unknown>('SELECT pg_sleep(5)'));
    const inFlight = slow();
    const admin = new PostgresDatabase({ url: url! });
    try {
      await new Promise((r) => setTimeout(r, 100));
      admin.prepare('SELECT pg_terminate_backend(?)').run(first);
    } finally {
      admin.close();
    }
    const err = await inFlight.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(PostgresDatabaseError);
    expect((err as PostgresDatabaseError).pgCode).toMatch(/^(08|57P)/);
    const second = await pid();
    expect(second).not.toBe(first);
    expect(await asyncGet(statement<[number], { id: number }>('SELECT id FROM t WHERE id = ?'))(9)).toEqual({ id: 9 });
  });
});
