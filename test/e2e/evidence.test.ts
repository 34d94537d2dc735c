/**
 * Evidence, retention and legal holds on the real registry (real families module, auth on):
 * the issue's end-to-end story — push an image, an SBOM and a model whose scan report comes back
 * as evidence, hold the repository, try every delete, lift the hold, delete — plus who may place
 * and lift holds, fail-closed evidence types in a governed namespace, and holds across a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, pushBlob, pushImage, randomBlob, sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { EVIDENCE, json, pushEvidence, putEvidence } from '../unit/evidence-push.js';

let reg: TestRegistry;
const as: Record<string, Record<string, string>> = {};

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (_ids, s) => {
    const owner = await s.user('olive');
    await s.user('root', true);
    await s.user('mary');
    await s.user('rita');
    await s.user('oscar');
    s.org('acme', owner);
    s.member('acme', 'mary', 'maintainer');
    s.member('acme', 'rita', 'reader');
  });
  for (const u of ['olive', 'root', 'mary', 'rita', 'oscar']) as[u] = { Authorization: basic(u, PASSWORD) };
  as.anonymous = {};
  const families = await fetch(`${reg.url}/api/v1/families`, { headers: as.root });
  expect(families.status).toBe(200);
  // An evidence type with no retention, so the story can end with deletes.
  const short = await fetch(`${reg.url}/api/v1/families/evidence-type/entries`, {
    method: 'POST',
    headers: { ...as.root, 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: 'test-log', owner: 'artifact-store', description: 'CI test log', retentionDays: 0 }),
  });
  expect(short.status, await short.text()).toBe(201);
});
afterAll(async () => {
  await reg.stop();
});

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const POISON = Buffer.from("cos\nsystem\n(S'id'\ntR.", 'latin1');
const del = (path: string, who = 'olive') => fetch(`${reg.url}${path}`, { method: 'DELETE', headers: as[who] });
const hold = (body: unknown, who = 'olive') => fetch(`${reg.url}/api/v1/holds`, { method: 'POST', headers: { ...as[who], 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

async function pushModel(repo: string, tag: string): Promise<string> {
  const config = Buffer.from('{}');
  const c = await pushBlob(reg.url, repo, config, as.olive);
  const l = await pushBlob(reg.url, repo, POISON, as.olive);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: c, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: l, size: POISON.length, annotations: { 'org.opencontainers.image.title': 'model.pkl' } }],
    }),
  );
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: bytes, headers: { ...as.olive, 'Content-Type': MANIFEST } });
  expect(res.status, await res.text()).toBe(201);
  return sha256(bytes);
}

async function waitForScanReport(repo: string, subject: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const idx = await json(await fetch(`${reg.url}/v2/${repo}/referrers/${subject}?artifactType=${encodeURIComponent(EVIDENCE)}`, { headers: as.olive }));
    const report = idx.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['dev.artifact-store.evidence.type'] === 'scan-report');
    if (report) return report.digest as string;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no scan report');
}

describe('the evidence story', () => {
  it('image + SBOM + scanned model; hold the repository; every delete refused; lift; delete', async () => {
    const repo = 'acme/release';
    const img = await pushImage(reg.url, repo, 'v1', {}, as.olive);
    const sbom = await pushEvidence(reg.url, repo, { digest: img.digest, size: img.bytes.length }, 'sbom', as.olive); // built-in: 730 days
    const log = await pushEvidence(reg.url, repo, { digest: img.digest, size: img.bytes.length }, 'test-log', as.olive); // 0 days
    const model = await pushModel(repo, 'model');
    const report = await waitForScanReport(repo, model);
    const reportManifest = await json(await fetch(`${reg.url}/v2/${repo}/manifests/${report}`, { headers: { ...as.olive, Accept: MANIFEST } }));
    expect(reportManifest.annotations['dev.artifact-store.scan.result']).toBe('fail');

    // Retention: the SBOM pins itself and the image for 730 days.
    const retained = await del(`/v2/${repo}/manifests/${img.digest}`);
    const body = await json(retained);
    expect(retained.status).toBe(403);
    expect(body.errors[0].code).toBe('DENIED');
    expect(body.errors[0].message).toContain(sbom.digest);
    expect(body.errors[0].message).toMatch(/retained until \d{4}-\d\d-\d\dT/);

    const created = await hold({ repository: repo, reason: 'matter 42' });
    const h = await json(created);
    expect(created.status).toBe(201);
    const loose = await pushBlob(reg.url, repo, randomBlob(100), as.olive);
    for (const path of [`/v2/${repo}/manifests/${log.digest}`, `/v2/${repo}/manifests/v1`, `/v2/${repo}/manifests/${model}`, `/v2/${repo}/blobs/${loose}`]) {
      const r = await del(path);
      const b = await json(r);
      expect(r.status, path).toBe(403);
      expect(b.errors[0].message).toContain(h.id);
      expect(b.errors[0].message).toContain('matter 42');
    }
    const listed = await json(await fetch(`${reg.url}/api/v1/holds?repository=${repo}`, { headers: as.rita }));
    expect(listed.holds.map((x: { id: string }) => x.id)).toEqual([h.id]);
    const view = await json(await fetch(`${reg.url}/api/v1/evidence?repository=${repo}&digest=${img.digest}`, { headers: as.rita }));
    expect(view.evidence.map((e: { type: string }) => e.type).sort()).toEqual(['sbom', 'test-log']);
    expect(view.protected).toContain(h.id);

    expect((await fetch(`${reg.url}/api/v1/holds/${h.id}`, { method: 'DELETE', headers: { ...as.olive, 'Content-Type': 'application/json' }, body: JSON.stringify({ reason: 'settled' }) })).status).toBe(200);
    expect((await del(`/v2/${repo}/manifests/${log.digest}`)).status).toBe(202);
    expect((await del(`/v2/${repo}/blobs/${loose}`)).status).toBe(202);
    expect((await del(`/v2/${repo}/manifests/${model}`)).status).toBe(202); // scan reports do not pin the model
    expect((await del(`/v2/${repo}/manifests/${report}`)).status).toBe(403); // but are kept themselves (scan-report: 365 days)
    expect((await del(`/v2/${repo}/manifests/${img.digest}`)).status).toBe(403); // the SBOM still pins the image

    const events = (await json(await fetch(`${reg.url}/api/v1/events?limit=1000`, { headers: as.root }))).events as { action: string; actor: string; reason: string | null; repository: string | null }[];
    const mine = events.filter((e) => e.repository === repo && e.action.startsWith('evidence.'));
    expect(mine.find((e) => e.action === 'evidence.hold.create')).toMatchObject({ actor: 'olive', reason: 'matter 42' });
    expect(mine.find((e) => e.action === 'evidence.hold.release')).toMatchObject({ actor: 'olive', reason: 'settled' });
    expect(mine.filter((e) => e.action === 'evidence.record')).toHaveLength(3);
    expect(mine.find((e) => e.action === 'evidence.scan.report')).toMatchObject({ actor: 'system:scanner' });
  });
});

describe('who may hold', () => {
  it('namespace owners and administrators place and lift holds; maintainers, readers, outsiders and tokens cannot', async () => {
    const repo = 'acme/perm';
    await pushImage(reg.url, repo, 'v1', {}, as.olive);
    await expectError(await hold({ repository: repo, reason: 'x' }, 'mary'), 403, 'DENIED');
    await expectError(await hold({ repository: repo, reason: 'x' }, 'rita'), 403, 'DENIED');
    await expectError(await hold({ repository: repo, reason: 'x' }, 'oscar'), 403, 'DENIED');
    await expectError(await hold({ repository: repo, reason: 'x' }, 'anonymous'), 401, 'UNAUTHORIZED');
    // A bearer token carries OCI grants only.
    const token = await json(await fetch(`${reg.url}/token?service=artifact-store&scope=repository:${repo}:pull,push,delete`, { headers: as.olive }));
    expect(typeof token.token).toBe('string');
    const bearer = await fetch(`${reg.url}/api/v1/holds`, { method: 'POST', headers: { Authorization: `Bearer ${token.token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ repository: repo, reason: 'x' }) });
    await expectError(bearer, 401, 'UNAUTHORIZED');
    expect((await json(await fetch(`${reg.url}/api/v1/holds?repository=${repo}`, { headers: as.olive }))).holds).toEqual([]);

    const byAdmin = await json(await hold({ repository: repo, reason: 'regulator' }, 'root'));
    await expectError(await del(`/api/v1/holds/${byAdmin.id}`, 'mary'), 403, 'DENIED');
    await expectError(await del(`/api/v1/holds/${byAdmin.id}`, 'anonymous'), 401, 'UNAUTHORIZED');
    // Reading holds needs pull on the repository.
    expect((await fetch(`${reg.url}/api/v1/holds?repository=${repo}`, { headers: as.rita })).status).toBe(200);
    await expectError(await fetch(`${reg.url}/api/v1/holds?repository=${repo}`, { headers: as.oscar }), 403, 'DENIED');
    await expectError(await fetch(`${reg.url}/api/v1/holds`, { headers: as.olive }), 403, 'DENIED');
    expect((await fetch(`${reg.url}/api/v1/holds`, { headers: as.root })).status).toBe(200);
    // The namespace owner lifts what the administrator placed; twice is a conflict.
    expect((await del(`/api/v1/holds/${byAdmin.id}`)).status).toBe(200);
    await expectError(await del(`/api/v1/holds/${byAdmin.id}`), 409, 'CONFLICT');
    // Refused attempts are denial events.
    const events = (await json(await fetch(`${reg.url}/api/v1/events?limit=1000`, { headers: as.root }))).events as { action: string; actor: string }[];
    expect(events.some((e) => e.actor === 'mary' && e.action.includes('denied'))).toBe(true);
  });
});

describe('listing holds', () => {
  it('pages in creation order with a cursor; bad paging parameters are 400', async () => {
    const repo = 'acme/paged';
    await pushImage(reg.url, repo, 'v1', {}, as.olive);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await json(await hold({ repository: repo, reason: `matter ${i}` }))).id);
    const seen: string[] = [];
    let cursor: string | null = '';
    for (let pages = 0; cursor !== null; pages++) {
      expect(pages).toBeLessThan(5);
      const page = await json(await fetch(`${reg.url}/api/v1/holds?repository=${repo}&limit=2${cursor ? `&cursor=${cursor}` : ''}`, { headers: as.rita }));
      expect(page.holds.length).toBeLessThanOrEqual(2);
      seen.push(...page.holds.map((h: { id: string }) => h.id));
      cursor = page.next;
    }
    expect(seen).toEqual(ids);
    await expectError(await fetch(`${reg.url}/api/v1/holds?repository=${repo}&limit=0`, { headers: as.rita }), 400, 'INVALID_PAYLOAD');
    await expectError(await fetch(`${reg.url}/api/v1/holds?repository=${repo}&limit=1001`, { headers: as.rita }), 400, 'INVALID_PAYLOAD');
    await expectError(await fetch(`${reg.url}/api/v1/holds?repository=${repo}&cursor=abc`, { headers: as.rita }), 400, 'INVALID_PAYLOAD');
    for (const id of ids) expect((await del(`/api/v1/holds/${id}`)).status).toBe(200);
  });
});

describe('governed namespace and restart', () => {
  it('fails closed on unknown or disabled evidence types; holds survive a restart', async () => {
    const gov = await fetch(`${reg.url}/api/v1/namespaces/acme/governance`, { method: 'PUT', headers: { ...as.olive, 'Content-Type': 'application/json' }, body: JSON.stringify({ governed: true }) });
    expect(gov.status, await gov.text()).toBe(200);
    const repo = 'acme/governed';
    const img = await pushImage(reg.url, repo, 'v1', {}, as.olive);
    const subject = { digest: img.digest, size: img.bytes.length };
    const unknown = await putEvidence(reg.url, repo, subject, 'made-up', as.olive);
    const ub = await json(unknown.res);
    expect(unknown.res.status).toBe(400);
    expect(ub.errors[0]).toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(ub.errors[0].message).toContain("'made-up'");
    const status = await fetch(`${reg.url}/api/v1/families/evidence-type/entries/test-log/status`, { method: 'PUT', headers: { ...as.root, 'Content-Type': 'application/json' }, body: JSON.stringify({ status: 'disabled', reason: 'retired' }) });
    expect(status.status, await status.text()).toBe(200);
    const disabled = await putEvidence(reg.url, repo, subject, 'test-log', as.olive);
    const db = await json(disabled.res);
    expect(disabled.res.status).toBe(400);
    expect(db.errors[0].message).toContain("'test-log' is disabled");
    await pushEvidence(reg.url, repo, subject, 'provenance', as.olive);

    const h = await json(await hold({ repository: repo, digest: img.digest, reason: 'keep' }));
    reg = await reg.restart();
    const r = await del(`/v2/${repo}/manifests/${img.digest}`);
    expect(r.status).toBe(403);
    expect((await json(r)).errors[0].message).toContain(h.id);
  });
});
