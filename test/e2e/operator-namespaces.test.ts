/**
 * Pushing into a namespace nobody owns (issue #19). A signed-in user is told what to do — in
 * the JSON envelope and, for HEAD requests and the token flow, in the challenge's
 * error_description, which is what skopeo prints; anonymous callers and namespaces someone
 * owns get the generic refusal. An administrator may push there: the namespace stays unowned
 * (only administrators push to or manage it) until an administrator assigns it to an organisation.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/clients.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);
const HINT = "namespace 'neworg' has no owner: create the organisation first";
let reg: TestRegistry;
let host: string;
const work = mkdtempSync(join(tmpdir(), 'as-ns-'));
const alice = basic('alice', PASSWORD);
const root = basic('root', PASSWORD);

/** skopeo copy of the test image; resolves to its stderr, or rejects with it. */
async function push(user: string, ref: string): Promise<string> {
  const args = ['copy', '--dest-tls-verify=false', '--dest-creds', `${user}:${PASSWORD}`, `oci:${join(work, 'img')}:v1`, `docker://${host}/${ref}`];
  try {
    return (await run('skopeo', args, { timeout: 60_000 })).stderr;
  } catch (err) {
    throw new Error(String((err as { stderr?: string }).stderr ?? err));
  }
}

async function tokenFor(auth: string | undefined, scope: string): Promise<string> {
  const res = await fetch(`${reg.url}/token?service=artifact-store&scope=${encodeURIComponent(scope)}`, { headers: auth ? { Authorization: auth } : {} });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

type Refusal = { status: number; challenge: string | null; body: { errors: { code: string; message: string }[] } | null };
async function call(method: string, path: string, auth?: string): Promise<Refusal> {
  const res = await fetch(`${reg.url}${path}`, { method, headers: auth ? { Authorization: auth } : {} });
  const text = await res.text();
  return { status: res.status, challenge: res.headers.get('www-authenticate'), body: text ? (JSON.parse(text) as Refusal['body']) : null };
}

beforeAll(async () => {
  requireBinary('skopeo', 'skopeo');
  reg = await startTestRegistry({ auth: 'token' });
  host = reg.url.replace('http://', '');
  await withIdentities(reg.dataDir, async (_ids, s) => {
    await s.user('root', true);
    await s.user('alice');
    s.org('acme', await s.user('bob'));
  });
  writeLayout(join(work, 'img'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
});
afterAll(async () => {
  await reg?.stop();
  removeDir(work);
});

describe('a push into a namespace without an owner', () => {
  it('skopeo (token flow) shows the signed-in user what to do', async () => {
    const err = await push('alice', 'neworg/app:1').then(
      () => '',
      (e: Error) => e.message,
    );
    expect(err).toContain(HINT);
    expect(err).toContain('POST /api/v1/orgs');
  });

  it('through a token: 401 with the envelope, and the hint in error_description (also on HEAD)', async () => {
    const bearer = `Bearer ${await tokenFor(alice, 'repository:neworg/app:pull,push')}`;
    const post = await call('POST', '/v2/neworg/app/blobs/uploads/', bearer);
    expect(post.status).toBe(401);
    expect(post.body!.errors[0]).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining(HINT) });
    expect(post.challenge).toMatch(/error="insufficient_scope"/);
    expect(post.challenge).toContain(`error_description="${HINT}`);
    const head = await call('HEAD', `/v2/neworg/app/blobs/sha256:${'a'.repeat(64)}`, bearer);
    expect(head.status).toBe(401);
    expect(head.body).toBeNull(); // HEAD has no body: the header is the only channel
    expect(head.challenge).toContain(`error_description="${HINT}`);
  });

  it('with Basic credentials: 403 with the hint in the envelope', async () => {
    const r = await call('POST', '/v2/neworg/app/blobs/uploads/', alice);
    expect(r.status).toBe(403);
    expect(r.body!.errors[0]).toMatchObject({ code: 'DENIED', message: expect.stringContaining(HINT) });
  });

  it('tells anonymous callers nothing, nor about a namespace someone owns', async () => {
    const anonymous = await call('POST', '/v2/neworg/app/blobs/uploads/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body!.errors[0]).toMatchObject({ code: 'UNAUTHORIZED', message: 'authentication required' });
    const anonToken = `Bearer ${await tokenFor(undefined, 'repository:neworg/app:pull,push')}`;
    const viaToken = await call('POST', '/v2/neworg/app/blobs/uploads/', anonToken);
    expect(viaToken.status).toBe(401);
    expect(JSON.stringify(viaToken)).not.toContain('no owner');
    // acme is bob's: alice learns only that she may not.
    const owned = await call('POST', '/v2/acme/app/blobs/uploads/', alice);
    expect(owned.status).toBe(403);
    expect(owned.body!.errors[0]!.message).toBe('requested access to the resource is denied');
    const ownedToken = await call('POST', '/v2/acme/app/blobs/uploads/', `Bearer ${await tokenFor(alice, 'repository:acme/app:pull,push')}`);
    expect(JSON.stringify(ownedToken)).not.toContain('no owner');
    await expect(push('alice', 'acme/app:1')).rejects.toThrow(/denied|unauthorized/i);
  });

  it('every 401 and 403 (but HEAD) carries the JSON envelope', async () => {
    const bad = basic('alice', 'not the password');
    const cases: [string, string, string | undefined][] = [
      ['GET', '/v2/', undefined],
      ['GET', '/v2/', bad],
      ['GET', '/token?service=artifact-store&scope=repository:neworg/app:push', bad],
      ['GET', '/v2/neworg/app/tags/list', undefined],
      ['GET', '/v2/neworg/app/tags/list', alice],
      ['PUT', '/v2/neworg/app/manifests/1', alice],
      ['DELETE', `/v2/acme/app/manifests/sha256:${'b'.repeat(64)}`, alice],
      ['GET', '/v2/_catalog', undefined],
      ['GET', '/api/v1/users', undefined],
      ['GET', '/api/v1/users', alice],
      ['GET', '/api/v1/events', alice],
      ['POST', '/api/v1/gc', alice],
      ['GET', '/api/v1/whoami', 'Bearer not-a-token'],
    ];
    for (const [method, path, auth] of cases) {
      const r = await call(method, path, auth);
      expect([401, 403], `${method} ${path}`).toContain(r.status);
      expect(r.body?.errors[0], `${method} ${path} → ${r.status}`).toMatchObject({ code: expect.any(String), message: expect.any(String) });
      if (r.status === 401) expect(r.challenge, `${method} ${path}`).toBeTruthy();
    }
  });
});

describe("an administrator's push into a namespace without an owner", () => {
  it('succeeds, leaves the namespace unowned and administrators-only until one assigns it', async () => {
    await push('root', 'neworg/app:1');
    // Still no owner: no organisation appeared, alice is still refused (and still told why).
    const orgs = (await (await fetch(`${reg.url}/api/v1/orgs`, { headers: { Authorization: root } })).json()) as { orgs: { name: string }[] };
    expect(orgs.orgs.map((o) => o.name)).not.toContain('neworg');
    await expect(push('alice', 'neworg/app:2')).rejects.toThrow(HINT);
    // A non-administrator cannot claim a name that already has repositories under it.
    const claim = await fetch(`${reg.url}/api/v1/orgs`, { method: 'POST', headers: { Authorization: alice, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'neworg' }) });
    expect(claim.status).toBe(409);
    expect(((await claim.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/only an administrator can assign/);
    // An administrator assigns it: creates the organisation, then makes alice a maintainer.
    const created = await fetch(`${reg.url}/api/v1/orgs`, { method: 'POST', headers: { Authorization: root, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'neworg' }) });
    expect(created.status).toBe(201);
    const member = await fetch(`${reg.url}/api/v1/orgs/neworg/members/alice`, { method: 'PUT', headers: { Authorization: root, 'Content-Type': 'application/json' }, body: JSON.stringify({ role: 'maintainer' }) });
    expect(member.status).toBe(200);
    await push('alice', 'neworg/app:2');
    const tags = (await (await fetch(`${reg.url}/v2/neworg/app/tags/list`, { headers: { Authorization: alice } })).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['1', '2']);
  });
});
