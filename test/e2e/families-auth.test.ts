/**
 * Who may change the registry families (token auth): administrators; after a registry admin
 * delegates a family to an organisation, that organisation's owners and maintainers too (a
 * setting and an event). Reads are open. Governance flags need namespace.manage; `_registry/`
 * takes direct pushes only from administrators and never over an entry's tag.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
const creds: Record<string, string> = {};

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (ids, s) => {
    await s.user('root', true);
    const olive = await s.user('olive');
    await s.user('mary');
    await s.user('rita');
    await s.user('oscar');
    s.org('acme', olive);
    s.member('acme', 'mary', 'maintainer');
    s.member('acme', 'rita', 'reader');
    for (const u of ['root', 'olive', 'mary', 'rita', 'oscar']) creds[u] = basic(u, PASSWORD);
    creds.maryKey = basic('mary', s.key(ids.principalByName('mary')!.id, ['publish']).token);
  });
});
afterAll(async () => {
  await reg.stop();
});

async function call(who: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; body: { errors?: { code: string; message: string }[] } & Record<string, unknown> }> {
  const headers: Record<string, string> = body === undefined ? {} : { 'Content-Type': 'application/json' };
  if (who) headers.Authorization = creds[who]!;
  const res = await fetch(`${reg.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as never) : ({} as never) };
}

const scope = (id: string) => ({ id, owner: 'artifact-store', description: `scope ${id}` });

describe('family permissions', () => {
  it('reads are open to anyone, anonymous included', async () => {
    expect((await call(null, 'GET', '/api/v1/families')).status).toBe(200);
    expect((await call(null, 'GET', '/api/v1/families/artifact-type/entries')).status).toBe(200);
    expect((await call(null, 'GET', '/api/v1/families/artifact-type/entries/model-bundle')).status).toBe(200);
  });

  it('writes need an administrator until the family is delegated', async () => {
    const anon = await call(null, 'POST', '/api/v1/families/scope/entries', scope('s0'));
    expect(anon.status).toBe(401);
    expect(anon.body.errors![0]!.code).toBe('UNAUTHORIZED');
    const oscar = await call('oscar', 'POST', '/api/v1/families/scope/entries', scope('s0'));
    expect(oscar.status).toBe(403);
    expect(oscar.body.errors![0]).toEqual({ code: 'DENIED', message: 'only administrators change scope entries', retryable: false });
    expect((await call('mary', 'POST', '/api/v1/families/scope/entries', scope('s0'))).status).toBe(403);
    expect((await call('root', 'POST', '/api/v1/families/scope/entries', scope('s0'))).status).toBe(201);
    expect((await call('oscar', 'PUT', '/api/v1/families/scope/entries/s0/status', { status: 'disabled', reason: 'x' })).status).toBe(403);
    expect((await call('oscar', 'PUT', '/api/v1/families/scope/entries/s0', scope('s0'))).status).toBe(403);
    expect((await call('root', 'GET', '/api/v1/families/scope/entries/s0')).body).toMatchObject({ version: 1, status: 'active' });
  });

  it('delegation is set by a registry administrator only, to an existing organisation, as an event', async () => {
    expect((await call('mary', 'PUT', '/api/v1/families/scope/delegation', { org: 'acme' })).status).toBe(403);
    expect((await call('olive', 'PUT', '/api/v1/families/scope/delegation', { org: 'acme' })).status).toBe(403);
    const unknown = await call('root', 'PUT', '/api/v1/families/scope/delegation', { org: 'nope' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors![0]!.message).toBe('"nope" is not an organisation');
    expect((await call('root', 'PUT', '/api/v1/families/scope/delegation', { org: 'oscar' })).status).toBe(400);
    const set = await call('root', 'PUT', '/api/v1/families/scope/delegation', { org: 'acme' });
    expect(set).toEqual({ status: 200, body: { family: 'scope', org: 'acme' } });
    expect((await call(null, 'GET', '/api/v1/families/scope/delegation')).body).toEqual({ family: 'scope', org: 'acme' });
    const events = (await call('root', 'GET', '/api/v1/events?limit=1000')).body.events as { action: string; actor: string; after: unknown }[];
    expect(events).toContainEqual(expect.objectContaining({ action: 'family.delegation.set', actor: 'root', after: { family: 'scope', org: 'acme' } }));
  });

  it('after delegation, owners and maintainers of the organisation change that family only', async () => {
    expect((await call('mary', 'POST', '/api/v1/families/scope/entries', scope('s1'))).status).toBe(201);
    expect((await call('olive', 'PUT', '/api/v1/families/scope/entries/s1', { ...scope('s1'), description: 'v2' })).status).toBe(200);
    expect((await call('mary', 'PUT', '/api/v1/families/scope/entries/s1/status', { status: 'deprecated', reason: 'renamed' })).status).toBe(200);
    const rita = await call('rita', 'POST', '/api/v1/families/scope/entries', scope('s2'));
    expect(rita.status).toBe(403);
    expect(rita.body.errors![0]!.message).toBe('only administrators and owners or maintainers of acme change scope entries');
    expect((await call('oscar', 'POST', '/api/v1/families/scope/entries', scope('s2'))).status).toBe(403);
    // A publish-scope API key is narrower than its user: no family changes.
    expect((await call('maryKey', 'POST', '/api/v1/families/scope/entries', scope('s2'))).status).toBe(403);
    // Other families stay administrators-only.
    expect((await call('mary', 'POST', '/api/v1/families/usage-unit/entries', scope('u1'))).status).toBe(403);
    expect((await call('root', 'POST', '/api/v1/families/usage-unit/entries', scope('u1'))).status).toBe(201);
    // Taken back: maintainers lose the right.
    expect((await call('root', 'PUT', '/api/v1/families/scope/delegation', { org: null })).status).toBe(200);
    expect((await call('mary', 'POST', '/api/v1/families/scope/entries', scope('s3'))).status).toBe(403);
    const denials = ((await call('root', 'GET', '/api/v1/events?limit=1000')).body.events as { action: string; actor: string; after: { attempted?: string } | null }[]).filter(
      (e) => e.action === 'identity.access.denied' && e.after?.attempted === 'family.write',
    );
    expect(denials.map((e) => e.actor)).toEqual(expect.arrayContaining(['oscar', 'rita', 'mary']));
  });

  it('governance flags need namespace management rights', async () => {
    expect((await call(null, 'PUT', '/api/v1/namespaces/acme/governance', { governed: true })).status).toBe(401);
    expect((await call('mary', 'PUT', '/api/v1/namespaces/acme/governance', { governed: true })).status).toBe(403);
    expect((await call('oscar', 'PUT', '/api/v1/namespaces/acme/governance', { governed: true })).status).toBe(403);
    expect((await call('olive', 'PUT', '/api/v1/namespaces/acme/governance', { governed: true })).body).toEqual({ namespace: 'acme', governed: true });
    expect((await call('root', 'PUT', '/api/v1/namespaces/oscar/governance', { governed: true })).status).toBe(200);
  });

  it('over /v2/ the catalogue is private to administrators, also through the registry/… alias and bearer tokens', async () => {
    expect((await fetch(`${reg.url}/v2/_registry/artifact-type/manifests/model-bundle`)).status).toBe(401);
    expect((await fetch(`${reg.url}/v2/registry/artifact-type/manifests/model-bundle`, { headers: { Authorization: creds.oscar! } })).status).toBe(403);
    const rest = (await call(null, 'GET', '/api/v1/families/artifact-type/entries/model-bundle')).body as { digest: string };
    const tokenFor = async (who: string) =>
      ((await (await fetch(`${reg.url}/token?service=artifact-store&scope=repository:registry/artifact-type:pull`, { headers: { Authorization: creds[who]! } })).json()) as { token: string }).token;
    const admin = await fetch(`${reg.url}/v2/registry/artifact-type/manifests/model-bundle`, { headers: { Authorization: `Bearer ${await tokenFor('root')}` } });
    expect(admin.status).toBe(200);
    expect(admin.headers.get('docker-content-digest')).toBe(rest.digest);
    expect((await fetch(`${reg.url}/v2/registry/artifact-type/manifests/model-bundle`, { headers: { Authorization: `Bearer ${await tokenFor('oscar')}` } })).status).toBe(401);
  });

  it('_registry/ takes direct pushes from administrators only, never over an entry tag', async () => {
    const mary = await fetch(`${reg.url}/v2/_registry/scope/blobs/uploads/`, { method: 'POST', headers: { Authorization: creds.mary! } });
    expect(mary.status).toBe(403);
    // An administrator may add a signature-like artifact beside the entries …
    await pushImage(reg.url, '_registry/scope', 'sha256-0123.sig', {}, { Authorization: creds.root! });
    // … but not take an entry's tag.
    const blob = Buffer.from('{}');
    const m = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'}`, size: blob.length }, layers: [] });
    const res = await fetch(`${reg.url}/v2/_registry/scope/manifests/s0`, { method: 'PUT', body: m, headers: { Authorization: creds.root!, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    const text = await res.text();
    expect(res.status, text).toBe(403);
    expect(JSON.parse(text).errors[0].message).toBe('tag s0 is the entry scope/s0: write entries through /api/v1/families');
  });
});
