/**
 * Who may do what to bundles, with auth enabled (capability `bundle.transition` per target state,
 * pull for reads, registry.admin for platform feature groups). Every refusal: exact status and code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, errorOf, passReceipt, pushBundle, pushReceipt, type Pushed } from '../helpers/bundles.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let url: string;
const creds: Record<string, string> = {};
const REPO = 'acme/models';
let bundle: Pushed;
const scope = { environment: 'prod', model_family: 'fraud' };

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  url = reg.url;
  await withIdentities(reg.dataDir, async (ids, s) => {
    await s.user('root', true);
    const owner = await s.user('olive');
    await s.user('mary');
    await s.user('rita');
    s.org('acme', owner);
    s.member('acme', 'mary', 'maintainer');
    s.member('acme', 'rita', 'reader');
    for (const u of ['root', 'olive', 'mary', 'rita']) creds[u] = basic(u, PASSWORD);
    creds.publishKey = basic('olive', s.key(ids.principalByName('olive')!.id, ['publish'], ['acme/*']).token);
    creds.readKey = basic('olive', s.key(ids.principalByName('olive')!.id, ['read']).token);
  });
  const h = { Authorization: creds.mary! };
  bundle = await pushBundle(url, REPO, bundleConfig('secured', '1.0.0'), { headers: h });
  await pushReceipt(url, REPO, bundle, passReceipt(), h);
  expect((await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0' } }, creds.root)).status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

const transition = (to: string, who?: string) => api(url, 'POST', '/api/v1/bundles/secured/1.0.0/transitions', { to, reason: 'r' }, who && creds[who]);
const activation = (who?: string) => api(url, 'POST', '/api/v1/activations', { scope, bundle_id: 'secured', bundle_version: '1.0.0', reason: 'r' }, who && creds[who]);

describe('bundle permissions', () => {
  it('publish needs push: anonymous 401, a reader 403 DENIED, a publish key 201 with the submitter recorded', async () => {
    const body = { repository: REPO, digest: bundle.digest };
    const anon = await api(url, 'POST', '/api/v1/bundles', body);
    expect(anon.status).toBe(401);
    expect(errorOf(anon).code).toBe('UNAUTHORIZED');
    const reader = await api(url, 'POST', '/api/v1/bundles', body, creds.rita);
    expect(reader.status).toBe(403);
    expect(errorOf(reader)).toMatchObject({ code: 'DENIED', retryable: false });
    const key = await api(url, 'POST', '/api/v1/bundles', body, creds.publishKey);
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    expect(key.body.submitted_by).toMatch(/^olive\/key:/);
  });

  it('a maintainer proposes (CANDIDATE); a reader cannot approve; a publish key cannot approve; the owner approves', async () => {
    expect((await transition('CANDIDATE', 'mary')).status).toBe(200);
    const reader = await transition('APPROVED', 'rita');
    expect(reader.status).toBe(403);
    expect(errorOf(reader).code).toBe('DENIED');
    const key = await transition('APPROVED', 'publishKey');
    expect(key.status).toBe(403);
    expect(errorOf(key).code).toBe('DENIED');
    expect((await api(url, 'GET', '/api/v1/bundles/secured/1.0.0', undefined, creds.olive)).body.state).toBe('CANDIDATE');
    expect((await transition('APPROVED', 'olive')).body.state).toBe('APPROVED');
  });

  it('a publish key and a maintainer cannot activate; the owner can; resolving needs pull on the repository', async () => {
    const key = await activation('publishKey');
    expect(key.status).toBe(403);
    expect(errorOf(key).code).toBe('DENIED');
    expect(errorOf(await activation('mary')).code).toBe('DENIED');
    expect((await api(url, 'GET', '/api/v1/resolve?environment=prod&model_family=fraud', undefined, creds.olive)).status).toBe(404);
    const ok = await activation('olive');
    expect(ok.status).toBe(200);
    const q = '/api/v1/resolve?environment=prod&model_family=fraud';
    expect((await api(url, 'GET', q)).status).toBe(401);
    expect((await api(url, 'GET', q, undefined, creds.readKey)).body).toMatchObject({ bundle_id: 'secured', event_seq: ok.body.event_seq });
    expect((await api(url, 'GET', q, undefined, creds.rita)).status).toBe(200);
    expect((await api(url, 'GET', '/api/v1/bundles/secured/1.0.0')).status).toBe(401);
    const nothing = await api(url, 'POST', '/api/v1/activations/rollback', { scope, reason: 'r' }, creds.publishKey);
    expect(nothing.status).toBe(409); // nothing to roll back: answered before permissions (no bundle to protect)
  });

  it('rollback needs the same right as activation: a publish key is refused, the owner rolls back', async () => {
    const h = { Authorization: creds.mary! };
    const v2 = await pushBundle(url, REPO, bundleConfig('secured', '2.0.0'), { headers: h });
    await pushReceipt(url, REPO, v2, passReceipt(), h);
    expect((await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: v2.digest }, creds.mary)).status).toBe(201);
    for (const to of ['CANDIDATE', 'APPROVED']) expect((await api(url, 'POST', '/api/v1/bundles/secured/2.0.0/transitions', { to }, creds.olive)).status).toBe(200);
    expect((await api(url, 'POST', '/api/v1/activations', { scope, bundle_id: 'secured', bundle_version: '2.0.0', reason: 'v2' }, creds.olive)).status).toBe(200);
    const key = await api(url, 'POST', '/api/v1/activations/rollback', { scope, reason: 'r' }, creds.publishKey);
    expect(key.status).toBe(403);
    expect(errorOf(key).code).toBe('DENIED');
    const owner = await api(url, 'POST', '/api/v1/activations/rollback', { scope, reason: 'r' }, creds.olive);
    expect(owner.body).toMatchObject({ bundle_version: '1.0.0', changed: true });
  });

  it('platform feature groups are registry administration; a denied attempt is recorded', async () => {
    const owner = await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '9.0.0' } }, creds.olive);
    expect(owner.status).toBe(403);
    expect(errorOf(owner).code).toBe('DENIED');
    const events = await api(url, 'GET', '/api/v1/events?after=0&limit=1000', undefined, creds.root);
    expect(events.body.events.some((e: any) => e.actor === 'olive' && String(e.action).includes('denied'))).toBe(true);
    expect((await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.5.0' } }, creds.root)).status).toBe(200);
  });

  it('retiring needs the owner; a maintainer is refused', async () => {
    expect(errorOf(await transition('RETIRED', 'mary')).code).toBe('DENIED');
    expect((await transition('RETIRED', 'olive')).body).toMatchObject({ state: 'RETIRED', changed: true });
  });
});
