/** The docker token flow and its attacks: tampering, other services, expiry, revocation, leaks. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateKeys, TokenService } from '../../src/auth/tokens.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startRegistryProcess, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { freshLoopbackAddress, requestFrom } from '../helpers/source-address.js';
import { pushBlob, pushImage, randomBlob, sha256 } from '../helpers/http.js';

let reg: TestRegistry;
let keyToken = '';
let keyId = '';

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (ids, s) => {
    const mary = await s.user('mary');
    s.org('acme', mary);
    ({ token: keyToken, id: keyId } = s.key(mary, ['publish']));
    ids.setVisibility('acme/pub', 'public', 'test');
  });
});
afterAll(async () => {
  await reg.stop();
});

const token = async (query: string, auth?: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(`${reg.url}/token?${query}`, { headers: auth ? { Authorization: auth } : {} });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const bearer = (t: unknown): Record<string, string> => ({ Authorization: `Bearer ${String(t)}` });

describe('token flow', () => {
  it('challenges anonymous /v2/ with the realm and service', async () => {
    const res = await fetch(`${reg.url}/v2/`);
    expect(res.status).toBe(401);
    const host = new URL(reg.url).host;
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="http://${host}/token",service="artifact-store"`);
  });

  it('challenges a push with the repository scope', async () => {
    const res = await fetch(`${reg.url}/v2/acme/app/blobs/uploads/`, { method: 'POST' });
    expect(res.headers.get('www-authenticate')).toMatch(/scope="repository:acme\/app:pull,push"$/);
  });

  it('GET /token with Basic grants what the user has, and the token works', async () => {
    const t = await token('service=artifact-store&scope=repository:acme/app:pull,push&scope=repository:acme/other:delete', basic('mary', PASSWORD));
    expect(t.status).toBe(200);
    expect(t.body).toMatchObject({ expires_in: 300 });
    expect(t.body.token).toBe(t.body.access_token);
    expect(typeof t.body.issued_at).toBe('string');
    expect(t.body.refresh_token).toBeUndefined();
    expect((await fetch(`${reg.url}/v2/`, { headers: bearer(t.body.token) })).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/acme/app/blobs/uploads/`, { method: 'POST', headers: bearer(t.body.token) })).status).toBe(202);
    // a repository the token does not name
    const other = await fetch(`${reg.url}/v2/acme/zzz/blobs/uploads/`, { method: 'POST', headers: bearer(t.body.token) });
    expect(other.status).toBe(401);
    expect(other.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });

  it('anonymous tokens pull public repositories only', async () => {
    const t = await token('service=artifact-store&scope=repository:acme/pub:pull,push&scope=repository:acme/app:pull');
    expect(t.status).toBe(200);
    const claims = JSON.parse(Buffer.from(String(t.body.token).split('.')[1]!, 'base64url').toString()) as { access: { name: string; actions: string[] }[] };
    expect(claims.access).toEqual([
      { type: 'repository', name: 'acme/pub', actions: ['pull'] },
      { type: 'repository', name: 'acme/app', actions: [] },
    ]);
  });

  it('refuses wrong credentials and tokens for another service', async () => {
    expect((await token('scope=repository:acme/app:pull', basic('mary', 'wrong password!!'))).status).toBe(401);
    expect((await token('service=someone-else&scope=repository:acme/app:pull', basic('mary', PASSWORD))).status).toBe(400);
    const keys = await loadOrCreateKeys(join(reg.dataDir, 'auth', 'token-signing-key.jwk'));
    const foreign = await new TokenService(keys, 'artifact-store', 'other-service', 300, 60).issueAccess({ sub: 'mary', access: [{ type: 'repository', name: 'acme/app', actions: ['pull', 'push'] }] });
    expect((await fetch(`${reg.url}/v2/acme/app/tags/list`, { headers: bearer(foreign.token) })).status).toBe(401);
  });

  it('rejects a tampered token that widens its scope', async () => {
    const t = await token('service=artifact-store&scope=repository:acme/pub:pull');
    const [h, p, sig] = String(t.body.token).split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    claims.access = [{ type: 'repository', name: 'acme/app', actions: ['pull', 'push', 'delete'] }];
    claims.sub = 'mary';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
    const res = await fetch(`${reg.url}/v2/acme/app/tags/list`, { headers: bearer(forged) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAUTHORIZED');
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    expect((await fetch(`${reg.url}/v2/acme/app/tags/list`, { headers: bearer(none) })).status).toBe(401);
  });

  it('rejects expired tokens', async () => {
    const keys = await loadOrCreateKeys(join(reg.dataDir, 'auth', 'token-signing-key.jwk'));
    const short = await new TokenService(keys, 'artifact-store', 'artifact-store', 1, 60).issueAccess({ sub: 'mary', access: [{ type: 'repository', name: 'acme/app', actions: ['pull'] }] });
    await new Promise((r) => setTimeout(r, 2100));
    expect((await fetch(`${reg.url}/v2/acme/app/tags/list`, { headers: bearer(short.token) })).status).toBe(401);
  });

  it('POST /token: password grant returns a refresh token that yields new tokens', async () => {
    const form = (f: Record<string, string>) => fetch(`${reg.url}/token`, { method: 'POST', body: new URLSearchParams(f) });
    const first = await form({ grant_type: 'password', username: 'mary', password: PASSWORD, service: 'artifact-store', scope: 'repository:acme/app:pull', client_id: 'test', access_type: 'offline' });
    expect(first.status).toBe(200);
    const b = (await first.json()) as { refresh_token: string; access_token: string };
    expect(typeof b.refresh_token).toBe('string');
    const second = await form({ grant_type: 'refresh_token', refresh_token: b.refresh_token, service: 'artifact-store', scope: 'repository:acme/app:pull,push', client_id: 'test' });
    expect(second.status).toBe(200);
    const b2 = (await second.json()) as { access_token: string };
    expect((await fetch(`${reg.url}/v2/acme/app/blobs/uploads/`, { method: 'POST', headers: bearer(b2.access_token) })).status).toBe(202);
    expect((await form({ grant_type: 'refresh_token', refresh_token: b.access_token })).status).toBe(401);
    expect((await form({ grant_type: 'password', username: 'mary', password: 'nope nope nope' })).status).toBe(401);
  });

  it('an API key works as the password, and its tokens die with it', async () => {
    const t = await token('service=artifact-store&scope=repository:acme/app:pull,push,delete', basic('anything', keyToken));
    const claims = JSON.parse(Buffer.from(String(t.body.token).split('.')[1]!, 'base64url').toString()) as { access: { actions: string[] }[] };
    expect(claims.access[0]!.actions).toEqual(['pull', 'push']); // publish scope: no delete
    expect((await fetch(`${reg.url}/v2/acme/app/tags/list`, { headers: bearer(t.body.token) })).status).toBe(404); // allowed; repo empty
    await withIdentities(reg.dataDir, async (ids) => void ids.revokeKey(keyId, 'test'));
    expect((await fetch(`${reg.url}/v2/acme/app/tags/list`, { headers: bearer(t.body.token) })).status).toBe(401);
  });
});

describe('credential checks', () => {
  it('take as long for unknown users as for wrong passwords (scrypt runs either way)', async () => {
    const time = async (user: string): Promise<number> => {
      const samples: number[] = [];
      for (let i = 0; i < 5; i++) {
        // Each guess from an address of its own: the failed-login budget (10 per address) must
        // not turn later samples into fast 429s.
        const t0 = performance.now();
        const res = await requestFrom(freshLoopbackAddress(), `${reg.url}/token?scope=repository:acme/app:pull`, { headers: { Authorization: basic(user, `wrong-${i}-password`) } });
        samples.push(performance.now() - t0);
        expect(res.status).toBe(401);
      }
      return samples.sort((a, b) => a - b)[2]!;
    };
    const known = await time('mary');
    const unknown = await time('nobody-at-all');
    expect(unknown).toBeGreaterThan(known * 0.4);
    expect(known).toBeGreaterThan(unknown * 0.4);
  });
});

describe('logs', () => {
  it('never contain passwords, API keys or tokens', async () => {
    const proc = await startRegistryProcess({ ARTIFACT_STORE_AUTH: 'token', ARTIFACT_STORE_LOG_LEVEL: 'trace' });
    try {
      let key = '';
      await withIdentities(proc.dataDir, async (_ids, s) => {
        const id = await s.user('leaky');
        key = s.key(id, ['admin']).token;
      });
      const t = await (await fetch(`${proc.url}/token?scope=repository:leaky/app:pull`, { headers: { Authorization: basic('leaky', PASSWORD) } })).json() as { token: string };
      await fetch(`${proc.url}/v2/leaky/app/tags/list`, { headers: bearer(t.token) });
      await fetch(`${proc.url}/v2/leaky/app/tags/list`, { headers: { Authorization: basic('leaky', key) } });
      await fetch(`${proc.url}/v2/leaky/app/tags/list`, { headers: { Authorization: basic('leaky', 'bad-password-here') } });
      await fetch(`${proc.url}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'leaky', password: PASSWORD }) });
      await new Promise((r) => setTimeout(r, 200));
      const out = proc.output();
      expect(out).toContain('"status":'); // the requests were logged
      for (const secret of [PASSWORD, key, key.split('_').slice(2).join('_') /* the secret may itself contain '_' */, t.token, t.token.split('.')[2]!, 'bad-password-here', Buffer.from(`leaky:${PASSWORD}`).toString('base64')]) {
        expect(out.includes(secret), `log contains a secret (${secret.slice(0, 6)}…)`).toBe(false);
      }
    } finally {
      await proc.stop();
    }
  });
});

// Last: a second in-process registry takes over process-wide hooks when it starts.
describe('the core flow with token auth and fsync on (issue #18, item 13)', () => {
  it('pushes (monolithic and chunked) and pulls back the exact bytes with bearer tokens, as docker does', async () => {
    const secured = await startTestRegistry({ auth: 'token', fsync: true });
    try {
      await withIdentities(secured.dataDir, async (_ids, s) => void (await s.user('pat')));
      // The client learns the realm from the challenge, then asks it for a scoped token.
      const ping = await fetch(`${secured.url}/v2/`);
      expect(ping.status).toBe(401);
      const challenge = ping.headers.get('www-authenticate')!;
      const realm = /realm="([^"]+)"/.exec(challenge)![1]!;
      const service = /service="([^"]+)"/.exec(challenge)![1]!;
      const tokenFor = async (scope: string): Promise<Record<string, string>> => {
        const res = await fetch(`${realm}?service=${service}&scope=${scope}`, { headers: { Authorization: basic('pat', PASSWORD) } });
        expect(res.status).toBe(200);
        return bearer(((await res.json()) as { token: string }).token);
      };
      const push = await tokenFor('repository:pat/app:pull,push');
      const image = await pushImage(secured.url, 'pat/app', 'v1', {}, push);
      // A chunked upload: POST, two PATCHes, PUT (each PATCH is synced before it is acknowledged).
      const chunked = randomBlob(300_000);
      const post = await fetch(`${secured.url}/v2/pat/app/blobs/uploads/`, { method: 'POST', headers: push });
      expect(post.status).toBe(202);
      let location = post.headers.get('location')!;
      for (const [from, to] of [[0, 150_000], [150_000, 300_000]] as const) {
        const res = await fetch(new URL(location, secured.url), { method: 'PATCH', body: chunked.subarray(from, to), headers: { ...push, 'Content-Type': 'application/octet-stream', 'Content-Range': `${from}-${to - 1}` } });
        expect(res.status).toBe(202);
        location = res.headers.get('location')!;
      }
      const put = await fetch(new URL(`${location}${location.includes('?') ? '&' : '?'}digest=${sha256(chunked)}`, secured.url), { method: 'PUT', headers: push });
      expect(put.status).toBe(201);
      await pushBlob(secured.url, 'pat/app', randomBlob(10), push); // and a small monolithic one

      // Anonymous callers and pull-only tokens cannot write; the pull token reads everything back.
      expect((await fetch(`${secured.url}/v2/pat/app/manifests/v1`)).status).toBe(401);
      const pull = await tokenFor('repository:pat/app:pull');
      const denied = await fetch(`${secured.url}/v2/pat/app/blobs/uploads/`, { method: 'POST', headers: pull });
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      const manifest = await fetch(`${secured.url}/v2/pat/app/manifests/v1`, { headers: { ...pull, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(manifest.status).toBe(200);
      expect(manifest.headers.get('docker-content-digest')).toBe(image.digest);
      expect(Buffer.from(await manifest.arrayBuffer()).equals(image.bytes)).toBe(true);
      for (const digest of [image.layer, image.config, sha256(chunked)]) {
        const blob = await fetch(`${secured.url}/v2/pat/app/blobs/${digest}`, { headers: pull });
        expect(blob.status).toBe(200);
        expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(digest);
      }
    } finally {
      await secured.stop();
    }
  });
});
