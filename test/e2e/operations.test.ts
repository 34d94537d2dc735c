/**
 * Namespace policies over HTTP: immutable tags (403 DENIED naming the rule), quotas counting a
 * blob shared by several repositories once (mounts included), usage, retention applied by GC,
 * and who may call what.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, imageManifest, pushBlob, randomBlob, sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MT = 'application/vnd.oci.image.manifest.v1+json';
const json = { 'Content-Type': 'application/json' };
let reg: TestRegistry;

beforeAll(async () => {
  reg = await startTestRegistry({ gcGraceSeconds: 0, gcIntervalSeconds: 0 });
});
afterAll(async () => reg?.stop());

const setPolicy = (ns: string, body: unknown) => fetch(`${reg.url}/api/v1/namespaces/${ns}/policies`, { method: 'PUT', body: JSON.stringify(body), headers: json });
const usage = async (ns: string) => (await (await fetch(`${reg.url}/api/v1/namespaces/${ns}/usage`)).json()) as { bytes: number; quotaBytes: number | null };
const putManifest = (repo: string, ref: string, body: Buffer) => fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'Content-Type': MT } });
const gc = async (dryRun: boolean) => {
  const res = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: JSON.stringify({ dryRun }), headers: json });
  expect(res.status).toBe(200);
  return (await res.json()) as { blobs: number; bytes: number; manifests: number; items: { kind: string; action: string; digest?: string; tag?: string; reason: string }[] };
};

/** Pushes config + the given layers and a manifest (unique by `note`) under `ref`. */
async function image(repo: string, layers: Buffer[], note: string) {
  const config = Buffer.from(`{"architecture":"amd64","os":"linux","note":"${note}"}`);
  const c = await pushBlob(reg.url, repo, config);
  const ls = [];
  for (const l of layers) ls.push({ digest: await pushBlob(reg.url, repo, l), size: l.length });
  const bytes = imageManifest({ digest: c, size: config.length }, ls, { annotations: { note } });
  return { bytes, digest: sha256(bytes), config: { digest: c, size: config.length }, layers: ls };
}

describe('tag immutability', () => {
  it('first push allowed; overwrite and delete of a matching tag are 403 DENIED naming the rule', async () => {
    const res = await setPolicy('imm', { immutableTags: ['v*', 'release-*'] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { version: number }).version).toBe(1);

    const a = await image('imm/app', [randomBlob(100)], 'a');
    const b = await image('imm/app', [randomBlob(100)], 'b');
    expect((await putManifest('imm/app', 'v1', a.bytes)).status).toBe(201);
    expect((await putManifest('imm/app', 'v1', a.bytes)).status).toBe(201); // same content: not an overwrite
    const over = await putManifest('imm/app', 'v1', b.bytes);
    const text = await over.text();
    expect(over.status).toBe(403);
    expect(JSON.parse(text).errors[0].code).toBe('DENIED');
    expect(text).toContain('v*');
    // Pointing another tag with ?tag= at other content is checked the same way.
    const viaQuery = await fetch(`${reg.url}/v2/imm/app/manifests/${b.digest}?tag=v1`, { method: 'PUT', body: b.bytes, headers: { 'Content-Type': MT } });
    expect(viaQuery.status).toBe(403);

    await expectError(await fetch(`${reg.url}/v2/imm/app/manifests/v1`, { method: 'DELETE' }), 403, 'DENIED');
    await expectError(await fetch(`${reg.url}/v2/imm/app/manifests/${a.digest}`, { method: 'DELETE' }), 403, 'DENIED');
    // Unmatched tags move freely.
    expect((await putManifest('imm/app', 'latest', a.bytes)).status).toBe(201);
    expect((await putManifest('imm/app', 'latest', b.bytes)).status).toBe(201);
    expect((await fetch(`${reg.url}/v2/imm/app/manifests/latest`, { method: 'DELETE' })).status).toBe(202);
    // The tag still points at the first push.
    const got = await fetch(`${reg.url}/v2/imm/app/manifests/v1`, { headers: { Accept: MT } });
    expect(got.headers.get('docker-content-digest')).toBe(a.digest);
  });

  it('refuses malformed policies with 400 INVALID_PAYLOAD and keeps the old one', async () => {
    await expectError(await setPolicy('imm', { immutableTags: [''] }), 400, 'INVALID_PAYLOAD');
    await expectError(await setPolicy('imm', { retention: [{ repositories: '**' }] }), 400, 'INVALID_PAYLOAD');
    await expectError(await setPolicy('imm', { quotaBytes: -1 }), 400, 'INVALID_PAYLOAD');
    await expectError(await setPolicy('Bad_NS', {}), 400, 'NAME_INVALID');
    const cur = (await (await fetch(`${reg.url}/api/v1/namespaces/imm/policies`)).json()) as { immutableTags: string[]; version: number };
    expect(cur).toMatchObject({ immutableTags: ['v*', 'release-*'], version: 1 });
  });
});

describe('quotas', () => {
  it('counts a blob shared by repositories of the namespace once (push or mount) and refuses a push past the quota', async () => {
    expect(await usage('quo')).toEqual({ namespace: 'quo', bytes: 0, quotaBytes: null });
    const layer = randomBlob(4000);
    const a = await image('quo/one', [layer], 'a');
    expect((await putManifest('quo/one', 'a', a.bytes)).status).toBe(201);
    const afterA = (await usage('quo')).bytes;
    expect(afterA).toBe(layer.length + a.config.size + a.bytes.length);

    // Same layer and config, uploaded again into another repository: only the manifest is new.
    const again = await image('quo/two', [layer], 'a');
    const b = Buffer.from(again.bytes.toString().replace('"note":"a"}}', '"note":"b"}}'));
    expect((await putManifest('quo/two', 'b', b)).status).toBe(201);
    expect((await usage('quo')).bytes).toBe(afterA + b.length);

    // Mounting into a third repository and pushing a manifest there adds only that manifest.
    const m = await fetch(`${reg.url}/v2/quo/three/blobs/uploads/?mount=${a.layers[0]!.digest}&from=quo/one`, { method: 'POST' });
    expect(m.status).toBe(201);
    const m2 = await fetch(`${reg.url}/v2/quo/three/blobs/uploads/?mount=${a.config.digest}&from=quo/one`, { method: 'POST' });
    expect(m2.status).toBe(201);
    const c = imageManifest(a.config, a.layers, { annotations: { note: 'c' } });
    expect((await putManifest('quo/three', 'c', c)).status).toBe(201);
    const used = (await usage('quo')).bytes;
    expect(used).toBe(afterA + b.length + c.length);
    // A mount into another namespace counts there.
    await fetch(`${reg.url}/v2/other/x/blobs/uploads/?mount=${a.layers[0]!.digest}&from=quo/one`, { method: 'POST' });
    expect((await usage('quo')).bytes).toBe(used);

    // Quota: room for one more small manifest over shared blobs, not for a new big layer.
    expect((await setPolicy('quo', { quotaBytes: used + 600 })).status).toBe(200);
    expect(await usage('quo')).toEqual({ namespace: 'quo', bytes: used, quotaBytes: used + 600 });
    const big = await image('quo/one', [randomBlob(5000)], 'big');
    const refused = await putManifest('quo/one', 'big', big.bytes);
    const body = (await refused.json()) as { errors: { code: string; message: string; detail: { bytes: number; quotaBytes: number } }[] };
    expect(refused.status).toBe(403);
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.message).toContain('quota');
    expect(body.errors[0]!.detail).toMatchObject({ bytes: used, quotaBytes: used + 600 });
    expect((await usage('quo')).bytes).toBe(used);
    const small = imageManifest(a.config, a.layers, { annotations: { note: 'd' } });
    expect((await putManifest('quo/two', 'd', small)).status).toBe(201);
  });
});

describe('retention applied by GC', () => {
  it('keeps the N most recent tags per repository, previews in a dry run, never touches immutable tags', async () => {
    const pushed: Record<string, { digest: string; layer: string }> = {};
    for (const tag of ['dev-1', 'dev-2', 'dev-3', 'v1']) {
      const img = await image('ret/app', [randomBlob(300)], tag);
      expect((await putManifest('ret/app', tag, img.bytes)).status).toBe(201);
      pushed[tag] = { digest: img.digest, layer: img.layers[0]!.digest };
      await new Promise((r) => setTimeout(r, 15)); // distinct push times
    }
    expect((await setPolicy('ret', { immutableTags: ['v*'], retention: [{ repositories: 'ret/*', tags: 'dev-*', keepMostRecent: 1 }, { repositories: 'ret/*', tags: 'v*', keepMostRecent: 0 }] })).status).toBe(200);

    const preview = await gc(true);
    const goes = (kind: string) => preview.items.filter((i) => i.kind === kind && i.action === 'delete');
    expect(goes('tag').map((i) => i.tag).sort()).toEqual(['dev-1', 'dev-2']);
    expect(preview.items.find((i) => i.kind === 'tag' && i.tag === 'v1')).toBeUndefined(); // immutable: not even listed for deletion
    expect(goes('manifest').map((i) => i.digest).sort()).toEqual([pushed['dev-1']!.digest, pushed['dev-2']!.digest].sort());
    expect(goes('blob').map((i) => i.digest)).toEqual(expect.arrayContaining([pushed['dev-1']!.layer, pushed['dev-2']!.layer]));
    // Nothing happened yet.
    expect((await fetch(`${reg.url}/v2/ret/app/manifests/dev-1`, { method: 'HEAD', headers: { Accept: MT } })).status).toBe(200);

    const done = await gc(false);
    expect(done.manifests).toBeGreaterThanOrEqual(2);
    for (const tag of ['dev-1', 'dev-2']) {
      expect((await fetch(`${reg.url}/v2/ret/app/manifests/${tag}`, { method: 'HEAD', headers: { Accept: MT } })).status).toBe(404);
      expect((await fetch(`${reg.url}/v2/ret/app/blobs/${pushed[tag]!.layer}`, { method: 'HEAD' })).status).toBe(404);
    }
    for (const tag of ['dev-3', 'v1']) {
      expect((await fetch(`${reg.url}/v2/ret/app/manifests/${tag}`, { method: 'HEAD', headers: { Accept: MT } })).status).toBe(200);
      const blob = await fetch(`${reg.url}/v2/ret/app/blobs/${pushed[tag]!.layer}`);
      expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(pushed[tag]!.layer);
    }
    const events = (await (await fetch(`${reg.url}/api/v1/events?limit=1000`)).json().catch(() => null)) as { events?: { action: string; tag?: string }[] } | null;
    if (events?.events) {
      expect(events.events.filter((e) => e.action === 'gc.tag.delete').map((e) => e.tag).sort()).toEqual(['dev-1', 'dev-2']);
    }
  });
});

describe('retention of multi-platform images', () => {
  it('an index that loses its last tag goes with the children no other index lists', async () => {
    const IT = 'application/vnd.oci.image.index.v1+json';
    const child = async (note: string) => {
      const img = await image('multi/app', [randomBlob(150)], note);
      expect((await putManifest('multi/app', img.digest, img.bytes)).status).toBe(201);
      return { digest: img.digest, size: img.bytes.length, layer: img.layers[0]!.digest };
    };
    const shared = await child('shared');
    const onlyOld = await child('only-old');
    const onlyNew = await child('only-new');
    const index = (children: { digest: string; size: number }[], note: string) =>
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: IT, manifests: children.map((c) => ({ mediaType: MT, digest: c.digest, size: c.size })), annotations: { note } }));
    const oldIdx = index([shared, onlyOld], 'old');
    const newIdx = index([shared, onlyNew], 'new');
    for (const [tag, body] of [['build-1', oldIdx], ['build-2', newIdx]] as const) {
      expect((await fetch(`${reg.url}/v2/multi/app/manifests/${tag}`, { method: 'PUT', body, headers: { 'Content-Type': IT } })).status).toBe(201);
      await new Promise((r) => setTimeout(r, 15));
    }
    expect((await setPolicy('multi', { retention: [{ repositories: 'multi/app', keepMostRecent: 1 }] })).status).toBe(200);
    const run = await gc(false);
    const goneManifests = run.items.filter((i) => i.kind === 'manifest' && i.action === 'delete').map((i) => i.digest).sort();
    expect(goneManifests).toEqual([sha256(oldIdx), onlyOld.digest].sort());
    const head = (ref: string, accept = MT) => fetch(`${reg.url}/v2/multi/app/manifests/${ref}`, { method: 'HEAD', headers: { Accept: accept } }).then((r) => r.status);
    expect(await head('build-1', IT)).toBe(404);
    expect(await head('build-2', IT)).toBe(200);
    expect(await head(shared.digest)).toBe(200);
    expect(await head(onlyNew.digest)).toBe(200);
    expect(await head(onlyOld.digest)).toBe(404);
    expect((await fetch(`${reg.url}/v2/multi/app/blobs/${onlyOld.layer}`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${reg.url}/v2/multi/app/blobs/${shared.layer}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('retention by pull time', () => {
  it('keeps what was pulled within the window (pulls recorded in memory, flushed before GC)', async () => {
    const tags: Record<string, string> = {};
    for (const tag of ['old-a', 'old-b']) {
      const img = await image('pull/app', [randomBlob(200)], tag);
      expect((await putManifest('pull/app', tag, img.bytes)).status).toBe(201);
      tags[tag] = img.digest;
    }
    expect((await setPolicy('pull', { retention: [{ repositories: 'pull/**', tags: 'old-*', keepPulledWithinDays: 7 }] })).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/pull/app/manifests/old-a`, { headers: { Accept: MT } })).status).toBe(200);
    const preview = await gc(true);
    const tagItems = preview.items.filter((i) => i.kind === 'tag' && i.tag?.startsWith('old-'));
    expect(tagItems.map((i) => `${i.tag}:${i.action}`)).toEqual(['old-b:delete']);
    await gc(false);
    expect((await fetch(`${reg.url}/v2/pull/app/manifests/old-a`, { method: 'HEAD', headers: { Accept: MT } })).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/pull/app/manifests/old-b`, { method: 'HEAD', headers: { Accept: MT } })).status).toBe(404);
  });
});

describe('permissions', () => {
  let treg: TestRegistry;
  const creds: Record<string, string> = {};
  beforeAll(async () => {
    treg = await startTestRegistry({ auth: 'token', gcIntervalSeconds: 0 });
    await withIdentities(treg.dataDir, async (_ids, s) => {
      await s.user('root', true);
      await s.user('alice');
      creds.root = basic('root', PASSWORD);
      creds.alice = basic('alice', PASSWORD);
    });
  });
  afterAll(async () => treg?.stop());

  it('gc needs registry.admin; policies and usage need namespace.manage', async () => {
    const call = (path: string, method: string, who: string, body?: unknown) =>
      fetch(`${treg.url}${path}`, { method, headers: { ...json, Authorization: creds[who]! }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    await expectError(await call('/api/v1/gc', 'POST', 'alice', { dryRun: true }), 403, 'DENIED');
    expect((await call('/api/v1/gc', 'POST', 'root', { dryRun: true })).status).toBe(200);
    expect((await call('/api/v1/namespaces/alice/policies', 'PUT', 'alice', { quotaBytes: 10 })).status).toBe(200);
    await expectError(await call('/api/v1/namespaces/root/policies', 'PUT', 'alice', { quotaBytes: 10 }), 403, 'DENIED');
    expect((await call('/api/v1/namespaces/alice/usage', 'GET', 'alice')).status).toBe(200);
    await expectError(await call('/api/v1/namespaces/root/usage', 'GET', 'alice'), 403, 'DENIED');
    expect((await fetch(`${treg.url}/api/v1/gc`, { method: 'POST', body: '{}', headers: json })).status).toBe(401);
  });
});
