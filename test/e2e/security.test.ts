/**
 * Regression tests for issue #18's security items, each reproducing what was found by probing a
 * running registry: real HTTP, real parallel requests, no sleeps standing in for ordering.
 */
import { join } from 'node:path';
import { getTableName } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerChallenge } from '../../src/auth/access.js';
import { DenialLog, type DenialRecord } from '../../src/auth/denials.js';
import { openDatabase } from '../../src/meta/db.js';
import { repositories, repositoryVisibility } from '../../src/meta/schema.js';
import { expectError } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { freshLoopbackAddress, requestFrom } from '../helpers/source-address.js';

let reg: TestRegistry;
const creds: Record<string, string> = {};
let limitedKeyExpiresAt = 0;
let adminKeyId = '';

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token', logLevel: 'error' });
  await withIdentities(reg.dataDir, async (_ids, s) => {
    const root = await s.user('root', true);
    await s.user('alice');
    await s.user('bob');
    await s.user('mary');
    creds.root = basic('root', PASSWORD);
    creds.alice = basic('alice', PASSWORD);
    creds.bob = basic('bob', PASSWORD);
    creds.mary = basic('mary', PASSWORD);
    // What `artifact-store key create root --scope admin --repo root/only --expires-in 3600` makes.
    const limited = s.key(root, ['admin'], ['root/only'], 3600);
    limitedKeyExpiresAt = Date.now() + 3600_000;
    creds.limitedAdminKey = basic('root', limited.token);
    const adminKey = s.key(root, ['admin']);
    creds.adminKey = basic('root', adminKey.token);
    adminKeyId = adminKey.id;
  });
});
afterAll(async () => {
  await reg.stop();
});

const u = (p: string): string => `${reg.url}${p}`;
const json = (auth: string, method: string, body: unknown): RequestInit => ({ method, headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
const whoami = (auth: string) => fetch(u('/api/v1/whoami'), { headers: { Authorization: auth } });
type Event = { action: string; actor: string; repository: string | null; reason: string | null; after: Record<string, unknown> | null };
async function events(): Promise<Event[]> {
  const res = await fetch(u('/api/v1/events?limit=1000'), { headers: { Authorization: creds.root } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: Event[] }).events;
}

describe('item 1: a repository-limited admin key is not an administrator', () => {
  it('cannot create a full administrator', async () => {
    await expectError(await fetch(u('/api/v1/users'), json(creds.limitedAdminKey, 'POST', { name: 'mallory', password: 'mallory-password-1', admin: true })), 403, 'DENIED');
    expect((await whoami(basic('mallory', 'mallory-password-1'))).status).toBe(401);
  });

  it("cannot take over its owner's account by changing the password", async () => {
    await expectError(await fetch(u('/api/v1/users/root/password'), json(creds.limitedAdminKey, 'PUT', { password: 'taken-over-password' })), 403, 'DENIED');
    expect((await whoami(creds.root)).status).toBe(200);
    expect((await whoami(basic('root', 'taken-over-password'))).status).toBe(401);
  });

  it('cannot mint a broader key, only one within its repositories and expiry', async () => {
    await expectError(await fetch(u('/api/v1/keys'), json(creds.limitedAdminKey, 'POST', { name: 'wide', scopes: ['admin'] })), 403, 'DENIED');
    await expectError(await fetch(u('/api/v1/keys'), json(creds.limitedAdminKey, 'POST', { name: 'wider', scopes: ['admin'], repositories: ['root/**'] })), 403, 'DENIED');
    const narrow = await fetch(u('/api/v1/keys'), json(creds.limitedAdminKey, 'POST', { name: 'narrow', scopes: ['publish'], repositories: ['root/only'], expiresInSeconds: 7 * 24 * 3600 }));
    expect(narrow.status).toBe(201);
    expect(((await narrow.json()) as { expiresAt: number }).expiresAt).toBeLessThanOrEqual(limitedKeyExpiresAt + 1000);
  });

  it("cannot revoke its owner's other keys", async () => {
    await expectError(await fetch(u(`/api/v1/keys/${adminKeyId}`), { method: 'DELETE', headers: { Authorization: creds.limitedAdminKey } }), 403, 'DENIED');
    expect((await whoami(creds.adminKey)).status).toBe(200);
  });

  it('cannot disable users, manage namespaces or read the event log', async () => {
    await expectError(await fetch(u('/api/v1/users/alice/disabled'), json(creds.limitedAdminKey, 'PUT', { disabled: true })), 403, 'DENIED');
    await expectError(await fetch(u('/api/v1/repositories/visibility'), json(creds.limitedAdminKey, 'PUT', { repository: 'alice/app', visibility: 'public' })), 403, 'DENIED');
    await expectError(await fetch(u('/api/v1/events'), { headers: { Authorization: creds.limitedAdminKey } }), 403, 'DENIED');
  });

  it('even an unrestricted admin key cannot create users or change passwords; a password login can', async () => {
    await expectError(await fetch(u('/api/v1/users'), json(creds.adminKey, 'POST', { name: 'mallory', password: 'mallory-password-1', admin: true })), 403, 'DENIED');
    await expectError(await fetch(u('/api/v1/users/alice/password'), json(creds.adminKey, 'PUT', { password: 'alice-by-a-key-1' })), 403, 'DENIED');
    expect((await fetch(u('/api/v1/users'), json(creds.root, 'POST', { name: 'newbie', password: 'newbie-password-1', admin: false }))).status).toBe(201);
  });

  it('is refused as an event naming the key', async () => {
    const denied = (await events()).filter((e) => e.action === 'identity.access.denied' && e.actor.startsWith('root/key:'));
    expect(denied.map((e) => e.after?.attempted)).toEqual(expect.arrayContaining(['user.manage', 'user.password', 'key.create']));
  });
});

describe('item 2: _catalog is filtered in SQL and never stalls the server', () => {
  const TOTAL = 50_000;
  it(`lists ${TOTAL} repositories' public few to an anonymous token quickly, with /healthz answering meanwhile`, async () => {
    const db = openDatabase(join(reg.dataDir, 'metadata.db'));
    const t0 = performance.now();
    const insert = db.$client.prepare(`INSERT INTO ${getTableName(repositories)} (name) VALUES (?)`);
    db.$client.transaction(() => {
      for (let i = 0; i < TOTAL; i++) insert.run(`bulk/r${String(i).padStart(6, '0')}`);
    })();
    db.transaction((tx) => {
      for (const name of ['zz/pub1', 'zz/pub2', 'zz/pub3']) {
        tx.insert(repositories).values({ name }).run();
        tx.insert(repositoryVisibility).values({ name, visibility: 'public' }).run();
      }
      tx.insert(repositoryVisibility).values({ name: 'zz/gone', visibility: 'public' }).run(); // public but no repository
    });
    db.$client.close();
    const seedMs = performance.now() - t0;

    const anon = (await (await fetch(u('/token?service=artifact-store&scope=registry:catalog:*'))).json()) as { token: string };
    let stop = false;
    const health: number[] = [];
    const poll = (async () => {
      while (!stop) {
        const h0 = performance.now();
        const res = await fetch(u('/healthz'));
        health.push(res.status === 200 ? performance.now() - h0 : Infinity);
      }
    })();
    const times: number[] = [];
    let listed: string[] = [];
    let mine: string[] = [];
    let aliceMs = 0;
    let adminLink = '';
    try {
    for (let i = 0; i < 5; i++) {
      const c0 = performance.now();
      const res = await fetch(u('/v2/_catalog'), { headers: { Authorization: `Bearer ${anon.token}` } });
      listed = ((await res.json()) as { repositories: string[] }).repositories;
      times.push(performance.now() - c0);
    }
    // A user sees their own namespace; alice has none of the bulk repositories.
    expect((await whoami(creds.alice)).status).toBe(200); // her password check is remembered: time the catalog alone
    const a0 = performance.now();
    mine = ((await (await fetch(u('/v2/_catalog?n=5'), { headers: { Authorization: creds.alice } })).json()) as { repositories: string[] }).repositories;
    aliceMs = performance.now() - a0;
    // An administrator pages through everything.
    const first = await fetch(u('/v2/_catalog?n=1000'), { headers: { Authorization: creds.root } });
    expect(((await first.json()) as { repositories: string[] }).repositories).toHaveLength(1000);
    adminLink = first.headers.get('link') ?? '';
    } finally {
      stop = true;
      await poll;
    }
    // (Governance modules may have made a few `_registry/…` repositories, which sort first.)
    expect(adminLink).toMatch(/^<\/v2\/_catalog\?n=1000&last=bulk%2Fr0009\d\d>; rel="next"$/);

    expect(listed).toEqual(['zz/pub1', 'zz/pub2', 'zz/pub3']);
    expect(mine).toEqual(['zz/pub1', 'zz/pub2', 'zz/pub3']);
    const median = [...times].sort((a, b) => a - b)[2]!;
    console.log(`[catalog] seeded ${TOTAL} repositories in ${seedMs.toFixed(0)} ms; anonymous catalog median ${median.toFixed(1)} ms (all: ${times.map((t) => t.toFixed(1)).join(', ')}); alice ${aliceMs.toFixed(1)} ms; /healthz max ${Math.max(...health).toFixed(1)} ms over ${health.length} polls`);
    // The per-row scan this replaced took 2.9 s (median) for 20k repositories here, /healthz up
    // to 3.8 s; a bounded page is ~10 ms on an idle machine (bounds leave room for a loaded CI).
    expect(median).toBeLessThan(1000);
    expect(Math.max(...health)).toBeLessThan(2000);
  });
});

describe('item 3: failed logins and password checks are bounded under concurrency', () => {
  it('30 concurrent wrong passwords from one address: at most 10 are checked, the rest are 429', async () => {
    const from = freshLoopbackAddress();
    let refusedSoFar = 0;
    let twentyRefused: () => void = () => {};
    const refusedEnough = new Promise<void>((resolve) => (twentyRefused = resolve));
    const guesses = Array.from({ length: 30 }, (_, i) =>
      requestFrom(from, u('/v2/alice/app/tags/list'), { headers: { Authorization: basic('alice', `wrong-guess-${i}-xx`) } }).then((r) => {
        if (r.status === 429 && ++refusedSoFar === 20) twentyRefused();
        return r;
      }),
    );
    // 20 refusals came back while the 10 reserved guesses are still hashing: the budget was spent
    // before any hashing, so even the right password is not checked now (a check made after
    // hashing, as before, let it through).
    await refusedEnough;
    const right = await requestFrom(from, u('/api/v1/whoami'), { headers: { Authorization: basic('newbie', 'newbie-password-1') } });
    const statuses = (await Promise.all(guesses)).map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    expect(right.status).toBe(429);
    expect(Number(right.headers['retry-after'])).toBeGreaterThan(0);
    // Another address is unaffected.
    expect((await requestFrom(freshLoopbackAddress(), u('/api/v1/whoami'), { headers: { Authorization: basic('newbie', 'newbie-password-1') } })).status).toBe(200);
  });

  it('the scrypt wait queue is bounded: a flood from many addresses gets 429 at once instead of queueing', async () => {
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => requestFrom(freshLoopbackAddress(), u('/api/v1/whoami'), { headers: { Authorization: basic('bob', `flood-guess-${i}-xx`) } })));
    const queueFull = results.filter((r) => r.status === 429 && r.body.includes('password checks'));
    const checked = results.filter((r) => r.status === 401).length;
    expect(queueFull.length + checked).toBe(60);
    // 2 running + 16 waiting at any moment: most of 60 simultaneous checks are refused.
    expect(queueFull.length).toBeGreaterThan(0);
    expect(queueFull.every((r) => r.headers['retry-after'] === '1')).toBe(true);
  });
});

describe('item 4: a password change voids every token issued under the old one, in the same millisecond too', () => {
  const form = (f: Record<string, string>) => fetch(u('/token'), { method: 'POST', body: new URLSearchParams(f) });

  it('31 refresh tokens and their access tokens all die with the password, without waiting', async () => {
    const first = (await (await form({ grant_type: 'password', username: 'mary', password: PASSWORD, scope: 'repository:mary/app:pull' })).json()) as { access_token: string; refresh_token: string };
    const refresh = [first.refresh_token];
    const access = [first.access_token];
    for (let i = 0; i < 30; i++) {
      const res = await form({ grant_type: 'refresh_token', refresh_token: refresh[refresh.length - 1]!, scope: 'repository:mary/app:pull' });
      expect(res.status).toBe(200);
      const b = (await res.json()) as { access_token: string; refresh_token: string };
      refresh.push(b.refresh_token);
      access.push(b.access_token);
    }
    expect((await fetch(u('/api/v1/users/mary/password'), json(creds.mary, 'PUT', { password: 'marys-new-password' }))).status).toBe(204);
    const refreshed = await Promise.all(refresh.map((t) => form({ grant_type: 'refresh_token', refresh_token: t })));
    expect(refreshed.map((r) => r.status)).toEqual(refresh.map(() => 401));
    const used = await Promise.all(access.map((t) => fetch(u('/v2/mary/app/tags/list'), { headers: { Authorization: `Bearer ${t}` } })));
    expect(used.map((r) => r.status)).toEqual(access.map(() => 401));
    // The new password works at once, and so do its tokens.
    const fresh = await form({ grant_type: 'password', username: 'mary', password: 'marys-new-password' });
    expect(fresh.status).toBe(200);
    const again = await form({ grant_type: 'refresh_token', refresh_token: ((await fresh.json()) as { refresh_token: string }).refresh_token });
    expect(again.status).toBe(200);
    creds.mary = basic('mary', 'marys-new-password');
  });

  it('a login racing the change never yields a token that outlives it', async () => {
    let current = 'marys-new-password';
    for (let round = 0; round < 3; round++) {
      const next = `marys-password-round-${round}`;
      const [login, change] = await Promise.all([
        form({ grant_type: 'password', username: 'mary', password: current }),
        fetch(u('/api/v1/users/mary/password'), json(basic('mary', current), 'PUT', { password: next })),
      ]);
      expect(change.status).toBe(204);
      if (login.status === 200) {
        const t = (await login.json()) as { refresh_token: string };
        expect((await form({ grant_type: 'refresh_token', refresh_token: t.refresh_token })).status).toBe(401);
      } else {
        expect(login.status).toBe(401);
      }
      current = next;
    }
    creds.mary = basic('mary', current);
  });
});

describe('item 4 (continued): tokens refreshed while the change is being hashed', () => {
  const form = (f: Record<string, string>) => fetch(u('/token'), { method: 'POST', body: new URLSearchParams(f) });

  it('die with the password even when issued in the same second as the change', async () => {
    const login = (await (await form({ grant_type: 'password', username: 'alice', password: PASSWORD })).json()) as { refresh_token: string };
    let done = false;
    const change = fetch(u('/api/v1/users/alice/password'), json(creds.alice, 'PUT', { password: 'alices-new-password' })).then((r) => {
      done = true;
      return r;
    });
    // Refresh in a loop until the change lands: the last tokens are issued moments before it
    // commits (a one-second tokens_valid_after compared with '<' let those live on).
    const issued: string[] = [];
    let last = login.refresh_token;
    while (!done) {
      const res = await form({ grant_type: 'refresh_token', refresh_token: last });
      if (res.status !== 200) break;
      last = ((await res.json()) as { refresh_token: string }).refresh_token;
      issued.push(last);
    }
    expect((await change).status).toBe(204);
    expect(issued.length).toBeGreaterThan(0);
    const after = await Promise.all(issued.map((t) => form({ grant_type: 'refresh_token', refresh_token: t })));
    expect(after.map((r) => r.status)).toEqual(issued.map(() => 401));
    creds.alice = basic('alice', 'alices-new-password');
  });
});

describe('item 5: system actor names are reserved', () => {
  it('an account made under a reserved name before the rule existed cannot log in', async () => {
    let keyToken = '';
    await withIdentities(reg.dataDir, async (ids, s) => {
      const row = ids.createUser('anonymous', ids.principalByName('bob')!.passwordHash!, false, 'test'); // bypasses name validation, as an old database would
      keyToken = s.key(row.id, ['admin']).token;
    });
    expect((await whoami(basic('anonymous', PASSWORD))).status).toBe(401);
    expect((await whoami(basic('anonymous', keyToken))).status).toBe(401);
    expect((await fetch(u('/token'), { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'anonymous', password: PASSWORD }) })).status).toBe(401);
  });

  it.each(['anonymous', 'system', 'registry'])('nobody may be named %s', async (name) => {
    await expectError(await fetch(u('/api/v1/users'), json(creds.root, 'POST', { name, password: 'some-long-password', admin: false })), 400, 'NAME_INVALID');
    await expectError(await fetch(u('/api/v1/orgs'), json(creds.alice, 'POST', { name })), 400, 'NAME_INVALID');
  });
});

describe('item 6: denial events are budgeted per actor and action', () => {
  it('40 refused pushes to 40 invented repositories write at most 5 events', async () => {
    const res = await Promise.all(Array.from({ length: 40 }, (_, i) => fetch(u(`/v2/alice/invented-${i}/blobs/uploads/`), { method: 'POST', headers: { Authorization: creds.bob } })));
    expect(res.map((r) => r.status)).toEqual(res.map(() => 403));
    const bobs = (await events()).filter((e) => e.action === 'identity.access.denied' && e.actor === 'bob');
    expect(bobs.length).toBeGreaterThan(0);
    expect(bobs.length).toBeLessThanOrEqual(5);
  });

  it('the rest are counted and summarised once per window', () => {
    const written: DenialRecord[] = [];
    let now = 1_000_000;
    const log = new DenialLog((r) => written.push(r), { windowMs: 60_000, budget: 5, maxWindows: 100 }, () => now);
    for (let i = 0; i < 40; i++) log.record('bob', 'oci.push', `alice/invented-${i}`, 'insufficient permission');
    log.record('bob', 'user.manage', null, 'administrators only'); // another action has its own budget
    expect(written).toHaveLength(6);
    expect(log.suppressedTotal).toBe(35);
    now += 60_000;
    log.record('bob', 'oci.push', 'alice/next-window', 'insufficient permission');
    expect(written.slice(6)).toEqual([
      expect.objectContaining({ actor: 'bob', action: 'oci.push', repository: null, suppressed: 35, windowStart: 1_000_000 }),
      expect.objectContaining({ actor: 'bob', action: 'oci.push', repository: 'alice/next-window' }),
    ]);
    log.record('bob', 'oci.push', 'alice/next-window', 'insufficient permission'); // an exact repeat: counted
    log.flush(); // shutdown writes the summaries still owed
    expect(written).toHaveLength(9);
    expect(written[8]).toMatchObject({ actor: 'bob', action: 'oci.push', repository: null, suppressed: 1 });
  });
});

describe('item 7: the Host header never shapes the challenge', () => {
  // No ':' or '/', so it survives URL parsing and reached the challenge in the old code.
  const injected = 'evil.example",service="other",error="insufficient_scope';

  it('a Host that is not host[:port] is refused, not copied into WWW-Authenticate', async () => {
    const res = await requestFrom('127.0.0.1', u('/v2/'), { headers: { Host: injected } });
    expect(res.status).toBe(400);
    expect(String(res.headers['www-authenticate'] ?? '')).not.toContain('evil');
  });

  it('a plain Host names the realm', async () => {
    const res = await requestFrom('127.0.0.1', u('/v2/alice/app/tags/list'), { headers: { Host: 'registry.example:5000' } });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="http://registry.example:5000/token",service="artifact-store",scope="repository:alice/app:pull"');
  });

  it('every challenge parameter is quote-escaped', () => {
    expect(bearerChallenge({ realm: 'http://h/token', service: 'a"b\\c', scope: 'x\r\ny' })).toBe('Bearer realm="http://h/token",service="a\\"b\\\\c",scope="xy"');
  });
});

// Last: a second registry in this process takes over process-wide hooks (families' audit-action
// check) and leaves them pointing at its closed database when it stops.
describe('item 3 (continued): rate limits', () => {
  it('the general rate limit applies before authentication', async () => {
    const limited = await startTestRegistry({ auth: 'token', rateLimitPerSecond: 1, rateLimitBurst: 3 });
    try {
      await withIdentities(limited.dataDir, async (_ids, s) => void (await s.user('zed')));
      const from = freshLoopbackAddress();
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => requestFrom(from, `${limited.url}/api/v1/whoami`, { headers: { Authorization: basic('zed', `wrong-guess-${i}-xx`) } })));
      const checked = results.filter((r) => r.status === 401).length;
      const limitedFirst = results.filter((r) => r.status === 429 && !r.body.includes('failed logins'));
      // Burst 3 (+1 refilled at most): only those reached scrypt; the old code checked all 10.
      expect(checked).toBeLessThanOrEqual(4);
      expect(limitedFirst.length).toBeGreaterThanOrEqual(6);
    } finally {
      await limited.stop();
    }
  });
});
