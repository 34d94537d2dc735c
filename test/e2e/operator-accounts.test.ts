/**
 * Deleting users and organisations, and the administrator's password reset (issue #19), through
 * the management API of a real registry: who may, what is refused (409 naming what to do
 * first), what dies with a user (keys, tokens, refresh tokens, memberships, the login), that a
 * later user of the same name inherits none of it, and that `events check` rebuilds the tables
 * from the log with no difference afterwards.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEventsCommand } from '../../src/events/rebuild.js';
import { pushImage } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let aliceKey: string;
let rootKey: string;
const root = basic('root', PASSWORD);
const alice = basic('alice', PASSWORD);
const bob = basic('bob', PASSWORD);

async function api(method: string, path: string, auth: string | undefined, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${reg.url}${path}`, { method, headers: { ...(auth ? { Authorization: auth } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function token(auth: string): Promise<{ access: string; refresh: string }> {
  const res = await fetch(`${reg.url}/token?service=artifact-store&offline_token=true&scope=repository:acme/app:pull`, { headers: { Authorization: auth } });
  const body = (await res.json()) as { token: string; refresh_token: string };
  return { access: body.token, refresh: body.refresh_token };
}

const refreshWorks = async (refresh: string): Promise<number> =>
  (await fetch(`${reg.url}/token`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, service: 'artifact-store' }) })).status;

/** `GET /v2/` with a token: 200 while the token is valid, 401 once it is not. */
const pullStatus = async (bearer: string): Promise<number> => (await fetch(`${reg.url}/v2/`, { headers: { Authorization: `Bearer ${bearer}` } })).status;

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token', webhookAllowPrivateTargets: true });
  await withIdentities(reg.dataDir, async (_ids, s) => {
    const rootId = await s.user('root', true);
    const aliceId = await s.user('alice');
    await s.user('bob');
    s.org('acme', aliceId);
    s.member('acme', 'bob', 'maintainer');
    aliceKey = s.key(aliceId, ['publish']).token;
    rootKey = s.key(rootId, ['admin']).token;
  });
});
afterAll(async () => reg.stop());

describe('DELETE /api/v1/users/{user}', () => {
  it('is for administrators with a password login only', async () => {
    expect((await api('DELETE', '/api/v1/users/bob', undefined)).status).toBe(401);
    expect((await api('DELETE', '/api/v1/users/bob', alice)).status).toBe(403);
    expect((await api('DELETE', '/api/v1/users/nobody', alice)).status).toBe(403); // no hint whether the name exists
    expect((await api('DELETE', '/api/v1/users/bob', basic('root', rootKey))).status).toBe(403); // even an unrestricted admin key
    expect((await api('DELETE', '/api/v1/users/nobody', root)).status).toBe(404);
    const self = await api('DELETE', '/api/v1/users/root', root);
    expect(self.status).toBe(409);
    expect(self.json.errors[0].message).toMatch(/cannot delete themselves/);
  });

  it('refuses while the user alone owns an organisation or has content, naming what to do', async () => {
    const soleOwner = await api('DELETE', '/api/v1/users/alice', root);
    expect(soleOwner.status).toBe(409);
    expect(soleOwner.json.errors[0]).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/only owner of acme: give each another owner/) });
    expect((await api('PUT', '/api/v1/orgs/acme/members/bob', alice, { role: 'owner' })).status).toBe(200);
    const img = await pushImage(reg.url, 'alice/app', 'v1', {}, { Authorization: alice });
    const content = await api('DELETE', '/api/v1/users/alice', root);
    expect(content.status).toBe(409);
    expect(content.json.errors[0].message).toMatch(/still has repositories with content \(alice\/app\)/);
    expect((await fetch(`${reg.url}/v2/alice/app/manifests/${img.digest}`, { method: 'DELETE', headers: { Authorization: alice } })).status).toBe(202);
  });

  it('removes the login, every key, token and refresh token, and the memberships', async () => {
    const t = await token(alice);
    expect(await pullStatus(t.access)).toBe(200);
    const res = await api('DELETE', '/api/v1/users/alice', root);
    expect(res).toEqual({ status: 200, json: { user: 'alice', keysRevoked: 1, memberships: 1 } });
    expect((await api('GET', '/api/v1/whoami', alice)).status).toBe(401);
    expect((await api('GET', '/api/v1/whoami', basic('alice', aliceKey))).status).toBe(401);
    expect(await pullStatus(t.access)).toBe(401);
    expect(await refreshWorks(t.refresh)).toBe(401);
    expect((await api('GET', '/api/v1/orgs/acme/members', bob)).json.members).toEqual([{ user: 'bob', role: 'owner' }]);
    expect((await api('GET', '/api/v1/users', root)).json.users.map((u: { name: string }) => u.name)).toEqual(['bob', 'root']);

    // A new alice is a new account: the old alice's tokens do not become hers.
    expect((await api('POST', '/api/v1/users', root, { name: 'alice', password: 'a different long password' })).status).toBe(201);
    expect(await pullStatus(t.access)).toBe(401);
    expect(await refreshWorks(t.refresh)).toBe(401);
    expect((await api('GET', '/api/v1/whoami', basic('alice', 'a different long password'))).json).toMatchObject({ name: 'alice', organisations: {} });
  });
});

describe('PUT /api/v1/users/{user}/password by an administrator (the reset)', () => {
  it("sets another user's password; the old one and its tokens stop working; a non-admin cannot", async () => {
    const before = await token(bob);
    expect((await api('PUT', '/api/v1/users/bob/password', basic('alice', 'a different long password'), { password: 'not my account!!' })).status).toBe(403);
    // A non-administrator learns nothing about which names exist.
    expect((await api('PUT', '/api/v1/users/nobody/password', basic('alice', 'a different long password'), { password: 'not my account!!' })).status).toBe(403);
    expect((await api('PUT', '/api/v1/users/nobody/password', root, { password: 'nobody is there!' })).status).toBe(404);
    expect((await api('PUT', '/api/v1/users/bob/password', root, { password: 'reset by the admin' })).status).toBe(204);
    expect((await api('GET', '/api/v1/whoami', bob)).status).toBe(401);
    expect(await pullStatus(before.access)).toBe(401);
    expect((await api('GET', '/api/v1/whoami', basic('bob', 'reset by the admin'))).status).toBe(200);
  });
});

describe('DELETE /api/v1/orgs/{org}', () => {
  const bobNow = basic('bob', 'reset by the admin');

  it('is for administrators; refuses while the organisation has content or a webhook limited to it', async () => {
    expect((await api('DELETE', '/api/v1/orgs/acme', undefined)).status).toBe(401);
    expect((await api('DELETE', '/api/v1/orgs/acme', bobNow)).status).toBe(403); // an owner, not an administrator
    expect((await api('DELETE', '/api/v1/orgs/nothere', root)).status).toBe(404);
    const img = await pushImage(reg.url, 'acme/app', 'v1', {}, { Authorization: bobNow });
    const content = await api('DELETE', '/api/v1/orgs/acme', root);
    expect(content.status).toBe(409);
    expect(content.json.errors[0].message).toMatch(/organisation 'acme' still has repositories with content \(acme\/app\): delete their manifests first/);
    expect((await fetch(`${reg.url}/v2/acme/app/manifests/${img.digest}`, { method: 'DELETE', headers: { Authorization: bobNow } })).status).toBe(202);
    const hook = await api('POST', '/api/v1/webhooks', bobNow, { url: 'http://127.0.0.1:9/hook', events: ['*'], namespaces: ['acme'], secret: 'a webhook secret of some length' });
    expect(hook.status).toBe(201);
    const hooked = await api('DELETE', '/api/v1/orgs/acme', root);
    expect(hooked.status).toBe(409);
    expect(hooked.json.errors[0].message).toContain(`webhooks ${hook.json.id as string} are limited to namespace 'acme'`);
    expect((await api('DELETE', `/api/v1/webhooks/${hook.json.id as string}`, bobNow)).status).toBe(204);
  });

  it('deletes it with its memberships; the name is free again and starts with nothing', async () => {
    expect(await api('DELETE', '/api/v1/orgs/acme', root)).toEqual({ status: 200, json: { org: 'acme', members: 1 } });
    expect((await api('GET', '/api/v1/whoami', bobNow)).json.organisations).toEqual({});
    expect((await api('GET', '/api/v1/orgs', root)).json.orgs).toEqual([]);
    // Its (now empty) repositories remain, so, as for any such name, only an administrator gives it out again.
    expect((await api('POST', '/api/v1/orgs', basic('alice', 'a different long password'), { name: 'acme' })).status).toBe(409);
    expect((await api('POST', '/api/v1/orgs', root, { name: 'acme' })).status).toBe(201);
    expect((await api('GET', '/api/v1/orgs/acme/members', root)).json.members).toEqual([{ user: 'root', role: 'owner' }]);
  });

  it('every deletion is an event with its actor, and the log rebuilds the same tables', async () => {
    const events = (await api('GET', '/api/v1/events?limit=1000', root)).json.events as { action: string; actor: string; before: any }[];
    const deletions = events.filter((e) => e.action === 'identity.user.delete' || e.action === 'identity.org.delete');
    expect(deletions.map((e) => [e.action, e.actor])).toEqual([
      ['identity.user.delete', 'root'],
      ['identity.org.delete', 'root'],
    ]);
    expect(deletions[0]!.before).toMatchObject({ user: 'alice', keys: [expect.any(String)], memberships: [{ org: 'acme', role: 'owner' }] });
    let out = '';
    expect(runEventsCommand('check', join(reg.dataDir, 'metadata.db'), undefined, (s) => (out += s)), out).toBe(0);
    expect(out).toMatch(/tables match a rebuild/);
  });
});

describe('what a deleted account leaves in its namespace', () => {
  const carol = basic('carol', 'carol has a long password');

  it('a repository named exactly like the account is its content; visibility and blob links of empty repositories go with it', async () => {
    expect((await api('POST', '/api/v1/users', root, { name: 'carol', password: 'carol has a long password' })).status).toBe(201);
    // `carol` itself is in namespace carol: deleting her must not hand it to whoever claims the name next.
    const top = await pushImage(reg.url, 'carol', 'v1', {}, { Authorization: carol });
    const refused = await api('DELETE', '/api/v1/users/carol', root);
    expect(refused.status).toBe(409);
    expect(refused.json.errors[0].message).toMatch(/still has repositories with content \(carol\)/);
    expect((await fetch(`${reg.url}/v2/carol/manifests/${top.digest}`, { method: 'DELETE', headers: { Authorization: carol } })).status).toBe(202);

    const img = await pushImage(reg.url, 'carol/app', 'v1', {}, { Authorization: carol });
    expect((await api('PUT', '/api/v1/repositories/visibility', carol, { repository: 'carol/app', visibility: 'public' })).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/carol/app/blobs/${img.layer}`)).status).toBe(200); // public: anyone reads the layer
    expect((await fetch(`${reg.url}/v2/carol/app/manifests/${img.digest}`, { method: 'DELETE', headers: { Authorization: carol } })).status).toBe(202);
    expect((await api('DELETE', '/api/v1/users/carol', root)).status).toBe(200);

    // The old layer is no longer linked (GC collects it); a new carol's pushes start private.
    expect((await fetch(`${reg.url}/v2/carol/app/blobs/${img.layer}`, { headers: { Authorization: root } })).status).toBe(404);
    expect((await api('POST', '/api/v1/users', root, { name: 'carol', password: 'carol has a long password' })).status).toBe(201);
    const again = await pushImage(reg.url, 'carol/app', 'v2', {}, { Authorization: carol });
    expect((await fetch(`${reg.url}/v2/carol/app/manifests/${again.digest}`)).status).toBe(401);
    expect((await fetch(`${reg.url}/v2/carol/app/blobs/${img.layer}`, { headers: { Authorization: carol } })).status).toBe(404);

    let out = '';
    expect(runEventsCommand('check', join(reg.dataDir, 'metadata.db'), undefined, (s) => (out += s)), out).toBe(0);
  });
});
