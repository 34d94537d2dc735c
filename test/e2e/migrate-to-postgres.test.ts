/**
 * `db migrate-to-postgres` (issue #15): a registry with real content written to SQLite, copied
 * by the CLI into a fresh PostgreSQL schema, then served from there: the same manifests, tags
 * and table contents, the event chain intact, and new writes continuing past the copied ids.
 * Needs a PostgreSQL server: runs when ARTIFACT_STORE_TEST_POSTGRES_URL is set (the suite's
 * PostgreSQL run), and uses that server for the target only: the source must really be SQLite.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteUser } from '../../src/auth/account-deletion.js';
import { openDatabase, openSqliteDatabase, type Db } from '../../src/meta/db.js';
import { verifyChain } from '../../src/meta/events.js';
import { api, bundleConfig, passReceipt, pushBundle, pushReceipt } from '../helpers/bundles.js';
import { pushBlob, pushImage, randomBlob } from '../helpers/http.js';
import { withIdentities } from '../helpers/identities.js';
import { removeDir, startTestRegistry } from '../helpers/registry.js';

const PG = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const dataDir = mkdtempSync(join(tmpdir(), 'as-migrate-'));
const sqliteFile = join(dataDir, 'metadata.db');
const schema = `mig_${process.pid}_${Date.now().toString(36)}`;
const target = (() => {
  if (!PG) return '';
  const u = new URL(PG);
  u.searchParams.set('schema', schema);
  return u.toString();
})();
const settings = { gcGraceSeconds: 0, gcIntervalSeconds: 0, webhookAllowPrivateTargets: true };
const pushed: Record<string, string> = {};

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // The test-mode variable stays set for the CLI: it must still read the source as SQLite.
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_LOG_LEVEL: 'silent', ...env }, timeout: 110_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const ok = (r: { status: number; body: unknown }) => expect([200, 201, 204], JSON.stringify(r.body)).toContain(r.status);

/** Images, tags, a deleted manifest, identities, a family entry, a bundle with an activation, a hold, a webhook, a GC run. */
async function buildSqliteRegistry(): Promise<void> {
  const reg = await startTestRegistry(settings, dataDir);
  try {
    for (const [repo, tag] of [['app/web', 'v1'], ['app/web', 'v2'], ['app/api', 'latest'], ['lib/base', 'stable']] as const) {
      pushed[`${repo}:${tag}`] = (await pushImage(reg.url, repo, tag, { annotations: { 'org.example.tag': tag } })).digest;
    }
    const gone = await pushImage(reg.url, 'app/tmp', 'old');
    expect((await fetch(`${reg.url}/v2/app/tmp/manifests/${gone.digest}`, { method: 'DELETE' })).status).toBe(202);
    await pushBlob(reg.url, 'app/web', randomBlob(64));
    await withIdentities(dataDir, async (ids, seed) => {
      const owner = await seed.user('owner', true);
      await seed.user('dev');
      seed.org('team', owner);
      seed.member('team', 'dev', 'maintainer');
      seed.key(owner, ['read', 'publish'], ['app/*']);
      ids.setVisibility('app/web', 'public', 'test');
      // The newest principal deleted: sqlite_sequence is then above max(id), and its id stays used.
      await seed.user('leaver');
      deleteUser(ids, ids.principalByName('leaver')!, 'test', null);
    });
    ok(await api(reg.url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0' }, reason: 'setup' }));
    ok(await api(reg.url, 'POST', '/api/v1/families/scope/entries', { id: 'mig-entry', owner: 'artifact-store', description: 'migrated entry' }));
    const b = await pushBundle(reg.url, 'ml/fraud', bundleConfig('scorer', '1.0.0'));
    await pushReceipt(reg.url, 'ml/fraud', b, passReceipt());
    ok(await api(reg.url, 'POST', '/api/v1/bundles', { repository: 'ml/fraud', digest: b.digest }));
    ok(await api(reg.url, 'POST', '/api/v1/bundles/scorer/1.0.0/transitions', { to: 'CANDIDATE', reason: 'ok' }));
    ok(await api(reg.url, 'POST', '/api/v1/bundles/scorer/1.0.0/transitions', { to: 'APPROVED', reason: 'ok' }));
    ok(await api(reg.url, 'POST', '/api/v1/activations', { scope: { environment: 'prod', model_family: 'fraud' }, bundle_id: 'scorer', bundle_version: '1.0.0', reason: 'rollout' }));
    ok(await api(reg.url, 'POST', '/api/v1/holds', { repository: 'app/api', reason: 'audit' }));
    ok(await api(reg.url, 'POST', '/api/v1/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['oci.*'], secret: 'a-secret-of-enough-length' }));
    ok(await api(reg.url, 'PUT', '/api/v1/stars?repository=app/web'));
    ok(await api(reg.url, 'PUT', '/api/v1/namespaces/lib/policies', { immutableTags: ['stable'] }));
    const gc = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: JSON.stringify({ dryRun: false }), headers: { 'Content-Type': 'application/json' } });
    expect(gc.status).toBe(200);
  } finally {
    await reg.stop();
  }
}

/** Every copied table's rows, as comparable strings (bytes as hex), sorted. */
function tableContents(db: Db, table: string, columns: string[]): string[] {
  const rows = db.$client.prepare(`SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${table}"`).raw().all() as unknown[][];
  return rows.map((r) => JSON.stringify(r.map((v) => (Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'number' ? Math.round(v) : v)))).sort();
}

describe.skipIf(!PG)('db migrate-to-postgres', () => {
  beforeAll(async () => {
    // The source registry writes SQLite: in this process test mode would send it to PostgreSQL.
    delete process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
    try {
      await buildSqliteRegistry();
    } finally {
      process.env.ARTIFACT_STORE_TEST_POSTGRES_URL = PG;
    }
  }, 120_000);

  afterAll(() => {
    if (PG) {
      const db = openDatabase(PG.replace(/\?.*$/, ''));
      try {
        db.$client.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        db.$client.close();
      }
    }
    removeDir(dataDir);
  });

  it('copies every table, verifies the chain, and refuses a second copy into the now non-empty target', async () => {
    expect((await cli(['db', 'migrate-to-postgres', '--to', target])).code).toBe(2);
    // A copy that fails half-way (a tag whose repository is gone, written with foreign keys off)
    // commits nothing: the good copy below would be refused by a non-empty target.
    const broken = join(dataDir, 'broken.db');
    const original = openSqliteDatabase(sqliteFile);
    original.$client.exec(`VACUUM INTO '${broken}'`);
    original.$client.close();
    const b = new Database(broken);
    b.pragma('foreign_keys = OFF');
    b.prepare("INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (987654, 'orphan', 'sha256:00', 1)").run();
    b.close();
    const failed = await cli(['db', 'migrate-to-postgres', '--from', broken, '--to', target]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/copying tags failed, nothing was committed: .*foreign key/);
    const run = await cli(['db', 'migrate-to-postgres', '--from', sqliteFile, '--to', target]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^migrated .* \d+ rows, \d+ events \(chain verified, head sha256:[0-9a-f]+\)/m);
    const password = new URL(target).password;
    if (password) expect(run.stdout + run.stderr).not.toContain(password);

    const source = openSqliteDatabase(sqliteFile);
    const pg = openDatabase(target);
    try {
      const tables = source.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'search_fts%' AND name <> '__drizzle_migrations' ORDER BY name").pluck().all() as string[];
      let nonEmpty = 0;
      for (const t of tables) {
        const columns = source.$client.prepare('SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0').pluck().all(t) as string[];
        const want = tableContents(source, t, columns);
        if (want.length > 0) nonEmpty++;
        expect(tableContents(pg, t, columns), t).toEqual(want);
      }
      expect(nonEmpty).toBeGreaterThan(20);
      // What PostgreSQL derives from the copied search documents (its search index) is filled too.
      if (pg.$client.prepare("SELECT to_regclass('search_fts') IS NOT NULL").pluck().get()) {
        expect(pg.$client.prepare('SELECT count(*) FROM search_fts').pluck().get()).toBe(source.$client.prepare('SELECT count(*) FROM search_docs').pluck().get());
      }
      const chain = verifyChain(pg);
      expect(chain).toMatchObject({ ok: true });
      expect(chain.ok && chain.count).toBe(verifyChain(source).ok && (verifyChain(source) as { count: number }).count);
      // Counters at sqlite_sequence's values: ids of deleted rows are not handed out again.
      const seqs = source.$client.prepare('SELECT name, seq FROM sqlite_sequence').all() as { name: string; seq: number }[];
      for (const { name, seq } of seqs) expect(pg.$client.prepare('SELECT seq FROM autoincrement_counters WHERE name = ?').pluck().get(name), name).toBe(seq);
      expect(seqs.find((s) => s.name === 'principals')!.seq).toBeGreaterThan(source.$client.prepare('SELECT max(id) FROM principals').pluck().get() as number);
    } finally {
      source.$client.close();
      pg.$client.close();
    }

    const again = await cli(['db', 'migrate-to-postgres', '--from', sqliteFile, '--to', target]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not empty: .*events \(\d+ rows\)/);
  }, 120_000);

  it('a registry on the migrated database serves the content and continues the ids and the chain', async () => {
    const reg = await startTestRegistry({ ...settings, databaseUrl: target }, dataDir);
    let before: { seq: number; repo: number };
    const readIds = () => {
      const db = openDatabase(target);
      try {
        return { seq: db.$client.prepare('SELECT max(seq) FROM events').pluck().get() as number, repo: db.$client.prepare('SELECT max(id) FROM repositories').pluck().get() as number };
      } finally {
        db.$client.close();
      }
    };
    try {
      before = readIds();
      for (const [ref, digest] of Object.entries(pushed)) {
        const [repo, tag] = ref.split(':') as [string, string];
        const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
        expect(res.status, ref).toBe(200);
        expect(res.headers.get('docker-content-digest')).toBe(digest);
      }
      const tags = (await (await fetch(`${reg.url}/v2/app/web/tags/list`)).json()) as { tags: string[] };
      expect(tags.tags.sort()).toEqual(['v1', 'v2']);
      // Search answers from the copied documents (and the index PostgreSQL derived from them).
      const searched = await fetch(`${reg.url}/api/v1/search?q=web`);
      const hits = (await searched.json()) as { results: { repository: string }[] };
      expect(searched.status, JSON.stringify(hits)).toBe(200);
      expect(hits.results.map((h) => h.repository)).toContain('app/web');
      // The held repository stays held; the immutable tag stays immutable.
      expect((await fetch(`${reg.url}/v2/app/api/manifests/${pushed['app/api:latest']}`, { method: 'DELETE' })).status).toBeGreaterThanOrEqual(400);
      await pushImage(reg.url, 'new/after', 'v1');
    } finally {
      await reg.stop();
    }
    const after = readIds();
    expect(after.seq).toBeGreaterThan(before!.seq);
    expect(after.repo).toBeGreaterThan(before!.repo);
    const db = openDatabase(target);
    try {
      expect(verifyChain(db)).toMatchObject({ ok: true, count: db.$client.prepare('SELECT count(*) FROM events').pluck().get() });
    } finally {
      db.$client.close();
    }
  }, 120_000);

  it('events check finds no difference between the migrated tables and a rebuild from the log', async () => {
    // The source was consistent (a difference on PostgreSQL would be the copy's or the back end's).
    const sourceCheck = await cli(['events', 'check'], { ARTIFACT_STORE_TEST_POSTGRES_URL: '' });
    expect(sourceCheck.code, sourceCheck.stdout + sourceCheck.stderr).toBe(0);
    const check = await cli(['events', 'check'], { ARTIFACT_STORE_DATABASE_URL: target });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/tables match a rebuild/);
  }, 120_000);
});
