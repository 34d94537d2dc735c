/**
 * The log reproduces the tables (issue #14 "Rebuild"): a scripted random workload over the OCI,
 * identity, families and bundles APIs on a real registry, then `events check` finds no
 * difference; a tag moved behind the log's back is reported; a rewritten event breaks the
 * rebuild; secret hashes logged for the rebuild are redacted from the events API.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_RULES } from '../../src/events/replay/index.js';
import { checkDatabase, compareTables, rebuildInto, ReplayError, runEventsCommand } from '../../src/events/rebuild.js';
import { api, bundleConfig, passReceipt, pushBundle, pushReceipt } from '../helpers/bundles.js';
import { pushBlob, pushImage, randomBlob } from '../helpers/http.js';
import { openDatabase } from '../../src/meta/db.js';
import { pushEvidence } from '../unit/evidence-push.js';
import { withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
/**
 * A metadata database by its file path. In the PostgreSQL run the path names a schema
 * (openDatabase's test mode): there is no file to open read-only with better-sqlite3.
 */
const openDb = (file: string, opts: { readonly?: boolean } = {}): Database.Database => (onPostgres ? openDatabase(file).$client : new Database(file, opts));

/**
 * A copy of the live database to tamper with. SQLite: the file, byte for byte (online backup).
 * PostgreSQL: a rebuild into a new schema, i.e. the log and every replayed table, which is what
 * `events check` reads (the comparison of that rebuild with the live tables is the first test).
 */
async function copyOfLive(copy: string): Promise<void> {
  const live = openDb(dbFile, { readonly: true });
  try {
    if (onPostgres) rebuildInto(live, copy);
    else await live.backup(copy);
  } finally {
    live.close();
  }
}

let reg: TestRegistry;
let dbFile: string;
const scratch = mkdtempSync(join(tmpdir(), 'rebuild-test-'));

/** A small seeded PRNG: the workload is random but replayable from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: reg.dataDir, ARTIFACT_STORE_LOG_LEVEL: 'silent' }, timeout: 110_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: stdout + stderr }),
    );
  });
}

const SEED = Number(process.env.REBUILD_SEED ?? 1414);

async function workload(steps: number): Promise<Record<string, number>> {
  const rnd = prng(SEED);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const repos = ['rb/app', 'rb/lib', 'other/svc'];
  const pushed: { repo: string; digest: string; layer: string }[] = [];
  const done: Record<string, number> = {};
  const count = (k: string) => (done[k] = (done[k] ?? 0) + 1);
  const users: string[] = [];
  const keys: string[] = [];
  let entry = 0;
  const approvedBundles: string[] = [];
  const scopes = [{ environment: 'prod', model_family: 'fraud' }, { environment: 'prod', model_family: 'fraud', tenant: 'acme' }, { environment: 'staging', model_family: 'fraud' }];
  for (let i = 0; i < steps; i++) {
    const r = rnd();
    if (r < 0.3) {
      const repo = pick(repos);
      const img = await pushImage(reg.url, repo, pick(['latest', 'v1', 'v2', 'stable']), rnd() < 0.3 ? { annotations: { 'org.example.n': String(i) } } : {});
      pushed.push({ repo, digest: img.digest, layer: img.layer });
      count('push');
    } else if (r < 0.38 && pushed.length > 0) {
      const p = pick(pushed);
      const res = await fetch(`${reg.url}/v2/${p.repo}/manifests/${p.digest}`, { method: 'DELETE' });
      count(`manifest.delete ${res.status}`);
    } else if (r < 0.45) {
      const res = await fetch(`${reg.url}/v2/${pick(repos)}/manifests/${pick(['latest', 'v1', 'v2', 'stable'])}`, { method: 'DELETE' });
      count(`tag.delete ${res.status}`);
    } else if (r < 0.5 && pushed.length > 0) {
      const p = pick(pushed);
      const res = await fetch(`${reg.url}/v2/${p.repo}/blobs/${p.layer}`, { method: 'DELETE' });
      count(`blob.delete ${res.status}`);
    } else if (r < 0.55 && pushed.length > 0) {
      const p = pick(pushed);
      const res = await fetch(`${reg.url}/v2/${pick(repos)}/blobs/uploads/?mount=${p.layer}&from=${p.repo}`, { method: 'POST' });
      count(`mount ${res.status}`);
    } else if (r < 0.6) {
      await pushBlob(reg.url, pick(repos), randomBlob(64));
      count('orphan blob');
    } else if (r < 0.7) {
      const id = `rb-${entry++}`;
      const res = await api(reg.url, 'POST', '/api/v1/families/scope/entries', { id, owner: 'artifact-store', description: `scope ${i}` });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      if (rnd() < 0.5) expect((await api(reg.url, 'PUT', `/api/v1/families/scope/entries/${id}`, { id, owner: 'artifact-store', description: `v2 ${i}` })).status).toBe(200);
      if (rnd() < 0.3) expect((await api(reg.url, 'PUT', `/api/v1/families/scope/entries/${id}/status`, { status: 'deprecated', reason: 'test' })).status).toBe(200);
      count('family');
    } else if (r < 0.72) {
      expect((await api(reg.url, 'PUT', '/api/v1/namespaces/gov/governance', { governed: rnd() < 0.5 })).status).toBe(200);
      count('governance');
    } else if (r < 0.85) {
      await withIdentities(reg.dataDir, async (ids, seed) => {
        const op = rnd();
        if (op < 0.3 || users.length < 2) {
          const name = `user${i}`;
          await seed.user(name, rnd() < 0.2);
          users.push(name);
        } else if (op < 0.45) {
          const org = `org${i}`;
          seed.org(org, ids.principalByName(pick(users))!.id);
          seed.member(org, pick(users), pick(['maintainer', 'reader'] as const));
        } else if (op < 0.6) {
          keys.push(seed.key(ids.principalByName(pick(users))!.id, ['read'], rnd() < 0.5 ? ['rb/*'] : undefined).id);
        } else if (op < 0.7 && keys.length > 0) {
          ids.revokeKey(pick(keys), 'test');
        } else if (op < 0.8) {
          ids.setPassword(ids.principalByName(pick(users))!, `hash-${i}`, 'test');
        } else if (op < 0.9) {
          ids.setDisabled(ids.principalByName(pick(users))!, rnd() < 0.5, 'test');
        } else {
          ids.setVisibility(pick(repos), rnd() < 0.5 ? 'public' : 'private', 'test');
        }
      });
      count('identity');
    } else {
      const v = `1.0.${i}`;
      const b = await pushBundle(reg.url, 'ml/fraud', bundleConfig('scorer', v));
      await pushReceipt(reg.url, 'ml/fraud', b, passReceipt());
      expect((await api(reg.url, 'POST', '/api/v1/bundles', { repository: 'ml/fraud', digest: b.digest })).status).toBe(201);
      expect((await api(reg.url, 'POST', `/api/v1/bundles/scorer/${v}/transitions`, { to: 'CANDIDATE', reason: 'ok' })).status).toBe(200);
      count('bundle');
      if (rnd() < 0.7) {
        expect((await api(reg.url, 'POST', `/api/v1/bundles/scorer/${v}/transitions`, { to: 'APPROVED', reason: 'ok' })).status).toBe(200);
        approvedBundles.push(v);
        const scope = pick(scopes);
        const act = await api(reg.url, 'POST', '/api/v1/activations', { scope, bundle_id: 'scorer', bundle_version: v, reason: 'rollout' });
        count(`bundle.activate ${act.status}`);
      }
      if (rnd() < 0.3) count(`bundle.rollback ${(await api(reg.url, 'POST', '/api/v1/activations/rollback', { scope: pick(scopes), reason: 'regression' })).status}`);
      if (rnd() < 0.2 && approvedBundles.length > 0) {
        count(`bundle.retire ${(await api(reg.url, 'POST', `/api/v1/bundles/scorer/${pick(approvedBundles)}/transitions`, { to: 'RETIRED', reason: 'old' })).status}`);
      }
    }
  }
  // Every replayed module at least once, whatever the seed drew.
  const ok = (r: { status: number; body: unknown }) => expect([200, 201, 204], JSON.stringify(r.body)).toContain(r.status);
  ok(await api(reg.url, 'PUT', '/api/v1/namespaces/gov/governance', { governed: true }));
  await withIdentities(reg.dataDir, async (_ids, seed) => seed.org('delegates', await seed.user('delegate-owner')));
  ok(await api(reg.url, 'PUT', '/api/v1/families/scope/delegation', { org: 'delegates' }));
  const subject = await pushImage(reg.url, 'rb/evidence', 'v1');
  await pushEvidence(reg.url, 'rb/evidence', { digest: subject.digest, size: subject.bytes.length }, 'sbom');
  ok(await api(reg.url, 'PUT', '/api/v1/stars?repository=rb/app'));
  ok(await api(reg.url, 'PUT', '/api/v1/stars?repository=rb/lib'));
  ok(await api(reg.url, 'DELETE', '/api/v1/stars?repository=rb/lib'));
  ok(await api(reg.url, 'PUT', '/api/v1/namespaces/other/policies', { immutableTags: ['frozen-*'] }));
  const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  ok(await api(reg.url, 'PUT', '/api/v1/namespaces/rb/trust', { mode: 'warn', keys: [{ id: 'k1', publicKey: signingKey }, { id: 'k2', publicKey: signingKey }], identities: [], enforceOnPull: false }));
  ok(await api(reg.url, 'DELETE', '/api/v1/namespaces/rb/trust/keys/k2?reason=rotated'));
  // Port 9 (discard): deliveries fail and retry, which is delivery state, not something to rebuild.
  ok(await api(reg.url, 'POST', '/api/v1/webhooks', { url: 'http://127.0.0.1:9/kept', events: ['oci.*'], secret: 'a-secret-of-enough-length' }));
  const dropped = await api(reg.url, 'POST', '/api/v1/webhooks', { url: 'http://127.0.0.1:9/dropped', events: ['*'], namespaces: ['rb'], secret: 'another-secret-long-enough' });
  ok(dropped);
  ok(await api(reg.url, 'DELETE', `/api/v1/webhooks/${(dropped.body as { id: string }).id}`));
  ok(await api(reg.url, 'PUT', '/api/v1/namespaces/other/policies', { immutableTags: ['frozen-*', 'release-*'] }));
  const held = await api(reg.url, 'POST', '/api/v1/holds', { repository: 'rb/app', reason: 'audit 1' });
  ok(held);
  const released = await api(reg.url, 'POST', '/api/v1/holds', { repository: 'rb/lib', reason: 'audit 2' });
  ok(released);
  ok(await api(reg.url, 'DELETE', `/api/v1/holds/${(released.body as { id: string }).id}`, { reason: 'done' }));
  const gc = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: JSON.stringify({ dryRun: false }), headers: { 'Content-Type': 'application/json' } });
  expect(gc.status).toBe(200);
  return done;
}

beforeAll(async () => {
  reg = await startTestRegistry({ gcGraceSeconds: 0, gcIntervalSeconds: 0, webhookAllowPrivateTargets: true });
  dbFile = join(reg.dataDir, 'metadata.db');
  expect((await api(reg.url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0', tokenizer: '2.0.1' }, reason: 'setup' })).status).toBe(200);
  const done = await workload(160);
  console.log('rebuild workload:', JSON.stringify(done));
  // The workload must actually have exercised the interesting paths.
  expect(Object.keys(done).length).toBeGreaterThan(8);
}, 120_000);

afterAll(async () => {
  await reg.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('events rebuild / check', () => {
  it('a rebuild from the log reproduces every replayed table of the live registry', () => {
    const r = checkDatabase(dbFile);
    expect(r.differences).toEqual([]);
    expect(r.events).toBeGreaterThan(200);
    const live = openDb(dbFile, { readonly: true });
    try {
      // Non-trivial state on both sides: the comparison is not of empty tables.
      console.log('rows per replayed table:', JSON.stringify(Object.fromEntries(TABLE_RULES.map((t) => [t.table, live.prepare(`SELECT count(*) FROM ${t.table}`).pluck().get()]))));
      for (const t of ['manifests', 'tags', 'repository_blobs', 'principals', 'org_members', 'api_keys', 'repository_visibility', 'family_entry_versions', 'namespace_governance', 'family_delegations', 'legal_holds', 'evidence', 'namespace_policies', 'search_stars', 'bundles', 'bundle_history', 'bundle_activations', 'bundle_scope_stack', 'platform_feature_groups']) {
        expect((live.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number) > 0, t).toBe(true);
      }
    } finally {
      live.close();
    }
  });

  it('events rebuild --into writes a new database, refuses an existing file; events check exits 0', async () => {
    const into = join(scratch, 'rebuilt.db');
    const rebuilt = await cli(['events', 'rebuild', '--into', into]);
    expect(rebuilt.stdout).toMatch(/^rebuilt .* from \d+ events/);
    expect(rebuilt.code).toBe(0);
    if (!onPostgres) expect(existsSync(into)).toBe(true); // on PostgreSQL a schema: its rows are compared below
    const again = await cli(['events', 'rebuild', '--into', into]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain('exists');
    const a = openDb(dbFile, { readonly: true });
    const b = openDb(into, { readonly: true });
    try {
      expect(compareTables(a, b)).toEqual([]);
      expect(b.prepare('SELECT count(*) FROM events').pluck().get()).toBe(a.prepare('SELECT count(*) FROM events').pluck().get());
      // The derived search index is rebuilt too (by its triggers, fed once after the replay).
      const docs = (d: Database.Database) =>
        (d.prepare('SELECT repository, digest, type, signed, tags FROM search_docs ORDER BY repository, digest').all() as { tags: string }[]).map((r) => ({ ...r, tags: r.tags.split(' ').sort().join(' ') }));
      expect(docs(b)).toEqual(docs(a));
      expect(docs(a).length).toBeGreaterThan(10);
    } finally {
      a.close();
      b.close();
    }
    const check = await cli(['events', 'check']);
    expect(check.stdout).toMatch(/tables match a rebuild from \d+ events/);
    expect(check.code).toBe(0);
  }, 120_000);

  it('events check reads one snapshot: pushes landing while it runs cause no false difference', async () => {
    let pushing = true;
    const writer = (async () => {
      let n = 0;
      while (pushing && n < 200) await pushImage(reg.url, 'rb/concurrent', `t${n++ % 7}`);
      return n;
    })();
    const checks = await Promise.all([cli(['events', 'check']), cli(['events', 'check'])]);
    pushing = false;
    // Writes were landing throughout the two CLI runs (each reads the log and tables once).
    expect(await writer).toBeGreaterThan(5);
    for (const c of checks) {
      expect(c.stdout).toMatch(/tables match a rebuild from \d+ events/);
      expect(c.code).toBe(0);
    }
    expect(checkDatabase(dbFile).differences).toEqual([]);
  }, 120_000);

  it('a tag moved behind the log is reported as a difference, and check exits non-zero', async () => {
    const copy = join(scratch, 'tampered.db');
    await copyOfLive(copy);
    const raw = openDb(copy);
    const tag = raw
      .prepare('SELECT t.repository_id, t.name, t.digest, m.digest AS other FROM tags t JOIN manifests m ON m.repository_id = t.repository_id AND m.digest <> t.digest LIMIT 1')
      .get() as { repository_id: number; name: string; digest: string; other: string };
    expect(tag).toBeDefined();
    const other = tag.other;
    raw.prepare('UPDATE tags SET digest = ? WHERE repository_id = ? AND name = ?').run(other, tag.repository_id, tag.name);
    raw.prepare("UPDATE principals SET is_admin = 1 WHERE kind = 'user' AND is_admin = 0").run();
    raw.close();
    const r = checkDatabase(copy);
    expect(r.differences).toContainEqual({ table: 'tags', key: { repository_id: tag.repository_id, name: tag.name }, kind: 'differs', columns: [{ column: 'digest', live: other, rebuilt: tag.digest }] });
    expect(r.differences.some((d) => d.table === 'principals' && d.columns?.[0]?.column === 'is_admin')).toBe(true);
    let out = '';
    expect(runEventsCommand('check', copy, undefined, (s) => (out += s))).toBe(1);
    expect(out).toContain(`tags {"repository_id":${tag.repository_id},"name":"${tag.name}"}: digest live="${other}" rebuilt="${tag.digest}"`);
    expect(out).toMatch(/events check: \d+ difference\(s\)/);
  });

  it('a rewritten event breaks the rebuild (hash chain re-verified)', async () => {
    const copy = join(scratch, 'forged.db');
    await copyOfLive(copy);
    const raw = openDb(copy);
    raw.exec(onPostgres ? 'DROP TRIGGER events_no_update ON events' : 'DROP TRIGGER events_no_update');
    const seq = raw.prepare("SELECT seq FROM events WHERE action = 'oci.tag.set' LIMIT 1").pluck().get() as number;
    raw.prepare("UPDATE events SET tag = 'forged' WHERE seq = ?").run(seq);
    raw.close();
    expect(() => checkDatabase(copy)).toThrow(ReplayError);
    expect(() => checkDatabase(copy)).toThrow(`hash chain broken at seq ${seq}`);
    const src = openDb(copy, { readonly: true });
    try {
      expect(() => rebuildInto(src, join(scratch, 'never.db'))).toThrow(/hash chain broken/);
    } finally {
      src.close();
    }
  });

  it('password and key hashes logged for the rebuild are redacted from the events API', async () => {
    const r = await api(reg.url, 'GET', '/api/v1/events?after=0&limit=1000');
    const text = JSON.stringify(r.body);
    expect(text).toContain('identity.user.create');
    expect(text).toContain('"passwordHash":"[redacted]"');
    expect(text).not.toMatch(/"(passwordHash|secretHash)":"(?!\[redacted\])/);
    expect(text).toContain('oci.manifest.push');
    expect(text).not.toContain('"payload"');
    // The raw log does hold them (that is what makes the rebuild exact).
    const live = openDb(dbFile, { readonly: true });
    try {
      expect(live.prepare("SELECT count(*) FROM events WHERE action = 'identity.key.create' AND after LIKE '%secretHash%'").pluck().get()).toBeGreaterThan(0);
    } finally {
      live.close();
    }
  });
});
