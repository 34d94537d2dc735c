/**
 * /api/v1/openapi.json describes the whole JSON API: every route the app registers under
 * /api/v1 (enumerated from hono's route table) is in the document and nothing else is; every
 * operation is called here with a success (and refusals), and each answer — and each request
 * body sent — validates against the document: a field renamed in a handler, or a schema that
 * drifts, fails here.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { createAuth } from '../../src/auth/index.js';
import { loadConfig } from '../../src/config/index.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { UploadEngine } from '../../src/data/uploads.js';
import { createLogger } from '../../src/log.js';
import { openDatabase } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { bundleConfig, passReceipt, pushBundle, pushReceipt } from '../helpers/bundles.js';
import { pushImage } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { removeDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { pushEvidence } from '../unit/evidence-push.js';

type Described = { content?: Record<string, { schema: object }> };
type Operation = { requestBody?: { content: Record<string, { schema: object }> }; responses: Record<string, Described> };
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };
let reg: TestRegistry;
let doc: Doc;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const exercised = new Set<string>();
const root = basic('root', PASSWORD);
const olive = basic('olive', PASSWORD);

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token', webhookAllowPrivateTargets: true });
  await withIdentities(reg.dataDir, async (_ids, s) => {
    await s.user('root', true);
    await s.user('olive');
  });
  const res = await fetch(`${reg.url}/api/v1/openapi.json`); // public: no credentials
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
});
afterAll(async () => reg.stop());

/** Calls the API, validates the request body and the answer against the document's operation `template`. */
async function call(method: string, template: string, path: string, auth: string | undefined, body?: unknown): Promise<{ status: number; json: any }> {
  const op = doc.paths[template]?.[method.toLowerCase()];
  expect(op, `${method} ${template} is described`).toBeDefined();
  const res = await fetch(`${reg.url}${path}`, { method, headers: { ...(auth ? { Authorization: auth } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) }, body: body !== undefined ? JSON.stringify(body) : undefined });
  // A body the server accepted must be one the document accepts (refused ones may be anything).
  if (body !== undefined && res.status < 400) {
    const requestSchema = op!.requestBody?.content['application/json']?.schema;
    expect(requestSchema, `${method} ${template} describes its request body`).toBeDefined();
    const validate = ajv.compile(requestSchema!);
    expect(validate(body), `request of ${method} ${path}: ${JSON.stringify(validate.errors)}`).toBe(true);
  }
  const described = op!.responses[String(res.status)] ?? (res.status >= 400 && res.status < 500 ? op!.responses['4XX'] : undefined);
  expect(described, `${method} ${template} → ${res.status} is described`).toBeDefined();
  const text = await res.text();
  const schema = described!.content?.['application/json']?.schema;
  if (!schema) {
    expect(text).toBe('');
    if (res.status < 400) exercised.add(`${method.toLowerCase()} ${template}`);
    return { status: res.status, json: null };
  }
  const json = JSON.parse(text) as unknown;
  const validate = ajv.compile(schema);
  expect(validate(json), `${method} ${path} → ${res.status}: ${JSON.stringify(validate.errors)} for ${text.slice(0, 2000)}`).toBe(true);
  if (res.status < 400) exercised.add(`${method.toLowerCase()} ${template}`);
  return { status: res.status, json };
}

it('is an OpenAPI 3.1 document whose request schemas come from the route validators', () => {
  expect(doc.openapi).toBe('3.1.0');
  const post = doc.paths['/api/v1/users']!.post as unknown as { requestBody: { content: { 'application/json': { schema: { required: string[]; properties: Record<string, { minLength?: number }> } } } } };
  const schema = post.requestBody.content['application/json'].schema;
  expect(schema.required).toEqual(expect.arrayContaining(['name', 'password']));
  expect(schema.properties.password!.minLength).toBe(12); // the same rule the handler enforces
  const hold = doc.paths['/api/v1/holds']!.post!.requestBody!.content['application/json']!.schema as { required: string[]; properties: Record<string, { maxLength?: number }> };
  expect(hold.required).toEqual(expect.arrayContaining(['repository', 'reason']));
  expect(hold.properties.reason!.maxLength).toBe(2000); // evidence/routes.ts's own schema
});

it('describes exactly the routes the app registers under /api/v1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'as-routes-'));
  const config = loadConfig({}, { dataDir: dir, auth: 'token', logLevel: 'silent', gcIntervalSeconds: 0 });
  const db = openDatabase(join(dir, 'metadata.db'));
  const driver = new FsDriver({ root: dir, fsync: false });
  const closers: (() => unknown)[] = [];
  try {
    const app = createApp({ config, db, store: new RegistryStore(db), driver, uploads: new UploadEngine(driver), log: createLogger('silent'), auth: await createAuth(config, db), closers });
    const registered = new Set(app.routes.filter((r) => r.path.startsWith('/api/v1/') && r.method !== 'ALL').map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`));
    const described = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)));
    expect(registered.size).toBeGreaterThan(50);
    expect([...registered].filter((r) => !described.has(r)), 'registered but not described').toEqual([]);
    expect([...described].filter((d) => !registered.has(d)), 'described but not registered').toEqual([]);
  } finally {
    for (const close of closers) await close();
    db.$client.close();
    removeDir(dir);
  }
});

it('every identity management operation answers as described (successes and refusals)', async () => {
  expect((await call('GET', '/api/v1/whoami', '/api/v1/whoami', root)).status).toBe(200);
  expect((await call('POST', '/api/v1/users', '/api/v1/users', root, { name: 'mary', password: PASSWORD })).status).toBe(201);
  expect((await call('POST', '/api/v1/users', '/api/v1/users', root, { name: 'x', password: 'short' })).status).toBe(400);
  expect((await call('GET', '/api/v1/users', '/api/v1/users', root)).status).toBe(200);
  expect((await call('GET', '/api/v1/users', '/api/v1/users', olive)).status).toBe(403);
  expect((await call('GET', '/api/v1/users', '/api/v1/users', undefined)).status).toBe(401);
  expect((await call('PUT', '/api/v1/users/{user}/password', '/api/v1/users/mary/password', root, { password: 'another long passphrase' })).status).toBe(204);
  expect((await call('PUT', '/api/v1/users/{user}/disabled', '/api/v1/users/mary/disabled', root, { disabled: true })).status).toBe(200);
  expect((await call('PUT', '/api/v1/users/{user}/disabled', '/api/v1/users/nobody/disabled', root, { disabled: true })).status).toBe(404);
  expect((await call('PUT', '/api/v1/users/{user}/disabled', '/api/v1/users/mary/disabled', root, { disabled: false })).status).toBe(200);
  expect((await call('POST', '/api/v1/orgs', '/api/v1/orgs', olive, { name: 'acme' })).status).toBe(201);
  expect((await call('GET', '/api/v1/orgs', '/api/v1/orgs', olive)).status).toBe(200);
  expect((await call('PUT', '/api/v1/orgs/{org}/members/{user}', '/api/v1/orgs/acme/members/mary', olive, { role: 'reader' })).status).toBe(200);
  expect((await call('GET', '/api/v1/orgs/{org}/members', '/api/v1/orgs/acme/members', olive)).status).toBe(200);
  expect((await call('DELETE', '/api/v1/orgs/{org}/members/{user}', '/api/v1/orgs/acme/members/mary', olive)).status).toBe(200);
  const key = await call('POST', '/api/v1/keys', '/api/v1/keys', olive, { name: 'ci', scopes: ['publish'], expiresInSeconds: 3600 });
  expect(key.status).toBe(201);
  expect((await call('GET', '/api/v1/keys', '/api/v1/keys', olive)).status).toBe(200);
  expect((await call('DELETE', '/api/v1/keys/{id}', `/api/v1/keys/${(key.json as { id: string }).id}`, olive)).status).toBe(204);
  expect((await call('PUT', '/api/v1/repositories/visibility', '/api/v1/repositories/visibility', olive, { repository: 'acme/app', visibility: 'public' })).status).toBe(200);
  expect((await call('POST', '/api/v1/orgs', '/api/v1/orgs', olive, { name: 'gone' })).status).toBe(201);
  expect((await call('DELETE', '/api/v1/orgs/{org}', '/api/v1/orgs/gone', olive)).status).toBe(403);
  expect((await call('DELETE', '/api/v1/orgs/{org}', '/api/v1/orgs/gone', root)).status).toBe(200);
  expect((await call('DELETE', '/api/v1/users/{user}', '/api/v1/users/root', root)).status).toBe(409);
  expect((await call('DELETE', '/api/v1/users/{user}', '/api/v1/users/mary', root)).status).toBe(200);
  expect((await call('GET', '/api/v1/openapi.json', '/api/v1/openapi.json', undefined)).status).toBe(200);
});

it('every governance operation answers as described (families, trust, evidence, holds, bundles, operations, webhooks, events, search)', async () => {
  const h = { Authorization: olive };
  const img = await pushImage(reg.url, 'acme/app', 'v1', {}, h);
  const ok = async (method: string, template: string, path: string, auth: string | undefined, body?: unknown): Promise<any> => {
    const r = await call(method, template, path, auth, body);
    expect(r.status, `${method} ${path}: ${JSON.stringify(r.json)}`).toBeLessThan(300);
    return r.json;
  };
  // Families and namespace governance.
  await ok('GET', '/api/v1/families', '/api/v1/families', olive);
  await ok('GET', '/api/v1/families/{family}/entries', '/api/v1/families/audit-action/entries?n=3', olive);
  await ok('POST', '/api/v1/families/{family}/entries', '/api/v1/families/product/entries', root, { id: 'acme_app', owner: 'acme_app', description: 'the app' });
  await ok('PUT', '/api/v1/families/{family}/entries/{id}', '/api/v1/families/product/entries/acme_app', root, { id: 'acme_app', owner: 'acme_app', description: 'v2' });
  await ok('GET', '/api/v1/families/{family}/entries/{id}', '/api/v1/families/product/entries/acme_app?version=1', olive);
  await ok('PUT', '/api/v1/families/{family}/entries/{id}/status', '/api/v1/families/product/entries/acme_app/status', root, { status: 'deprecated', reason: 'renamed' });
  await ok('PUT', '/api/v1/families/{family}/delegation', '/api/v1/families/scope/delegation', root, { org: 'acme' });
  await ok('GET', '/api/v1/families/{family}/delegation', '/api/v1/families/scope/delegation', olive);
  expect((await call('POST', '/api/v1/families/{family}/entries', '/api/v1/families/product/entries', olive, { id: 'x', owner: 'x' })).status).toBe(403);
  await ok('PUT', '/api/v1/namespaces/{ns}/governance', '/api/v1/namespaces/acme/governance', olive, { governed: false });
  await ok('GET', '/api/v1/namespaces/{ns}/governance', '/api/v1/namespaces/acme/governance', olive);
  // Trust.
  const publicKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await ok('PUT', '/api/v1/namespaces/{ns}/trust', '/api/v1/namespaces/acme/trust', olive, { mode: 'warn', keys: [{ id: 'release', publicKey }], identities: [] });
  await ok('GET', '/api/v1/namespaces/{ns}/trust', '/api/v1/namespaces/acme/trust', olive);
  await ok('DELETE', '/api/v1/namespaces/{ns}/trust/keys/{id}', '/api/v1/namespaces/acme/trust/keys/release?reason=rotated', olive);
  const verdict = await ok('GET', '/api/v1/trust', `/api/v1/trust?repository=acme/app&digest=${img.digest}`, olive);
  expect(verdict.decision).toBe('unsigned');
  // Evidence and holds.
  await pushEvidence(reg.url, 'acme/app', { digest: img.digest, size: img.bytes.length }, 'test-log', h);
  expect((await ok('GET', '/api/v1/evidence', `/api/v1/evidence?repository=acme/app&digest=${img.digest}`, olive)).evidence).toHaveLength(1);
  const hold = await ok('POST', '/api/v1/holds', '/api/v1/holds', olive, { repository: 'acme/app', reason: 'matter 1' });
  const hold2 = await ok('POST', '/api/v1/holds', '/api/v1/holds', olive, { repository: 'acme/app', reason: 'matter 2' });
  // Paged with the described `limit` and `cursor`; `next` is null on the last page.
  const page1 = await ok('GET', '/api/v1/holds', '/api/v1/holds?repository=acme/app&limit=1', olive);
  expect([page1.holds.map((x: { id: string }) => x.id), typeof page1.next]).toEqual([[hold.id], 'string']);
  const page2 = await ok('GET', '/api/v1/holds', `/api/v1/holds?repository=acme/app&limit=1&cursor=${page1.next as string}`, olive);
  expect([page2.holds.map((x: { id: string }) => x.id), page2.next]).toEqual([[hold2.id], null]);
  expect((await call('GET', '/api/v1/holds', '/api/v1/holds?repository=acme/app&limit=0', olive)).status).toBe(400);
  expect((await call('GET', '/api/v1/holds', '/api/v1/holds?repository=acme/app&cursor=x', olive)).status).toBe(400);
  await ok('DELETE', '/api/v1/holds/{id}', `/api/v1/holds/${hold.id as string}`, olive, { reason: 'settled' });
  await ok('DELETE', '/api/v1/holds/{id}', `/api/v1/holds/${hold2.id as string}`, olive, { reason: 'settled' });
  // Administrators list every repository's holds (no `repository` in the answer), released ones on request.
  const all = await ok('GET', '/api/v1/holds', '/api/v1/holds?includeReleased=true', root);
  expect([all.repository, all.holds.length]).toEqual([undefined, 2]);
  expect((await call('POST', '/api/v1/holds', '/api/v1/holds', undefined, { repository: 'acme/app', reason: 'x' })).status).toBe(401);
  // Bundles: two versions, activate both, roll back.
  for (const version of ['1.0.0', '1.1.0']) {
    const b = await pushBundle(reg.url, 'acme/models', bundleConfig('scorer', version), { headers: h });
    await pushReceipt(reg.url, 'acme/models', b, passReceipt(), h);
    await ok('POST', '/api/v1/bundles', '/api/v1/bundles', olive, { repository: 'acme/models', digest: b.digest });
    for (const to of ['CANDIDATE', 'APPROVED']) await ok('POST', '/api/v1/bundles/{bundle_id}/{bundle_version}/transitions', `/api/v1/bundles/scorer/${version}/transitions`, olive, { to, reason: 'reviewed' });
  }
  await ok('GET', '/api/v1/bundles/{bundle_id}/{bundle_version}', '/api/v1/bundles/scorer/1.0.0', olive);
  await ok('PUT', '/api/v1/platform/feature-groups', '/api/v1/platform/feature-groups', root, { groups: { features: '1.4.0' }, reason: 'platform 2026.12' });
  const scope = { environment: 'prod', model_family: 'fraud' };
  for (const v of ['1.0.0', '1.1.0']) await ok('POST', '/api/v1/activations', '/api/v1/activations', olive, { scope, bundle_id: 'scorer', bundle_version: v, reason: 'rollout' });
  expect((await ok('POST', '/api/v1/activations/rollback', '/api/v1/activations/rollback', olive, { scope, reason: 'regression' })).bundle_version).toBe('1.0.0');
  expect((await ok('GET', '/api/v1/resolve', '/api/v1/resolve?environment=prod&model_family=fraud', olive)).bundle_version).toBe('1.0.0');
  await ok('GET', '/api/v1/activations', '/api/v1/activations?environment=prod&model_family=fraud', olive);
  expect((await call('POST', '/api/v1/bundles', '/api/v1/bundles', olive, { repository: 'acme/app', digest: img.digest })).status).toBe(400);
  // Operations: GC, policies, usage, webhooks, events, checkpoints, search, stars.
  await ok('POST', '/api/v1/gc', '/api/v1/gc', root, { dryRun: true });
  await ok('PUT', '/api/v1/namespaces/{ns}/policies', '/api/v1/namespaces/acme/policies', olive, { immutableTags: ['v*'], retention: [{ repositories: 'acme/*', keepMostRecent: 5 }], quotaBytes: 10_000_000 });
  await ok('GET', '/api/v1/namespaces/{ns}/policies', '/api/v1/namespaces/acme/policies', olive);
  await ok('GET', '/api/v1/namespaces/{ns}/usage', '/api/v1/namespaces/acme/usage', olive);
  const hook = await ok('POST', '/api/v1/webhooks', '/api/v1/webhooks', olive, { url: 'http://127.0.0.1:9/hook', events: ['oci.*'], namespaces: ['acme'], secret: 'a secret of some length' });
  await ok('GET', '/api/v1/webhooks', '/api/v1/webhooks', olive);
  await ok('GET', '/api/v1/webhooks/{id}', `/api/v1/webhooks/${hook.id as string}`, olive);
  await ok('DELETE', '/api/v1/webhooks/{id}', `/api/v1/webhooks/${hook.id as string}`, olive);
  const page = await ok('GET', '/api/v1/events', '/api/v1/events?limit=5', root);
  expect(page.events).toHaveLength(5);
  expect((await ok('GET', '/api/v1/events', `/api/v1/events?after=${page.next as number}&limit=1`, root)).events[0].seq).toBe((page.next as number) + 1);
  expect((await call('GET', '/api/v1/events', '/api/v1/events', olive)).status).toBe(403);
  await ok('POST', '/api/v1/events/checkpoints', '/api/v1/events/checkpoints', root);
  await ok('GET', '/api/v1/events/checkpoints', '/api/v1/events/checkpoints', root);
  const found = await ok('GET', '/api/v1/search', '/api/v1/search?q=app', olive);
  expect([found.results.length > 0, found.facetsExact, found.totalExact]).toEqual([true, true, true]);
  await ok('PUT', '/api/v1/stars', '/api/v1/stars?repository=acme/app', olive);
  await ok('DELETE', '/api/v1/stars', '/api/v1/stars?repository=acme/app', olive);
  await ok('GET', '/api/v1/usage', '/api/v1/usage?repository=acme/app', olive);
  // Pulled once by tag: the tag's count is in the answer (`tag=`), and so is the digest's (`digest=`).
  expect((await fetch(`${reg.url}/v2/acme/app/manifests/v1`, { headers: { ...h, Accept: 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(200);
  const usage = await ok('GET', '/api/v1/usage', `/api/v1/usage?repository=acme/app&tag=v1&digest=${img.digest}`, olive);
  expect([usage.tagDownloads, typeof usage.digestDownloads]).toEqual([1, 'number']);
  expect((await call('GET', '/api/v1/usage', '/api/v1/usage?repository=acme/app&tag=-bad', olive)).status).toBe(400);
  // Optional fields are invisible to a loose schema's validation: the document must name them.
  const props = (template: string) => (doc.paths[template]!.get!.responses['200']!.content!['application/json']!.schema as { properties: Record<string, { type?: string }> }).properties;
  expect([props('/api/v1/usage').tagDownloads?.type, props('/api/v1/usage').digestDownloads?.type, props('/api/v1/search').facetsExact?.type]).toEqual(['integer', 'integer', 'boolean']);
  expect(props('/api/v1/holds').next).toBeDefined();
  // The changefeed is Server-Sent Events, described as such.
  const abort = new AbortController();
  const stream = await fetch(`${reg.url}/api/v1/events/stream?after=0`, { headers: { Authorization: root }, signal: abort.signal });
  expect(stream.status).toBe(200);
  expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
  expect(Object.keys(doc.paths['/api/v1/events/stream']!.get!.responses['200']!.content!)).toEqual(['text/event-stream']);
  const first = await stream.body!.getReader().read();
  expect(Buffer.from(first.value!).toString()).toMatch(/^data: \{"seq":1,/m);
  abort.abort();
  exercised.add('get /api/v1/events/stream');
});

it('every described operation was exercised with a success', () => {
  const described = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
  expect(described.filter((d) => !exercised.has(d))).toEqual([]);
});
