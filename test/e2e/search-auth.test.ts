/**
 * Privacy with auth: token. A private repository's name never reaches another user or an
 * anonymous caller: not in search results, not in facet counts, not on UI pages, not as a badge
 * (404, exactly like a name that does not exist). Its owner and members see it everywhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
const olive = basic('olive', PASSWORD);
const oscar = basic('oscar', PASSWORD);
const SECRET = 'zanzibar'; // a word only in the private repository's name and title

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (_ids, s) => {
    const oliveId = await s.user('olive');
    await s.user('oscar');
    await s.user('mary');
    s.org('acme', oliveId);
    s.member('acme', 'mary', 'reader');
  });
  await pushImage(reg.url, `acme/${SECRET}-service`, 'v1', { annotations: { 'org.opencontainers.image.title': `${SECRET} internal service` } }, { Authorization: olive });
  await pushImage(reg.url, 'acme/open', 'v1', { annotations: { 'org.opencontainers.image.title': 'open service' } }, { Authorization: olive });
  const vis = await fetch(`${reg.url}/api/v1/repositories/visibility`, { method: 'PUT', headers: { Authorization: olive, 'Content-Type': 'application/json' }, body: JSON.stringify({ repository: 'acme/open', visibility: 'public' }) });
  expect(vis.status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

const as = (auth: string | undefined) => (auth ? { Authorization: auth } : {});
async function searchText(auth: string | undefined, query: string): Promise<string> {
  const res = await fetch(`${reg.url}/api/v1/search?${query}`, { headers: as(auth) });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return text;
}

describe('search never leaks private names', () => {
  it('owner and members find the private repository; others and anonymous callers do not, by any query', async () => {
    for (const who of [olive, basic('mary', PASSWORD)]) expect(await searchText(who, `q=${SECRET}`)).toContain(`acme/${SECRET}-service`);
    for (const who of [oscar, undefined]) {
      for (const q of [`q=${SECRET}`, 'q=service', 'q=acme', '', 'namespace=acme', 'sort=name', 'q=v1', 'annotation.org.opencontainers.image.title=' + SECRET + '+internal+service']) {
        const text = await searchText(who, q);
        expect(text, `${q}`).not.toContain(SECRET);
      }
      const body = JSON.parse(await searchText(who, 'namespace=acme')) as { total: number; facets: { namespace: { value: string; count: number }[] } };
      // Counts cover exactly what the caller may pull: the public repository only.
      expect(body.total).toBe(1);
      expect(body.facets.namespace).toEqual([{ value: 'acme', count: 1 }]);
    }
  });

  it('a visibility change applies to the next search at once', async () => {
    const setVis = async (visibility: string) => {
      const res = await fetch(`${reg.url}/api/v1/repositories/visibility`, { method: 'PUT', headers: { Authorization: olive, 'Content-Type': 'application/json' }, body: JSON.stringify({ repository: 'acme/open', visibility }) });
      expect(res.status).toBe(200);
    };
    const anonymousTotal = async () => (JSON.parse(await searchText(undefined, 'namespace=acme')) as { total: number }).total;
    await setVis('private');
    expect(await anonymousTotal()).toBe(0);
    expect(await searchText(oscar, 'q=open')).not.toContain('acme/open');
    await setVis('public');
    expect(await anonymousTotal()).toBe(1);
  });

  it('UI pages: search results and the repository page hide it (404 like a missing name)', async () => {
    for (const who of [oscar, undefined]) {
      // The query itself is echoed in the search box; the repository never is.
      const search = await fetch(`${reg.url}/ui/?q=${SECRET}`, { headers: as(who) });
      expect(search.status).toBe(200);
      const text = await search.text();
      expect(text).not.toContain(`acme/${SECRET}`);
      expect(text).toContain('0 results');
      for (const q of ['service', 'acme', '']) {
        const page = await (await fetch(`${reg.url}/ui/?q=${q}`, { headers: as(who) })).text();
        expect(page, q).not.toContain(SECRET);
        expect(page, q).toContain('acme/open');
      }
      const page = await fetch(`${reg.url}/ui/r/acme/${SECRET}-service`, { headers: as(who) });
      const missing = await fetch(`${reg.url}/ui/r/acme/does-not-exist`, { headers: as(who) });
      expect(page.status).toBe(404);
      expect(missing.status).toBe(404);
      expect(await page.text()).toEqual((await missing.text()).replace('does-not-exist', `${SECRET}-service`));
    }
    const own = await fetch(`${reg.url}/ui/r/acme/${SECRET}-service`, { headers: as(olive) });
    expect(own.status).toBe(200);
    expect(await own.text()).toContain(`${SECRET} internal service`.split(' ')[0]);
    const pub = await fetch(`${reg.url}/ui/r/acme/open`);
    expect(pub.status).toBe(200);
  });

  it('badges: 404 to others (same bytes as a missing repository), 200 to the owner and for public repositories', async () => {
    for (const badge of ['health', 'signed', 'downloads', 'stars']) {
      for (const who of [oscar, undefined]) {
        const res = await fetch(`${reg.url}/badges/acme/${SECRET}-service/${badge}.svg`, { headers: as(who) });
        const missing = await fetch(`${reg.url}/badges/acme/nope/${badge}.svg`, { headers: as(who) });
        expect(res.status).toBe(404);
        expect(await res.text()).toEqual(await missing.text());
      }
      const own = await fetch(`${reg.url}/badges/acme/${SECRET}-service/${badge}.svg`, { headers: as(olive) });
      expect(own.status).toBe(200);
      expect(own.headers.get('content-type')).toContain('image/svg+xml');
      expect((await fetch(`${reg.url}/badges/acme/open/${badge}.svg`)).status).toBe(200);
    }
    expect((await fetch(`${reg.url}/badges/acme/open/unknown.svg`)).status).toBe(404);
  });

  it('usage and stars: others cannot read or star the private repository; the owner can', async () => {
    const q = `repository=acme/${SECRET}-service`;
    expect((await fetch(`${reg.url}/api/v1/usage?${q}`, { headers: as(oscar) })).status).toBe(403);
    expect((await fetch(`${reg.url}/api/v1/stars?${q}`, { method: 'PUT', headers: as(oscar) })).status).toBe(403);
    expect((await fetch(`${reg.url}/api/v1/stars?repository=acme/open`, { method: 'PUT' })).status).toBe(401);
    const starred = await fetch(`${reg.url}/api/v1/stars?${q}`, { method: 'PUT', headers: as(olive) });
    expect(starred.status).toBe(200);
    expect(await starred.json()).toMatchObject({ stars: 1, starred: true });
    // Twice is still one star.
    expect(await (await fetch(`${reg.url}/api/v1/stars?${q}`, { method: 'PUT', headers: as(olive) })).json()).toMatchObject({ stars: 1 });
    expect(await (await fetch(`${reg.url}/api/v1/stars?${q}`, { method: 'DELETE', headers: as(olive) })).json()).toMatchObject({ stars: 0, starred: false });
  });
});
