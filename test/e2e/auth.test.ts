/**
 * The permission matrix, the token flow and its attacks, over real HTTP with auth enabled.
 * Every case asserts the exact status and error code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/accounts.js';
import { sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
const creds: Record<string, string | undefined> = {};
let revokedKeyId = '';

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (ids, s) => {
    const admin = await s.user('root', true);
    const owner = await s.user('olive');
    await s.user('mary');
    await s.user('rita');
    const other = await s.user('oscar');
    s.org('acme', owner);
    s.member('acme', 'mary', 'maintainer');
    s.member('acme', 'rita', 'reader');
    s.org('globex', other);
    for (const u of ['root', 'olive', 'mary', 'rita', 'oscar']) creds[u] = basic(u, PASSWORD);
    const maryId = ids.principalByName('mary')!.id;
    creds.readKey = basic('mary', s.key(maryId, ['read']).token);
    creds.scopedKey = basic('mary', s.key(maryId, ['publish'], ['acme/app']).token);
    creds.expiredKey = basic('mary', createApiKey(ids, maryId, { name: 'expired', scopes: ['admin'], expiresAt: Date.now() - 1 }, 'test').token);
    const revoked = s.key(maryId, ['admin']);
    revokedKeyId = revoked.id;
    creds.revokedKey = basic('mary', revoked.token);
    ids.revokeKey(revoked.id, 'test');
    creds.anonymous = undefined;
    void admin;
  });
  // Seed content as the owner: acme/app (private), acme/other (private), acme/pub (public).
  for (const repo of ['acme/app', 'acme/other', 'acme/pub']) await seedImage(repo, creds.olive!);
  const vis = await fetch(`${reg.url}/api/v1/repositories/visibility`, { method: 'PUT', headers: { Authorization: creds.olive!, 'Content-Type': 'application/json' }, body: JSON.stringify({ repository: 'acme/pub', visibility: 'public' }) });
  expect(vis.status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

const blob = Buffer.from('{"architecture":"amd64","os":"linux"}');
const blobDigest = sha256(blob);

async function seedImage(repo: string, auth: string): Promise<void> {
  const h = { Authorization: auth };
  expect((await fetch(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${blobDigest}`, { method: 'POST', body: blob, headers: h })).status).toBe(201);
  const m = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blobDigest, size: blob.length }, layers: [] });
  expect((await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { method: 'PUT', body: m, headers: { ...h, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
}

type Op = 'pull' | 'push' | 'delete' | 'tags' | 'mount';
async function attempt(who: string, op: Op, repo: string): Promise<{ status: number; code?: string }> {
  const headers: Record<string, string> = creds[who] ? { Authorization: creds[who]! } : {};
  let res: Response;
  switch (op) {
    case 'pull':
      res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers });
      break;
    case 'tags':
      res = await fetch(`${reg.url}/v2/${repo}/tags/list`, { headers });
      break;
    case 'push':
      res = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
      break;
    case 'delete':
      res = await fetch(`${reg.url}/v2/${repo}/manifests/nonexistent-tag`, { method: 'DELETE', headers });
      break;
    case 'mount':
      // into the caller's own (or acme's) namespace, from `repo`
      res = await fetch(`${reg.url}/v2/acme/mounted/blobs/uploads/?mount=${blobDigest}&from=${repo}`, { method: 'POST', headers });
      break;
  }
  const text = await res.text();
  return { status: res.status, code: text ? (JSON.parse(text) as { errors?: { code: string }[] }).errors?.[0]?.code : undefined };
}

const OK = { status: 200 };
const PUSH_OK = { status: 202 };
const DELETE_OK = { status: 404, code: 'MANIFEST_UNKNOWN' }; // allowed, and the tag does not exist
const U = { status: 401, code: 'UNAUTHORIZED' };
const D = { status: 403, code: 'DENIED' };

describe('permission matrix on the private repository acme/app', () => {
  const matrix: [string, Op, { status: number; code?: string }][] = [
    ['anonymous', 'pull', U], ['anonymous', 'tags', U], ['anonymous', 'push', U], ['anonymous', 'delete', U],
    ['rita', 'pull', OK], ['rita', 'tags', OK], ['rita', 'push', D], ['rita', 'delete', D],
    ['mary', 'pull', OK], ['mary', 'tags', OK], ['mary', 'push', PUSH_OK], ['mary', 'delete', DELETE_OK],
    ['olive', 'pull', OK], ['olive', 'tags', OK], ['olive', 'push', PUSH_OK], ['olive', 'delete', DELETE_OK],
    ['oscar', 'pull', D], ['oscar', 'tags', D], ['oscar', 'push', D], ['oscar', 'delete', D],
    ['root', 'pull', OK], ['root', 'push', PUSH_OK], ['root', 'delete', DELETE_OK],
    ['readKey', 'pull', OK], ['readKey', 'tags', OK], ['readKey', 'push', D], ['readKey', 'delete', D],
    ['scopedKey', 'pull', OK], ['scopedKey', 'push', PUSH_OK], ['scopedKey', 'delete', D],
    ['expiredKey', 'pull', U], ['expiredKey', 'push', U],
    ['revokedKey', 'pull', U], ['revokedKey', 'push', U],
  ];
  it.each(matrix)('%s %s → %o', async (who, op, expected) => {
    const got = await attempt(who, op, 'acme/app');
    expect(got).toEqual(expected.code ? expected : { ...expected, code: undefined });
  });

  it('a scoped key is limited to its repository patterns', async () => {
    expect(await attempt('scopedKey', 'pull', 'acme/other')).toEqual(D);
    expect(await attempt('scopedKey', 'push', 'acme/other')).toEqual(D);
  });

  it('public repositories: anyone pulls, only members push', async () => {
    expect(await attempt('anonymous', 'pull', 'acme/pub')).toEqual({ status: 200, code: undefined });
    expect(await attempt('oscar', 'pull', 'acme/pub')).toEqual({ status: 200, code: undefined });
    expect(await attempt('anonymous', 'push', 'acme/pub')).toEqual(U);
    expect(await attempt('oscar', 'push', 'acme/pub')).toEqual(D);
  });

  it('no squatting: nobody but an admin pushes into a namespace nobody owns, or another user\'s', async () => {
    expect(await attempt('mary', 'push', 'nobody/app')).toEqual(D);
    expect(await attempt('mary', 'push', 'olive/app')).toEqual(D);
    expect(await attempt('mary', 'push', 'mary/app')).toEqual({ status: 202, code: undefined });
    expect(await attempt('root', 'push', 'nobody/app')).toEqual({ status: 202, code: undefined });
  });

  it('mount only from a readable source; otherwise a normal upload session', async () => {
    expect(await attempt('mary', 'mount', 'acme/app')).toEqual({ status: 201, code: undefined });
    // rita cannot push to acme/mounted at all
    expect(await attempt('rita', 'mount', 'acme/app')).toEqual(D);
    // A blob only private repositories hold: another org's user gets a session, not the blob.
    const secret = Buffer.from('private layer bytes');
    const res0 = await fetch(`${reg.url}/v2/acme/app/blobs/uploads/?digest=${sha256(secret)}`, { method: 'POST', body: secret, headers: { Authorization: creds.olive! } });
    expect(res0.status).toBe(201);
    const res = await fetch(`${reg.url}/v2/oscar/x/blobs/uploads/?mount=${sha256(secret)}&from=acme/app`, { method: 'POST', headers: { Authorization: creds.oscar! } });
    expect(res.status).toBe(202);
    const noFrom = await fetch(`${reg.url}/v2/oscar/y/blobs/uploads/?mount=${sha256(secret)}`, { method: 'POST', headers: { Authorization: creds.oscar! } });
    expect(noFrom.status).toBe(202);
    const own = await fetch(`${reg.url}/v2/mary/z/blobs/uploads/?mount=${sha256(secret)}`, { method: 'POST', headers: { Authorization: creds.mary! } });
    expect(own.status).toBe(201);
  });

  it('the catalog shows only what the caller may see', async () => {
    const list = async (who: string) => ((await (await fetch(`${reg.url}/v2/_catalog`, { headers: creds[who] ? { Authorization: creds[who]! } : {} })).json()) as { repositories: string[] }).repositories;
    const anonymous = await fetch(`${reg.url}/v2/_catalog`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/scope="registry:catalog:\*"$/);
    const t = (await (await fetch(`${reg.url}/token?service=artifact-store&scope=registry:catalog:*`)).json()) as { token: string };
    const withToken = await fetch(`${reg.url}/v2/_catalog`, { headers: { Authorization: `Bearer ${t.token}` } });
    expect(((await withToken.json()) as { repositories: string[] }).repositories).toEqual(['acme/pub']);
    expect(await list('oscar')).toEqual(['acme/pub']);
    expect(await list('rita')).toEqual(expect.arrayContaining(['acme/app', 'acme/other', 'acme/pub']));
    expect(await list('scopedKey')).toEqual(['acme/app', 'acme/pub']);
  });

  it('denials of privileged actions are events with their actor', async () => {
    await attempt('rita', 'push', 'acme/app');
    await attempt('rita', 'push', 'acme/app'); // the same refusal within a minute is recorded once
    expect((await fetch(`${reg.url}/api/v1/events`)).status).toBe(401);
    expect((await fetch(`${reg.url}/api/v1/events`, { headers: { Authorization: creds.olive! } })).status).toBe(403);
    const events = (await (await fetch(`${reg.url}/api/v1/events?limit=1000`, { headers: { Authorization: creds.root! } })).json()) as { events: { action: string; actor: string; repository: string | null }[] };
    expect(events.events.filter((e) => e.action === 'identity.access.denied' && e.actor === 'rita' && e.repository === 'acme/app' && (e as unknown as { after: { attempted: string } }).after.attempted === 'oci.push').length).toBe(1);
    expect(events.events).toContainEqual(expect.objectContaining({ action: 'identity.access.denied', actor: 'rita', repository: 'acme/app' }));
    expect(events.events).toContainEqual(expect.objectContaining({ action: 'identity.key.revoke', after: { key: revokedKeyId } }));
    expect(events.events).toContainEqual(expect.objectContaining({ action: 'identity.member.grant' }));
  });
});
