import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { envName, loadConfig } from '../../src/config/index.js';
import { openDatabase, repositoryIdQuery, type Db } from '../../src/meta/db.js';
import { appendEvent, verifyChain } from '../../src/meta/events.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;

let dir: string;
let db: Db | undefined;
afterEach(() => {
  db?.$client.close();
  db = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('event log', () => {
  it('chains events and detects tampering; the table refuses updates and deletes', () => {
    dir = mkdtempSync(join(tmpdir(), 'as-meta-'));
    db = openDatabase(join(dir, 'm.db'));
    for (let i = 0; i < 5; i++) db.transaction((tx) => appendEvent(tx, { actor: 'alice', action: 'oci.tag.set', repository: 'r', tag: `t${i}` }));
    expect(verifyChain(db)).toEqual({ ok: true, count: 5 });
    expect(() => db!.$client.prepare("UPDATE events SET actor = 'mallory' WHERE seq = 3").run()).toThrow(/append-only/);
    expect(() => db!.$client.prepare('DELETE FROM events').run()).toThrow(/append-only/);
    // Someone who bypasses the triggers is still caught by the chain.
    // PostgreSQL names a trigger per table (DROP TRIGGER … ON), SQLite per schema.
    db.$client.exec(onPostgres ? 'DROP TRIGGER events_no_update ON events' : 'DROP TRIGGER events_no_update');
    db.$client.prepare("UPDATE events SET actor = 'mallory' WHERE seq = 3").run();
    expect(verifyChain(db)).toEqual({ ok: false, brokenAt: 3 });
  });

  it('chains appends within one transaction across rolled-back savepoints (PostgreSQL remembers its own head)', () => {
    dir = mkdtempSync(join(tmpdir(), 'as-meta-'));
    db = openDatabase(join(dir, 'm.db'));
    const c = db.$client;
    db.transaction((tx) => {
      appendEvent(tx, { actor: 'a', action: 'one' });
      appendEvent(tx, { actor: 'a', action: 'two' });
      expect(() =>
        tx.transaction((sp) => {
          appendEvent(sp, { actor: 'a', action: 'gone' });
          throw new Error('undo');
        }),
      ).toThrow('undo');
      // Must chain to 'two': the remembered head ('gone') was rolled back.
      appendEvent(tx, { actor: 'a', action: 'three' });
    });
    db.transaction((tx) => {
      // The group commit's savepoints are prepared statements, not nested transactions.
      c.prepare('SAVEPOINT w').run();
      appendEvent(tx, { actor: 'a', action: 'gone too' });
      c.prepare('ROLLBACK TO w').run();
      c.prepare('RELEASE w').run();
      appendEvent(tx, { actor: 'a', action: 'four' });
    });
    expect(verifyChain(db)).toEqual({ ok: true, count: 4 });
    expect(c.prepare('SELECT action FROM events ORDER BY seq').pluck().all()).toEqual(['one', 'two', 'three', 'four']);
  });

  it('a lookup kept within a write transaction follows its writes, savepoint rollbacks and other processes (PostgreSQL remembers answers)', () => {
    dir = mkdtempSync(join(tmpdir(), 'as-meta-'));
    db = openDatabase(join(dir, 'm.db'));
    const c = db.$client;
    const repoId = repositoryIdQuery(db);
    const insert = c.prepare('INSERT INTO repositories (name) VALUES (?)');
    let id: number | undefined;
    db.transaction(() => {
      expect(repoId.get('a')).toBeUndefined();
      insert.run('a');
      id = repoId.get('a');
      expect(id).toBeTypeOf('number');
      c.prepare('SAVEPOINT s').run();
      insert.run('b');
      expect(repoId.get('b')).toBeTypeOf('number');
      c.prepare('ROLLBACK TO s').run();
      c.prepare('RELEASE s').run();
      expect(repoId.get('b')).toBeUndefined();
      expect(repoId.get('a')).toBe(id);
    });
    const other = openDatabase(join(dir, 'm.db'));
    try {
      other.$client.prepare('DELETE FROM repositories WHERE name = ?').run('a');
    } finally {
      other.$client.close();
    }
    db.transaction(() => expect(repoId.get('a')).toBeUndefined());
  });

  it('keeps the chain across reopen (file on disk)', () => {
    dir = mkdtempSync(join(tmpdir(), 'as-meta-'));
    db = openDatabase(join(dir, 'm.db'));
    db.transaction((tx) => appendEvent(tx, { actor: 'a', action: 'x' }));
    db.$client.close();
    db = openDatabase(join(dir, 'm.db'));
    db.transaction((tx) => appendEvent(tx, { actor: 'a', action: 'y' }));
    expect(verifyChain(db)).toEqual({ ok: true, count: 2 });
  });
});

describe('config', () => {
  it('maps settings to ARTIFACT_STORE_ upper snake case names', () => {
    expect(envName('dataDir')).toBe('ARTIFACT_STORE_DATA_DIR');
    expect(envName('s3ForcePathStyle')).toBe('ARTIFACT_STORE_S3_FORCE_PATH_STYLE');
  });

  it('reads env over file over defaults, and validates', () => {
    dir = mkdtempSync(join(tmpdir(), 'as-cfg-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'port: 6000\nlogLevel: debug\nmaxManifestSize: 1024\n');
    const cfg = loadConfig({ ARTIFACT_STORE_CONFIG: file, ARTIFACT_STORE_PORT: '7000', ARTIFACT_STORE_S3_FORCE_PATH_STYLE: 'true' });
    expect(cfg.port).toBe(7000);
    expect(cfg.logLevel).toBe('debug');
    expect(cfg.maxManifestSize).toBe(1024);
    expect(cfg.s3ForcePathStyle).toBe(true);
    expect(cfg.dataDir).toBe('./data');
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(() => loadConfig({ ARTIFACT_STORE_PORT: 'abc' })).toThrow(/ARTIFACT_STORE_PORT/);
    expect(() => loadConfig({ ARTIFACT_STORE_STORAGE: 's3' })).toThrow(/ARTIFACT_STORE_S3_BUCKET/);
  });
});
