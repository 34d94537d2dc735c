/**
 * Admin pages for users and organisations: they act through the management API as the signed-in
 * user, need the session and its CSRF token for every change, and show a non-administrator
 * neither the user list nor organisations they are not in. Deleting a user or an organisation
 * takes a confirmation page whose form repeats the name; refusals show the server's reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { cookieOf, csrfOf, uiClient } from '../helpers/ui.js';

describe('UI admin pages (auth: token)', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ auth: 'token' });
    await withIdentities(reg.dataDir, async (_ids, s) => {
      await s.user('alice', true);
      await s.user('bob');
      await s.user('dave');
    });
  });
  afterAll(async () => {
    await reg.stop();
  });

  const { login, get, post } = uiClient(() => reg.url);

  it('pages need a session', async () => {
    for (const path of ['/ui/admin/users', '/ui/admin/orgs']) expect((await fetch(`${reg.url}${path}`, { redirect: 'manual' })).status, path).toBe(303);
  });

  it('an administrator lists users, creates one (CSRF required), disables and re-enables another', async () => {
    const admin = cookieOf(await login('alice'));
    const page = await (await get('/ui/admin/users', admin)).text();
    expect(page).toContain('>bob<');
    expect(page).toMatch(/<label for="user-name">/); // labelled form controls
    expect(page).toContain('aria-label="Disable user bob"');
    const csrf = csrfOf(page);
    expect((await post('/ui/admin/users', admin, { name: 'carol', password: PASSWORD })).status).toBe(403);
    expect((await login('carol')).status).toBe(401);
    const created = await post('/ui/admin/users', admin, { name: 'carol', password: PASSWORD, csrf });
    expect(created.status).toBe(201);
    expect(await created.text()).toContain('User carol created.');
    expect((await login('carol')).status).toBe(303);
    // A too-short password is the API's 400, shown as an alert, nothing created.
    const bad = await post('/ui/admin/users', admin, { name: 'erin', password: 'short', csrf });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('role="alert"');

    expect((await post('/ui/admin/users/disabled', admin, { name: 'bob', disabled: 'true' })).status).toBe(403);
    expect((await post('/ui/admin/users/disabled', admin, { name: 'bob', disabled: 'true', csrf })).status).toBe(303);
    expect((await login('bob')).status).toBe(401);
    expect(await (await get('/ui/admin/users', admin)).text()).toContain('aria-label="Enable user bob"');
    expect((await post('/ui/admin/users/disabled', admin, { name: 'bob', disabled: 'false', csrf })).status).toBe(303);
    expect((await login('bob')).status).toBe(303);
  });

  it('a non-administrator may not list or create users', async () => {
    const bob = cookieOf(await login('bob'));
    const res = await get('/ui/admin/users', bob);
    expect(res.status).toBe(403);
    const text = await res.text();
    expect(text).not.toContain('>dave<');
    const csrf = csrfOf(await (await get('/ui/keys', bob)).text());
    expect((await post('/ui/admin/users', bob, { name: 'mallory', password: PASSWORD, csrf })).status).toBe(403);
    expect((await login('mallory')).status).toBe(401);
  });

  it('organisations: create, add a member, list members; only members see the organisation', async () => {
    const admin = cookieOf(await login('alice'));
    const csrf = csrfOf(await (await get('/ui/admin/orgs', admin)).text());
    expect((await post('/ui/admin/orgs', admin, { name: 'team' })).status).toBe(403);
    const created = await post('/ui/admin/orgs', admin, { name: 'team', csrf });
    expect(created.status).toBe(201);
    expect((await post('/ui/admin/orgs/member', admin, { org: 'team', user: 'bob', role: 'reader', csrf })).status).toBe(303);
    const members = await (await get('/ui/admin/orgs?org=team', admin)).text();
    expect(members).toContain('Members of team');
    expect(members).toMatch(/<td>bob<\/td><td>reader<\/td>/);
    expect(members).toMatch(/<td>alice<\/td><td>owner<\/td>/);
    const bob = cookieOf(await login('bob'));
    expect(await (await get('/ui/admin/orgs', bob)).text()).toContain('?org=team');
    const dave = cookieOf(await login('dave'));
    const daveList = await (await get('/ui/admin/orgs', dave)).text();
    expect(daveList).not.toContain('?org=team');
    const daveMembers = await (await get('/ui/admin/orgs?org=team', dave)).text();
    expect(daveMembers).not.toContain('<td>bob</td>');
    expect(daveMembers).toContain('role="alert"');
    // Removing a member through the page.
    expect((await post('/ui/admin/orgs/member', admin, { org: 'team', user: 'bob', role: '', csrf })).status).toBe(303);
    expect(await (await get('/ui/admin/orgs', bob)).text()).not.toContain('?org=team');
  });

  it('organisation pages are full for a member of a few of many: filtered and paged in SQL', async () => {
    await withIdentities(reg.dataDir, async (_ids, s) => {
      const owner = await s.user('olga');
      await s.user('erin');
      for (let i = 0; i < 120; i++) s.org(`org${String(i).padStart(3, '0')}`, owner);
      for (const o of ['org110', 'org115', 'org119']) s.member(o, 'erin', 'reader');
    });
    const orgLinks = (page: string) => [...page.matchAll(/\?org=(org\d{3})"/g)].map((m) => m[1]);
    const nextOf = (page: string) => /href="([^"]*)" rel="next"/.exec(page)?.[1]?.replace(/&amp;/g, '&');
    // erin: her three organisations on the first page, no further page (they were past 110 others).
    const erin = cookieOf(await login('erin'));
    const first = await (await get('/ui/admin/orgs', erin)).text();
    expect(orgLinks(first)).toEqual(['org110', 'org115', 'org119']);
    expect(nextOf(first)).toBeUndefined();
    // The administrator pages through all of them, 50 a page.
    const admin = cookieOf(await login('alice'));
    const seen: string[] = [];
    let path: string | undefined = '/ui/admin/orgs';
    let pages = 0;
    while (path) {
      const page = await (await get(path, admin)).text();
      const links = orgLinks(page);
      expect(links.length).toBeLessThanOrEqual(50);
      seen.push(...links);
      path = nextOf(page);
      pages++;
    }
    expect(seen).toHaveLength(120);
    expect(pages).toBe(3);
  });

  it('deleting users and organisations: confirmation page, CSRF and the typed name required, refusals say why', async () => {
    await withIdentities(reg.dataDir, async (ids, s) => {
      await s.user('gina'); // nothing under her name: deletable
      s.org('solo', await s.user('owen')); // owen alone owns solo: refused
      await s.user('zara'); // content under zara/: refused
      s.org('bobs', ids.principalByName('bob')!.id);
      const alice = ids.principalByName('alice')!.id;
      s.org('empty', alice);
      s.org('full', alice);
    });
    await pushImage(reg.url, 'zara/app', 'v1', {}, { Authorization: basic('zara', PASSWORD) });
    await pushImage(reg.url, 'full/app', 'v1', {}, { Authorization: basic('alice', PASSWORD) });
    const admin = cookieOf(await login('alice'));
    const gina = cookieOf(await login('gina'));
    expect((await get('/ui/keys', gina)).status).toBe(200);

    const list = await (await get('/ui/admin/users', admin)).text();
    expect(list).toContain('href="/ui/admin/users/delete?name=gina" aria-label="Delete user gina"');
    const confirm = await get('/ui/admin/users/delete?name=gina', admin);
    expect(confirm.status).toBe(200);
    const confirmPage = await confirm.text();
    expect(confirmPage).toContain('<label for="confirm-name">Type <code>gina</code> to confirm</label>');
    expect(confirmPage).not.toMatch(/<script(?! src=)/); // no inline script (CSP)
    const csrf = csrfOf(confirmPage);
    expect((await get('/ui/admin/users/delete?name=nobody', admin)).status).toBe(404);

    // No CSRF token, or the name not typed: refused, nothing deleted.
    expect((await post('/ui/admin/users/delete', admin, { name: 'gina', confirm: 'gina' })).status).toBe(403);
    const untyped = await post('/ui/admin/users/delete', admin, { name: 'gina', confirm: 'gin', csrf });
    expect(untyped.status).toBe(400);
    expect(await untyped.text()).toContain('role="alert">type the name &#39;gina&#39; to confirm the deletion');
    expect((await login('gina')).status).toBe(303);

    const deleted = await post('/ui/admin/users/delete', admin, { name: 'gina', confirm: 'gina', csrf });
    expect(deleted.status).toBe(200);
    const after = await deleted.text();
    expect(after).toMatch(/role="status">User gina deleted \(\d+ API keys revoked, 0 memberships removed\)\./); // web sessions hold keys too
    expect(after).not.toContain('>gina<');
    expect((await login('gina')).status).toBe(401);
    expect((await get('/ui/keys', gina)).status).toBe(303); // her web session went with her
    const events = (await (await fetch(`${reg.url}/api/v1/events?limit=1000`, { headers: { Authorization: basic('alice', PASSWORD) } })).json()) as { events: { action: string; actor: string; after: unknown }[] };
    const event = events.events.find((e) => e.action === 'identity.user.delete');
    expect(event?.after).toEqual({ user: 'gina' });
    expect(event?.actor).toContain('alice');

    // Refusals (409) show the reason, escaped, on the confirmation page; the account stays.
    const refusals: [string, string][] = [
      ['owen', 'role="alert">&#39;owen&#39; is the only owner of solo: give each another owner'],
      ['zara', 'role="alert">user &#39;zara&#39; still has repositories with content (zara/app)'],
      ['alice', 'role="alert">administrators cannot delete themselves'],
    ];
    for (const [name, message] of refusals) {
      const res = await post('/ui/admin/users/delete', admin, { name, confirm: name, csrf });
      expect(res.status, name).toBe(409);
      expect(await res.text(), name).toContain(message);
      expect((await login(name)).status, name).toBe(303);
    }

    // A non-administrator: no confirmation page, no deletion (with a valid CSRF token of their own).
    const bob = cookieOf(await login('bob'));
    const bobCsrf = csrfOf(await (await get('/ui/keys', bob)).text());
    expect((await get('/ui/admin/users/delete?name=dave', bob)).status).toBe(403);
    expect((await post('/ui/admin/users/delete', bob, { name: 'dave', confirm: 'dave', csrf: bobCsrf })).status).toBe(403);
    expect((await login('dave')).status).toBe(303);
    // Owning an organisation is not enough to delete it (administrators only, as DELETE /api/v1/orgs/{org}).
    expect(await (await get('/ui/admin/orgs?org=bobs', bob)).text()).not.toContain('Delete organisation');
    expect((await get('/ui/admin/orgs/delete?org=bobs', bob)).status).toBe(403);
    expect((await post('/ui/admin/orgs/delete', bob, { org: 'bobs', confirm: 'bobs', csrf: bobCsrf })).status).toBe(403);
    expect(await (await get('/ui/admin/orgs', bob)).text()).toContain('?org=bobs');

    // Organisations.
    expect(await (await get('/ui/admin/orgs?org=empty', admin)).text()).toContain('href="/ui/admin/orgs/delete?org=empty" aria-label="Delete organisation empty"');
    const orgConfirm = await (await get('/ui/admin/orgs/delete?org=empty', admin)).text();
    expect(orgConfirm).toContain('<input type="hidden" name="org" value="empty">');
    expect((await post('/ui/admin/orgs/delete', admin, { org: 'empty', confirm: 'empty' })).status).toBe(403);
    const full = await post('/ui/admin/orgs/delete', admin, { org: 'full', confirm: 'full', csrf });
    expect(full.status).toBe(409);
    expect(await full.text()).toContain('role="alert">organisation &#39;full&#39; still has repositories with content (full/app)');
    const gone = await post('/ui/admin/orgs/delete', admin, { org: 'empty', confirm: 'empty', csrf });
    expect(gone.status).toBe(200);
    expect(await gone.text()).toContain('role="status">Organisation empty deleted (1 memberships removed).');
    expect(await (await get('/ui/admin/orgs?org=empty', admin)).text()).toContain('No such organisation');
    expect(await (await get('/ui/admin/orgs?org=full', admin)).text()).toContain('Members of full');
  });
});
