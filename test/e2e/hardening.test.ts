/** Regression tests for the review's findings: escalation, floods, leftovers, limits. */
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, imageManifest, pushBlob, pushImage, randomBlob, rawRequest, sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { freshLoopbackAddress, requestFrom } from '../helpers/source-address.js';

let reg: TestRegistry;
const creds: Record<string, string> = {};
beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token', pageSize: 2 });
  await withIdentities(reg.dataDir, async (ids, s) => {
    await s.user('root', true);
    const alice = await s.user('alice');
    await s.user('bob');
    await s.user('carol');
    creds.root = basic('root', PASSWORD);
    creds.carol = basic('carol', PASSWORD);
    creds.alice = basic('alice', PASSWORD);
    creds.bob = basic('bob', PASSWORD);
    creds.limitedAdminKey = basic('alice', s.key(alice, ['admin'], ['alice/only'], 3600).token);
    creds.readKey = basic('alice', s.key(alice, ['read']).token);
    creds.publishKey = basic('alice', s.key(alice, ['publish']).token);
    void ids;
  });
});
afterAll(async () => {
  await reg.stop();
});
const u = (p: string): string => `${reg.url}${p}`;
const json = (auth: string, method: string, body: unknown): RequestInit => ({ method, headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

describe('namespaces and keys', () => {
  it('nobody but an administrator claims a namespace that already has repositories', async () => {
    const blob = Buffer.from('x');
    expect((await fetch(u(`/v2/library/base/blobs/uploads/?digest=${sha256(blob)}`), { method: 'POST', body: blob, headers: { Authorization: creds.root } })).status).toBe(201);
    await expectError(await fetch(u('/api/v1/orgs'), json(creds.bob, 'POST', { name: 'library' })), 409, 'CONFLICT');
    expect((await fetch(u('/api/v1/orgs'), json(creds.root, 'POST', { name: 'library' }))).status).toBe(201);
  });

  it('an API key mints only keys no broader than itself, and read keys revoke nothing', async () => {
    await expectError(await fetch(u('/api/v1/keys'), json(creds.limitedAdminKey, 'POST', { name: 'wide', scopes: ['admin'] })), 403, 'DENIED');
    const narrow = await fetch(u('/api/v1/keys'), json(creds.limitedAdminKey, 'POST', { name: 'narrow', scopes: ['read'], repositories: ['alice/only'] }));
    expect(narrow.status).toBe(201);
    const { expiresAt } = (await narrow.json()) as { expiresAt: number };
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000);
    const victim = (await (await fetch(u('/api/v1/keys'), json(creds.alice, 'POST', { name: 'victim', scopes: ['read'] }))).json()) as { id: string };
    await expectError(await fetch(u(`/api/v1/keys/${victim.id}`), { method: 'DELETE', headers: { Authorization: creds.readKey } }), 403, 'DENIED');
    await expectError(await fetch(u('/api/v1/repositories/visibility'), json(creds.limitedAdminKey, 'PUT', { repository: 'alice/secret', visibility: 'public' })), 403, 'DENIED');
  });

  it('a publish-only key can cancel its own upload', async () => {
    const post = await fetch(u('/v2/alice/app/blobs/uploads/'), { method: 'POST', headers: { Authorization: creds.publishKey } });
    expect(post.status).toBe(202);
    expect((await fetch(u(post.headers.get('location')!), { method: 'DELETE', headers: { Authorization: creds.publishKey } })).status).toBe(204);
  });
});

describe('user lifecycle', () => {
  it('a password change takes effect at once, even over a remembered login; only self or admin may change it', async () => {
    const whoami = (auth: string) => fetch(u('/api/v1/whoami'), { headers: { Authorization: auth } });
    expect((await whoami(creds.carol!)).status).toBe(200); // now remembered for 60 s
    const form = (f: Record<string, string>) => fetch(u('/token'), { method: 'POST', body: new URLSearchParams(f) });
    const issued = (await (await form({ grant_type: 'password', username: 'carol', password: PASSWORD, scope: 'repository:carol/app:pull' })).json()) as { access_token: string; refresh_token: string };
    await expectError(await fetch(u('/api/v1/users/carol/password'), json(creds.bob!, 'PUT', { password: 'bob-sets-this-password' })), 403, 'DENIED');
    expect((await fetch(u('/api/v1/users/carol/password'), json(creds.carol!, 'PUT', { password: 'carols-new-password' }))).status).toBe(204);
    expect((await whoami(creds.carol!)).status).toBe(401);
    // Tokens issued under the old password die with it.
    expect((await form({ grant_type: 'refresh_token', refresh_token: issued.refresh_token })).status).toBe(401);
    expect((await fetch(u('/v2/carol/app/tags/list'), { headers: { Authorization: `Bearer ${issued.access_token}` } })).status).toBe(401);
    expect((await whoami(basic('carol', 'carols-new-password'))).status).toBe(200);
  });

  it('a disabled user is locked out of every credential until enabled again', async () => {
    const key = (await (await fetch(u('/api/v1/keys'), json(creds.bob!, 'POST', { name: 'k', scopes: ['read'] }))).json()) as { token: string };
    await expectError(await fetch(u('/api/v1/users/bob/disabled'), json(creds.alice!, 'PUT', { disabled: true })), 403, 'DENIED');
    expect((await fetch(u('/api/v1/users/bob/disabled'), json(creds.root!, 'PUT', { disabled: true }))).status).toBe(200);
    expect((await fetch(u('/api/v1/whoami'), { headers: { Authorization: creds.bob! } })).status).toBe(401);
    expect((await fetch(u('/api/v1/whoami'), { headers: { Authorization: basic('bob', key.token) } })).status).toBe(401);
    expect((await fetch(u('/api/v1/users/bob/disabled'), json(creds.root!, 'PUT', { disabled: false }))).status).toBe(200);
    expect((await fetch(u('/api/v1/whoami'), { headers: { Authorization: creds.bob! } })).status).toBe(200);
  });
});

describe('content checks', () => {
  const h = (): Record<string, string> => ({ Authorization: creds.alice });

  it('bytes left behind by a broken append never reach the committed blob', async () => {
    const first = randomBlob(1000);
    const post = await fetch(u('/v2/alice/leftover/blobs/uploads/'), { method: 'POST', headers: h() });
    const loc = post.headers.get('location')!;
    expect((await fetch(u(loc), { method: 'PATCH', body: first, headers: { ...h(), 'Content-Range': '0-999' } })).status).toBe(202);
    // What a process killed mid-PATCH leaves: bytes past the acknowledged size.
    const id = loc.split('/').pop()!;
    appendFileSync(join(reg.dataDir, 'uploads', id), randomBlob(5000)); // the session's file (data/keys.ts)
    const rest = randomBlob(10);
    expect((await fetch(u(loc), { method: 'PATCH', body: rest, headers: { ...h(), 'Content-Range': '1000-1009' } })).status).toBe(202);
    const whole = Buffer.concat([first, rest]);
    expect((await fetch(u(`${loc}?digest=${sha256(whole)}`), { method: 'PUT', headers: h() })).status).toBe(201);
    const d = sha256(whole).slice(7);
    expect(statSync(join(reg.dataDir, 'blobs', 'sha256', d.slice(0, 2), d)).size).toBe(1010);
  });

  it('an index whose child size is wrong is MANIFEST_INVALID', async () => {
    const img = await pushImage(reg.url, 'alice/idx', 'a', {}, h());
    const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.digest, size: 999_999 }] });
    await expectError(await fetch(u('/v2/alice/idx/manifests/all'), { method: 'PUT', body: index, headers: { ...h(), 'Content-Type': 'application/vnd.oci.image.index.v1+json' } }), 400, 'MANIFEST_INVALID');
  });

  it('a manifest with more layers than SQLite binds per statement is accepted', async () => {
    const layers: { digest: string; size: number }[] = [];
    for (let i = 0; i < 600; i++) {
      const b = Buffer.from(`layer ${i}`);
      layers.push({ digest: await pushBlob(reg.url, 'alice/many', b, h()), size: b.length });
    }
    const cfg = Buffer.from('{}');
    const m = imageManifest({ digest: await pushBlob(reg.url, 'alice/many', cfg, h()), size: 2 }, layers);
    expect((await fetch(u('/v2/alice/many/manifests/v1'), { method: 'PUT', body: m, headers: { ...h(), 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
  });

  it('an empty artifactType falls back to the config media type; referrers page with Link', async () => {
    const subject = await pushImage(reg.url, 'alice/refs', 'v1', {}, h());
    const empty = await pushBlob(reg.url, 'alice/refs', Buffer.from('{}'), h());
    for (let i = 0; i < 3; i++) {
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: '', config: { mediaType: 'application/vnd.example.cfg', digest: empty, size: 2 }, layers: [], subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.bytes.length }, annotations: { i: String(i) } }));
      expect((await fetch(u(`/v2/alice/refs/manifests/${sha256(m)}`), { method: 'PUT', body: m, headers: { ...h(), 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
    }
    const first = await fetch(u(`/v2/alice/refs/referrers/${subject.digest}?artifactType=application/vnd.example.cfg`), { headers: h() });
    const page1 = (await first.json()) as { manifests: { digest: string }[] };
    expect(page1.manifests.length).toBe(2);
    const link = first.headers.get('link')!;
    expect(link).toMatch(/rel="next"$/);
    const next = await fetch(u(link.slice(1, link.indexOf('>'))), { headers: h() });
    const page2 = (await next.json()) as { manifests: { digest: string }[] };
    expect(page2.manifests.length).toBe(1);
    expect(next.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(new Set([...page1.manifests, ...page2.manifests].map((m) => m.digest)).size).toBe(3);
  });
});

describe('floods and limits', () => {
  it('failed logins are budgeted before any password hashing', async () => {
    // From an address of its own, so the budget is exactly the configured 10 whatever ran
    // before; in parallel, so the count does not depend on scrypt speed against the refill.
    const from = freshLoopbackAddress();
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => requestFrom(from, u('/v2/alice/app/tags/list'), { headers: { Authorization: basic('ghost', `guess-${i}-xxxxxxxx`) } })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(10).fill(401), 429, 429]);
    const limited = results.find((r) => r.status === 429)!;
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(limited.body)).toMatchObject({ errors: [{ code: 'TOOMANYREQUESTS' }] });
  });

  it('the token endpoint refuses oversized and malformed forms with 4xx, never 500', async () => {
    const big = await fetch(u('/token'), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a='.padEnd(100_000, 'a') });
    expect(big.status).toBe(413);
    const multipart = await fetch(u('/token'), { method: 'POST', headers: { 'Content-Type': 'multipart/form-data' }, body: '--x\r\nbroken' });
    expect(multipart.status).toBe(400);
  });

  it('a percent-encoded /v2/ prefix is not the API', async () => {
    const res = await rawRequest(reg.url, 'GET', '/%762/alice/app/tags/list');
    expect(res.status).toBe(404);
  });
});
