/**
 * Registry families over real HTTP (auth off): built-in entries, each family's lifecycle, the
 * OCI form agreeing with the REST view, bad input, concurrent version bumps, and the fail-closed
 * audit-action check. Governed namespaces: families-governed.test.ts; permissions:
 * families-auth.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildArtifact } from '../../src/families/artifact.js';
import { AUDIT_ACTIONS } from '../../src/families/builtins.js';
import { decodeCbor } from '../../src/families/cbor.js';
import { expectError, pushBlob, pushImage, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

interface EntryBody {
  family: string;
  id: string;
  version: number;
  status: string;
  digest: string;
  entry: Record<string, unknown>;
}

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  return fetch(`${reg.url}${path}`, init);
}

async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

async function events(): Promise<{ action: string; actor: string; tag: string | null; reason: string | null; after: Record<string, unknown> | null }[]> {
  return (await json<{ events: never[] }>(await api('GET', '/api/v1/events?limit=1000'), 200)).events;
}

async function pullEntryLayer(family: string, ref: string): Promise<{ digest: string; manifest: Record<string, unknown>; decoded: unknown }> {
  const res = await fetch(`${reg.url}/v2/_registry/${family}/manifests/${ref}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const manifest = JSON.parse(text) as { layers: { digest: string; mediaType: string }[] };
  const layer = await fetch(`${reg.url}/v2/_registry/${family}/blobs/${manifest.layers[0]!.digest}`);
  const bytes = Buffer.from(await layer.arrayBuffer());
  expect(sha256(bytes)).toBe(manifest.layers[0]!.digest);
  return { digest: res.headers.get('docker-content-digest')!, manifest: manifest as unknown as Record<string, unknown>, decoded: decodeCbor(bytes) };
}

describe('built-in entries', () => {
  it('seeds artifact types, evidence types and one audit action per action the registry writes', async () => {
    const { families } = await json<{ families: { family: string; entries: number }[] }>(await api('GET', '/api/v1/families'), 200);
    expect(families.map((f) => f.family)).toEqual(['product', 'scope', 'usage-unit', 'audit-action', 'evidence-type', 'artifact-type', 'sdk-contract']);
    expect(families.find((f) => f.family === 'artifact-type')!.entries).toBeGreaterThanOrEqual(17);
    const actions = await json<{ entries: EntryBody[] }>(await api('GET', '/api/v1/families/audit-action/entries'), 200);
    expect(actions.entries.map((e) => e.id).sort()).toEqual(Object.keys(AUDIT_ACTIONS).sort());
    const bundle = await json<EntryBody>(await api('GET', '/api/v1/families/artifact-type/entries/model-bundle'), 200);
    expect(bundle).toMatchObject({ family: 'artifact-type', id: 'model-bundle', version: 1, status: 'active', entry: { owner: 'artifact-store', signatureRequired: false, promotable: true } });
    expect(bundle.entry.artifactTypes).toContain('application/vnd.artifact-store.model-bundle.v1');
    const evidence = await json<{ entries: EntryBody[] }>(await api('GET', '/api/v1/families/evidence-type/entries'), 200);
    expect(evidence.entries.find((e) => e.id === 'scan-report')!.entry.retentionDays).toBe(365);
    const seeded = (await events()).filter((e) => e.action === 'family.entry.create');
    expect(seeded.every((e) => e.actor === 'system')).toBe(true);
  });

  it('each built-in is a pullable OCI artifact whose CBOR layer decodes to the REST entry', async () => {
    const rest = await json<EntryBody>(await api('GET', '/api/v1/families/artifact-type/entries/model-bundle'), 200);
    const oci = await pullEntryLayer('artifact-type', 'model-bundle');
    expect(oci.digest).toBe(rest.digest);
    expect(oci.decoded).toEqual(rest.entry);
    expect(oci.manifest).toMatchObject({
      artifactType: 'application/vnd.artifact-store.registry.artifact-type.v1',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 },
      layers: [{ mediaType: 'application/vnd.artifact-store.registry.entry.v1+cbor' }],
    });
  });

  it('a restart writes nothing again and keeps operator changes', async () => {
    await json(await api('PUT', '/api/v1/families/evidence-type/entries/sbom/status', { status: 'deprecated', reason: 'use scan-report' }), 200);
    const before = (await events()).length;
    reg = await reg.restart();
    await json(await api('GET', '/api/v1/families'), 200); // waits for the start-up check
    expect((await events()).length).toBe(before);
    expect((await json<EntryBody>(await api('GET', '/api/v1/families/evidence-type/entries/sbom'), 200)).status).toBe('deprecated');
  });
});

const FIELDS: Record<string, Record<string, unknown>> = {
  product: { description: 'Acme analytics' },
  scope: { description: 'Read reports' },
  'usage-unit': { description: 'GPU hours', unit: 'h' },
  'audit-action': { description: 'A report was exported' },
  'evidence-type': { description: 'Penetration test', retentionDays: 90 },
  'artifact-type': { description: 'Report template', artifactTypes: ['application/vnd.acme.report.v1+json'], signatureRequired: true, promotable: false },
  'sdk-contract': { description: 'Reports SDK', version: '1.2.0' },
};

describe('lifecycle of every family', () => {
  it.each(Object.keys(FIELDS))('%s: create, conflict, new version, old version readable, status changes as events', async (family) => {
    const id = `lc-${family}`;
    const entry = { id, owner: 'artifact-store', ...FIELDS[family] };
    const created = await json<EntryBody>(await api('POST', `/api/v1/families/${family}/entries`, entry), 201);
    expect(created).toMatchObject({ family, id, version: 1, status: 'active', entry });
    expect(created.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(created.digest).toBe(buildArtifact(family as never, 1, entry).manifest.digest);

    const dup = await api('POST', `/api/v1/families/${family}/entries`, entry);
    const dupBody = await json<{ errors: { code: string; message: string; retryable: boolean }[] }>(dup, 409);
    expect(dupBody.errors[0]).toMatchObject({ code: 'CONFLICT', message: `entry ${family}/${id} already exists (version 1); PUT a new version instead`, retryable: false });

    const v2entry = { ...entry, description: 'changed' };
    const v2 = await json<EntryBody>(await api('PUT', `/api/v1/families/${family}/entries/${id}`, v2entry), 200);
    expect(v2).toMatchObject({ version: 2, status: 'active', entry: v2entry });
    expect(v2.digest).not.toBe(created.digest);
    expect((await json<EntryBody>(await api('GET', `/api/v1/families/${family}/entries/${id}?version=1`), 200)).entry).toEqual(entry);
    expect((await json<EntryBody>(await api('GET', `/api/v1/families/${family}/entries/${id}`), 200)).version).toBe(2);
    await expectError(await api('GET', `/api/v1/families/${family}/entries/${id}?version=3`), 404, 'NOT_FOUND');

    // The tag follows the latest version; the first stays pullable by digest.
    expect((await pullEntryLayer(family, id)).digest).toBe(v2.digest);
    expect((await pullEntryLayer(family, created.digest)).decoded).toEqual(entry);

    for (const status of ['deprecated', 'disabled', 'active']) {
      const changed = await json<EntryBody>(await api('PUT', `/api/v1/families/${family}/entries/${id}/status`, { status, reason: `now ${status}` }), 200);
      expect(changed).toMatchObject({ id, version: 2, status });
    }
    const statusEvents = (await events()).filter((e) => e.action === 'family.entry.status' && e.tag === id);
    expect(statusEvents.map((e) => [e.after?.status, e.reason])).toEqual([
      ['deprecated', 'now deprecated'],
      ['disabled', 'now disabled'],
      ['active', 'now active'],
    ]);
    const list = await json<{ entries: EntryBody[] }>(await api('GET', `/api/v1/families/${family}/entries`), 200);
    expect(list.entries.find((e) => e.id === id)).toMatchObject({ version: 2, status: 'active' });
  });

  it('differently ordered JSON gives an identical layer, and the manifest digest a client can compute', async () => {
    const a = { id: 'order-test', owner: 'artifact-store', description: 'x', artifactTypes: ['application/vnd.order.v1'], promotable: true, signatureRequired: false, annotationsSchema: { type: 'object', required: ['b', 'a'] } };
    const b = { annotationsSchema: { required: ['b', 'a'], type: 'object' }, signatureRequired: false, promotable: true, artifactTypes: ['application/vnd.order.v1'], description: 'x', owner: 'artifact-store', id: 'order-test' };
    const v1 = await json<EntryBody>(await api('POST', '/api/v1/families/artifact-type/entries', a), 201);
    const v2 = await json<EntryBody>(await api('PUT', '/api/v1/families/artifact-type/entries/order-test', b), 200);
    const l1 = (await pullEntryLayer('artifact-type', v1.digest)).manifest as { layers: { digest: string }[] };
    const l2 = (await pullEntryLayer('artifact-type', v2.digest)).manifest as { layers: { digest: string }[] };
    expect(l2.layers[0]!.digest).toBe(l1.layers[0]!.digest);
    expect(v2.digest).toBe(buildArtifact('artifact-type', 2, a).manifest.digest);
  });
});

describe('bad input', () => {
  const post = (family: string, body: unknown) => api('POST', `/api/v1/families/${family}/entries`, body);

  it('refuses malformed ids (upper case, slash, 129 characters, empty) and accepts 128', async () => {
    for (const id of ['Upper', 'a/b', 'x'.repeat(129), '', '.dot', 'sp ace']) {
      const body = await json<{ errors: { code: string; detail: { path: string }[] }[] }>(await post('scope', { id, owner: 'artifact-store' }), 400);
      expect(body.errors[0]!.code).toBe('INVALID_PAYLOAD');
      expect(body.errors[0]!.detail.map((d) => d.path)).toContain('$.id');
    }
    await json(await post('scope', { id: 'x'.repeat(128), owner: 'artifact-store' }), 201);
    await expectError(await api('GET', '/api/v1/families/scope/entries/NOPE'), 400, 'INVALID_PAYLOAD');
  });

  it('unknown families are 404 with the list of families', async () => {
    const body = await json<{ errors: unknown[] }>(await post('colours', { id: 'red', owner: 'artifact-store' }), 404);
    expect(body.errors[0]).toEqual({
      code: 'NOT_FOUND',
      message: 'unknown family "colours"; families are product, scope, usage-unit, audit-action, evidence-type, artifact-type, sdk-contract',
      detail: { family: 'colours' },
      retryable: false,
    });
    await expectError(await api('GET', '/api/v1/families/colours/entries'), 404, 'NOT_FOUND');
  });

  it('family fields, owners and schemas are checked at creation', async () => {
    await expectError(await post('evidence-type', { id: 'no-retention', owner: 'artifact-store' }), 400, 'INVALID_PAYLOAD');
    await expectError(await post('artifact-type', { id: 'no-types', owner: 'artifact-store', artifactTypes: [] }), 400, 'INVALID_PAYLOAD');
    await expectError(await post('audit-action', { id: 'no.description', owner: 'artifact-store' }), 400, 'INVALID_PAYLOAD');
    const owner = await json<{ errors: { message: string }[] }>(await post('scope', { id: 'orphan', owner: 'nobody' }), 400);
    expect(owner.errors[0]!.message).toBe('owner "nobody" is not a product entry');
    const remote = await json<{ errors: { message: string; detail: unknown }[] }>(
      await post('artifact-type', { id: 'remote-ref', owner: 'artifact-store', artifactTypes: ['application/vnd.x'], configSchema: { properties: { a: { $ref: 'https://example.com/s.json' } } } }),
      400,
    );
    expect(remote.errors[0]!.detail).toEqual([{ path: '$.configSchema.properties.a.$ref', message: 'non-local $ref is not allowed' }]);
    const invalid = await json<{ errors: { code: string; message: string }[] }>(await post('artifact-type', { id: 'bad-schema', owner: 'artifact-store', artifactTypes: ['application/vnd.x'], annotationsSchema: { type: 'banana' } }), 400);
    expect(invalid.errors[0]!.message).toMatch(/^annotationsSchema is not a valid JSON Schema 2020-12: /);
    await json(await post('artifact-type', { id: 'local-ref', owner: 'artifact-store', artifactTypes: ['application/vnd.x'], configSchema: { $defs: { s: { type: 'string' } }, properties: { a: { $ref: '#/$defs/s' } } } }), 201);
    for (const id of ['remote-ref', 'bad-schema', 'orphan']) expect((await api('GET', `/api/v1/families/artifact-type/entries/${id}`)).status).toBe(404);
  });

  it('huge entries are 413, nothing written', async () => {
    const big = { id: 'huge', owner: 'artifact-store', description: 'x'.repeat(4000), blob: 'y'.repeat(100_000) };
    await expectError(await post('product', big), 413, 'INVALID_PAYLOAD');
    await expectError(await post('product', { id: 'huger', owner: 'artifact-store', blob: 'y'.repeat(300_000) }), 413, 'INVALID_PAYLOAD');
    expect((await api('GET', '/api/v1/families/product/entries/huge')).status).toBe(404);
    expect((await fetch(`${reg.url}/v2/_registry/product/manifests/huge`)).status).toBe(404);
  });

  it('versions and statuses of unknown entries are 404; a body id must match the path', async () => {
    await expectError(await api('PUT', '/api/v1/families/scope/entries/ghost', { id: 'ghost', owner: 'artifact-store' }), 404, 'NOT_FOUND');
    const status = await json<{ errors: unknown[] }>(await api('PUT', '/api/v1/families/scope/entries/ghost/status', { status: 'disabled', reason: 'x' }), 404);
    expect(status.errors[0]).toEqual({ code: 'NOT_FOUND', message: 'no entry scope/ghost', detail: { family: 'scope', id: 'ghost' }, retryable: false });
    await json(await post('scope', { id: 'named', owner: 'artifact-store' }), 201);
    await expectError(await api('PUT', '/api/v1/families/scope/entries/named', { id: 'other', owner: 'artifact-store' }), 400, 'INVALID_PAYLOAD');
    await expectError(await api('PUT', '/api/v1/families/scope/entries/named/status', { status: 'gone', reason: 'x' }), 400, 'INVALID_PAYLOAD');
    await expectError(await api('POST', '/api/v1/families/scope/entries', '{not json'), 400, 'INVALID_PAYLOAD');
  });

  it('concurrent creation of one id: exactly one 201, the others 409; one tag, one version', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => post('usage-unit', { id: 'first-wins', owner: 'artifact-store', description: `creator ${i}` })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    const winner = (await results.find((r) => r.status === 201)!.json()) as EntryBody;
    const stored = await json<EntryBody>(await api('GET', '/api/v1/families/usage-unit/entries/first-wins'), 200);
    expect(stored).toMatchObject({ version: 1, digest: winner.digest, entry: winner.entry });
    expect((await fetch(`${reg.url}/v2/_registry/usage-unit/manifests/first-wins`)).headers.get('docker-content-digest')).toBe(winner.digest);
    expect((await events()).filter((e) => e.action === 'family.entry.create' && e.tag === 'first-wins').length).toBe(1);
  });

  it('lists page by id with n and last, and filter by status', async () => {
    for (const id of ['page-a', 'page-b', 'page-c']) await json(await post('sdk-contract', { id, owner: 'artifact-store' }), 201);
    await json(await api('PUT', '/api/v1/families/sdk-contract/entries/page-b/status', { status: 'deprecated', reason: 'old' }), 200);
    const first = await json<{ entries: EntryBody[]; next?: string }>(await api('GET', '/api/v1/families/sdk-contract/entries?n=2'), 200);
    expect(first.entries.map((e) => e.id)).toEqual(['lc-sdk-contract', 'page-a']);
    expect(first.next).toBe('page-a');
    const second = await json<{ entries: EntryBody[] }>(await api('GET', '/api/v1/families/sdk-contract/entries?n=2&last=page-a'), 200);
    expect(second.entries.map((e) => e.id)).toEqual(['page-b', 'page-c']);
    const deprecated = await json<{ entries: EntryBody[] }>(await api('GET', '/api/v1/families/sdk-contract/entries?status=deprecated'), 200);
    expect(deprecated.entries.map((e) => e.id)).toEqual(['page-b']);
    await expectError(await api('GET', '/api/v1/families/sdk-contract/entries?n=0'), 400, 'INVALID_PAYLOAD');
  });

  it('concurrent version bumps: exactly one winner per version number, the others 409, no 500', async () => {
    await json(await post('usage-unit', { id: 'racy', owner: 'artifact-store' }), 201);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => api('PUT', '/api/v1/families/usage-unit/entries/racy', { id: 'racy', owner: 'artifact-store', description: `writer ${i}` })));
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 200 || s === 409), String(statuses)).toBe(true);
    const won = await Promise.all(results.filter((r) => r.status === 200).map((r) => r.json() as Promise<EntryBody>));
    const versions = won.map((w) => w.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: won.length }, (_, i) => i + 2)); // each number once, no gaps
    for (const r of results.filter((x) => x.status === 409)) expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('CONFLICT');
    const latest = await json<EntryBody>(await api('GET', '/api/v1/families/usage-unit/entries/racy'), 200);
    expect(latest.version).toBe(won.length + 1);
    expect((await events()).filter((e) => e.action === 'family.entry.version' && e.tag === 'racy').length).toBe(won.length);
  });
});

describe('online GC', () => {
  it('an entry whose layer bytes GC deleted earlier is written and linked again (pinned like an upload)', async () => {
    const gcReg = await startTestRegistry({ gcGraceSeconds: 0 });
    try {
      const entry = { id: 'after-gc', owner: 'artifact-store', description: 'bytes collected before' };
      const layer = buildArtifact('scope', 1, entry).layer;
      const orphan = await pushBlob(gcReg.url, 'gcx/app', layer);
      await new Promise((r) => setTimeout(r, 5));
      const run = await fetch(`${gcReg.url}/api/v1/gc`, { method: 'POST', body: JSON.stringify({ dryRun: false }), headers: { 'Content-Type': 'application/json' } });
      expect(run.status, await run.clone().text()).toBe(200);
      expect((await fetch(`${gcReg.url}/v2/gcx/app/blobs/${orphan}`, { method: 'HEAD' })).status).toBe(404);
      const created = await fetch(`${gcReg.url}/api/v1/families/scope/entries`, { method: 'POST', body: JSON.stringify(entry), headers: { 'Content-Type': 'application/json' } });
      expect(created.status, await created.clone().text()).toBe(201);
      const layerRes = await fetch(`${gcReg.url}/v2/_registry/scope/blobs/${orphan}`);
      expect(layerRes.status).toBe(200);
      expect(Buffer.from(await layerRes.arrayBuffer()).equals(layer)).toBe(true);
    } finally {
      await gcReg.stop();
    }
  });
});

describe('_registry is written only through the API', () => {
  it('entry tags cannot be overwritten or deleted through /v2/, entry artifacts cannot be pushed', async () => {
    const res = await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/model-bundle`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const put = await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/other-tag`, { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    await expectError(put, 403, 'DENIED');
    await expectError(await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/model-bundle`, { method: 'DELETE' }), 403, 'DENIED');
    await expectError(await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/${sha256(bytes)}`, { method: 'DELETE' }), 403, 'DENIED');
    // A signature-like image under a non-entry tag is fine (auth off: everyone is an administrator).
    await pushImage(reg.url, '_registry/artifact-type', 'sha256-abc.sig');
  });

  it('an entry can be signed: a referrer whose subject is the entry manifest is accepted and listed', async () => {
    const entry = await json<EntryBody>(await api('GET', '/api/v1/families/artifact-type/entries/model-bundle'), 200);
    const manifest = await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/${entry.digest}`);
    const size = Number(manifest.headers.get('content-length'));
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 }],
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: entry.digest, size },
      }),
    );
    const put = await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/${sha256(sig)}`, { method: 'PUT', body: sig, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect(put.status, await put.text()).toBe(201);
    const referrers = await json<{ manifests: { digest: string }[] }>(await fetch(`${reg.url}/v2/registry/artifact-type/referrers/${entry.digest}`), 200);
    expect(referrers.manifests.map((m) => m.digest)).toContain(sha256(sig));
  });
});

describe('audit actions fail closed', () => {
  it('a disabled action refuses the mutation that records it, nothing written; re-activated it works', async () => {
    const img = await pushImage(reg.url, 'audit/app', 'v1');
    await json(await api('PUT', '/api/v1/families/audit-action/entries/oci.tag.delete/status', { status: 'disabled', reason: 'freeze tag deletes' }), 200);
    const refused = await json<{ errors: unknown[] }>(await fetch(`${reg.url}/v2/audit/app/manifests/v1`, { method: 'DELETE' }), 403);
    expect(refused.errors[0]).toEqual({ code: 'DENIED', message: 'audit action "oci.tag.delete" is disabled', detail: { action: 'oci.tag.delete' } });
    expect((await fetch(`${reg.url}/v2/audit/app/manifests/v1`)).headers.get('docker-content-digest')).toBe(img.digest);
    await json(await api('PUT', '/api/v1/families/audit-action/entries/oci.tag.delete/status', { status: 'active', reason: 'thaw' }), 200);
    expect((await fetch(`${reg.url}/v2/audit/app/manifests/v1`, { method: 'DELETE' })).status).toBe(202);
  });

  it('an action with no entry is refused where events are recorded', async () => {
    const { appendEvent } = await import('../../src/meta/events.js');
    const { openDatabase } = await import('../../src/meta/db.js');
    const db = openDatabase(`${reg.dataDir}/metadata.db`);
    try {
      const before = (await events()).length;
      expect(() => db.transaction((tx) => appendEvent(tx, { actor: 'test', action: 'made.up.action' }))).toThrow('audit action "made.up.action" is not registered: add an audit-action entry before recording it');
      expect(() => db.transaction((tx) => appendEvent(tx, { actor: 'test', action: 'constructor' }))).toThrow('audit action "constructor" is not registered');
      expect((await events()).length).toBe(before);
      await json(await api('POST', '/api/v1/families/audit-action/entries', { id: 'made.up.action', owner: 'artifact-store', description: 'now known' }), 201);
      db.transaction((tx) => appendEvent(tx, { actor: 'test', action: 'made.up.action' }));
      expect((await events()).some((e) => e.action === 'made.up.action')).toBe(true);
    } finally {
      db.$client.close();
    }
  });

  it('a second registry in the same process, started and stopped, leaves this one\'s checks working', async () => {
    const other = await startTestRegistry();
    await json(await fetch(`${other.url}/api/v1/families/audit-action/entries/oci.tag.set/status`, { method: 'PUT', body: JSON.stringify({ status: 'disabled', reason: 'other registry only' }) }), 200);
    await other.stop();
    // The other registry's disabled action does not leak here, and its closed database is never read.
    await pushImage(reg.url, 'audit/after-other', 'v1');
  });

  it('the catalogue\'s own actions cannot be disabled', async () => {
    const body = await json<{ errors: { code: string; message: string }[] }>(await api('PUT', '/api/v1/families/audit-action/entries/family.entry.status/status', { status: 'disabled', reason: 'x' }), 400);
    expect(body.errors[0]!.message).toBe('audit action family.entry.status cannot be disabled: the catalogue needs it to record status changes');
  });
});
