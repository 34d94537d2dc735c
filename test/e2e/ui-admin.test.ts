/**
 * Admin pages for users and organisations: they act through the management API as the signed-in
 * user, need the session and its CSRF token for every change, and show a non-administrator
 * neither the user list nor organisations they are not in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, withIdentities } from '../helpers/identities.js';
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
});
