/**
 * Web UI over plain HTTP (runs everywhere): everything rendered is escaped, every page carries
 * the CSP and no inline script, sign-in sets a hardened session cookie, mutations need the CSRF
 * token, keys are shown once and revocable, sign-out ends the session's key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, passReceipt, pushBundle, pushReceipt } from '../helpers/bundles.js';
import { pushImage } from '../helpers/http.js';
import { PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { cookieOf, csrfOf, uiClient } from '../helpers/ui.js';

const EVIL = '<script>alert(1)</script>"\'&<img src=x onerror=alert(2)>';

describe('UI with auth: none', () => {
  let reg: TestRegistry;
  let digest = '';
  let size = 0;
  beforeAll(async () => {
    reg = await startTestRegistry();
    const pushed = await pushImage(reg.url, 'esc/app', 'v1', { annotations: { 'org.opencontainers.image.title': EVIL, 'org.opencontainers.image.description': EVIL } });
    digest = pushed.digest;
    size = pushed.bytes.length;
  });
  afterAll(async () => {
    await reg.stop();
  });

  it('escapes annotations on the search page and the repository page', async () => {
    for (const path of ['/ui/?q=alert', `/ui/r/esc/app?digest=${digest}`, '/ui/r/esc/app', `/ui/?q=${encodeURIComponent(EVIL)}`]) {
      const res = await fetch(`${reg.url}${path}`);
      expect(res.status, path).toBe(200);
      const text = await res.text();
      expect(text, path).not.toContain('<script>alert');
      expect(text, path).not.toContain('<img src=x');
      expect(text, path).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    }
  });

  it('sets a CSP without inline script or style on every page, and uses no inline script', async () => {
    for (const path of ['/ui/', '/ui/r/esc/app', '/ui/bundles', '/ui/families', '/ui/events', '/ui/keys', '/ui/r/no/such']) {
      const res = await fetch(`${reg.url}${path}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("default-src 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).not.toContain('unsafe-inline');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const text = await res.text();
      // Only <script src="…"> (same origin), never a script body, never a style attribute.
      for (const m of text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)) {
        expect(m[1], path).toMatch(/src="\/ui\/static\//);
        expect(m[2], path).toBe('');
      }
      expect(text, path).not.toMatch(/<style|<[a-z][^>]*\s(style|on[a-z]+)=/i);
    }
  });

  it('repository page: tags paged, digests, sizes, pull command, manifest JSON, platforms of an index', async () => {
    for (let i = 0; i < 55; i++) {
      const tag = `t${String(i).padStart(2, '0')}`;
      const m = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size, platform: { os: 'linux', architecture: 'arm64' } }] });
      const res = await fetch(`${reg.url}/v2/esc/app/manifests/${tag}`, { method: 'PUT', body: m, headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' } });
      expect(res.status).toBe(201);
    }
    const first = await (await fetch(`${reg.url}/ui/r/esc/app`)).text();
    expect(first).toContain('(56)');
    expect(first).toContain('>t00<');
    expect(first).not.toContain('>t50<'); // 50 per page
    expect(first).toContain('last=t49');
    const second = await (await fetch(`${reg.url}/ui/r/esc/app?last=t49`)).text();
    expect(second).toContain('>t50<');
    expect(second).toContain('>v1<');
    const index = await (await fetch(`${reg.url}/ui/r/esc/app?tag=t00`)).text();
    expect(index).toContain('linux/arm64');
    expect(index).toContain('docker pull');
    expect(index).toContain('&quot;schemaVersion&quot;: 2'); // pretty-printed JSON, escaped
    const image = await (await fetch(`${reg.url}/ui/r/esc/app?tag=v1`)).text();
    expect(image).toContain('Config JSON');
    expect(image).toContain('&quot;architecture&quot;: &quot;amd64&quot;');
  });
});

describe('UI with auth: token', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ auth: 'token' });
    await withIdentities(reg.dataDir, async (_ids, s) => {
      await s.user('alice', true);
      await s.user('bob');
    });
  });
  afterAll(async () => {
    await reg.stop();
  });

  const { login, post } = uiClient(() => reg.url);

  it('refuses a wrong password without a cookie; a right one sets an HttpOnly, SameSite=Strict session', async () => {
    const bad = await login('alice', 'wrong password!!');
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
    const ok = await login('alice');
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^as_session=ask_/);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    const home = await (await fetch(`${reg.url}/ui/`, { headers: { Cookie: cookieOf(ok) } })).text();
    expect(home).toContain('alice');
    expect(home).toContain('Sign out');
  });

  it('keys page needs a session; creating shows the secret once; revoking works; CSRF is required', async () => {
    expect((await fetch(`${reg.url}/ui/keys`, { redirect: 'manual' })).status).toBe(303);
    const cookie = cookieOf(await login('bob'));
    const page = await (await fetch(`${reg.url}/ui/keys`, { headers: { Cookie: cookie } })).text();
    const csrf = csrfOf(page);
    expect(csrf.length).toBeGreaterThan(20);
    // Without the token, or with another's, nothing is created.
    expect((await post('/ui/keys', cookie, { name: 'ci', scope: 'read' })).status).toBe(403);
    expect((await post('/ui/keys', cookie, { name: 'ci', scope: 'read', csrf: 'x'.repeat(32) })).status).toBe(403);
    const created = await post('/ui/keys', cookie, { name: 'ci <b>', scope: ['read', 'publish'], days: '30', csrf });
    expect(created.status).toBe(201);
    const text = await created.text();
    const token = /id="new-key" value="(ask_[^"]+)"/.exec(text)?.[1];
    expect(token).toBeDefined();
    expect(text).toContain('ci &lt;b&gt;');
    // The key works against the API, and the page never shows its secret again.
    const whoami = await fetch(`${reg.url}/api/v1/whoami`, { headers: { Authorization: `Basic ${Buffer.from(`bob:${token}`).toString('base64')}` } });
    expect(whoami.status).toBe(200);
    const again = await (await fetch(`${reg.url}/ui/keys`, { headers: { Cookie: cookie } })).text();
    expect(again).not.toContain(token!);
    const id = token!.slice(4).split('_')[0]!;
    expect(again).toContain(id);
    expect((await post('/ui/keys/revoke', cookie, { id, csrf })).status).toBe(303);
    const after = await fetch(`${reg.url}/api/v1/whoami`, { headers: { Authorization: `Basic ${Buffer.from(`bob:${token}`).toString('base64')}` } });
    expect(after.status).toBe(401);
  });

  it('a cross-origin form post is refused even with the session cookie', async () => {
    const cookie = cookieOf(await login('bob'));
    const csrf = csrfOf(await (await fetch(`${reg.url}/ui/keys`, { headers: { Cookie: cookie } })).text());
    const res = await fetch(`${reg.url}/ui/keys`, { method: 'POST', body: new URLSearchParams({ name: 'x', scope: 'read', csrf }), headers: { Cookie: cookie, Origin: 'https://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(403);
  });

  it('sign-out ends the session: the cookie no longer signs anything in', async () => {
    const cookie = cookieOf(await login('bob'));
    const csrf = csrfOf(await (await fetch(`${reg.url}/ui/keys`, { headers: { Cookie: cookie } })).text());
    expect((await post('/ui/logout', cookie, { csrf })).status).toBe(303);
    expect((await fetch(`${reg.url}/ui/keys`, { headers: { Cookie: cookie }, redirect: 'manual' })).status).toBe(303);
    // The session key behind the cookie is revoked too.
    const token = decodeURIComponent(cookie.split('=')[1]!);
    expect((await fetch(`${reg.url}/api/v1/whoami`, { headers: { Authorization: `Basic ${Buffer.from(`bob:${token}`).toString('base64')}` } })).status).toBe(401);
  });

  it('an administrator sees the event log (through the events API); another user is refused there', async () => {
    const admin = cookieOf(await login('alice'));
    await pushImage(reg.url, 'alice/app', 'v1', {}, { Authorization: `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}` });
    const events = await (await fetch(`${reg.url}/ui/events?after=0`, { headers: { Cookie: admin } })).text();
    expect(events).toContain('oci.manifest.push');
    expect(events).toContain('/ui/static/events.js');
    const bob = cookieOf(await login('bob'));
    const refused = await (await fetch(`${reg.url}/ui/events?after=0`, { headers: { Cookie: bob } })).text();
    expect(refused).not.toContain('oci.manifest.push');
    expect(refused).toContain('role="alert"');
  });

  it('stars from the repository page need the CSRF token and land once per user', async () => {
    const cookie = cookieOf(await login('alice'));
    const page = await (await fetch(`${reg.url}/ui/r/alice/app`, { headers: { Cookie: cookie } })).text();
    expect(page).toContain('0 stars');
    expect((await post('/ui/star', cookie, { repository: 'alice/app', star: 'true' })).status).toBe(403);
    expect((await post('/ui/star', cookie, { repository: 'alice/app', star: 'true', csrf: csrfOf(page) })).status).toBe(303);
    expect((await post('/ui/star', cookie, { repository: 'alice/app', star: 'true', csrf: csrfOf(page) })).status).toBe(303);
    expect(await (await fetch(`${reg.url}/ui/r/alice/app`, { headers: { Cookie: cookie } })).text()).toMatch(/\b1 star\b(?!s)/);
  });
});

describe('UI governance pages (auth: none)', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry();
  });
  afterAll(async () => {
    await reg.stop();
  });

  it('bundles page lists states and opens a bundle history; families catalogue lists entries', async () => {
    expect((await api(reg.url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0' } })).status).toBe(200);
    const b = await pushBundle(reg.url, 'ml/ranker', bundleConfig('ranker', '1.0.0'));
    await pushReceipt(reg.url, 'ml/ranker', b, passReceipt());
    const r = await api(reg.url, 'POST', '/api/v1/bundles', { repository: 'ml/ranker', digest: b.digest });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const list = await (await fetch(`${reg.url}/ui/bundles`)).text();
    expect(list).toContain('ranker@1.0.0');
    expect(list).toContain('REGISTERED');
    const detail = await (await fetch(`${reg.url}/ui/bundles?id=ranker&version=1.0.0`)).text();
    expect(detail).toContain('History of ranker@1.0.0');
    expect(detail).toMatch(/<li><strong>[a-z.]+<\/strong>[^<]*REGISTERED/);
    const fams = await (await fetch(`${reg.url}/ui/families`)).text();
    expect(fams).toContain('audit-action');
    const actions = await (await fetch(`${reg.url}/ui/families?family=audit-action`)).text();
    expect(actions).toContain('search.star.add');
  });

  it('the event log page follows the changefeed live through /ui/events/stream (same-origin, for the page script)', async () => {
    const ac = new AbortController();
    const res = await fetch(`${reg.url}/ui/events/stream?after=0`, { signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('event: event')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toMatch(/id: \d+/);
    ac.abort();
    const js = await fetch(`${reg.url}/ui/static/events.js`);
    expect(js.headers.get('content-type')).toContain('javascript');
    expect(await js.text()).toContain('textContent'); // rows are built as text, never HTML
  });
});
