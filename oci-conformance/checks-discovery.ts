// Content discovery: tags list (order, n/last pagination, Link), unknown repository, _catalog.

import { ensure, equal, expectError, expectStatus, fail, show, skip } from './assert.js';
import type { HttpResponse } from './client.js';
import { MT, nextLink, type Check, type Context } from './context.js';

interface TagList {
  name: string;
  tags: string[];
}

function parseTags(res: HttpResponse, what: string): TagList {
  expectStatus(res, 200, what);
  const body = res.json() as { name?: unknown; tags?: unknown } | undefined;
  if (!body || typeof body !== 'object') fail(`${what}: body is not a JSON object: ${show(res.text())}`);
  if (typeof body.name !== 'string') fail(`${what}: "name" must be a string, got ${show(body.name)}`);
  const tags = body.tags;
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
    fail(`${what}: "tags" must be an array of strings, got ${show(tags)}`);
  }
  return { name: body.name, tags: tags as string[] };
}

/** Lexical order: ASCII ("ASCIIbetical") or case-insensitive; the spec has allowed both. */
function isSorted(list: string[]): boolean {
  const ascii = list.every((t, i) => i === 0 || list[i - 1]! < t);
  const folded = list.every((t, i) => i === 0 || list[i - 1]!.toLowerCase() <= t.toLowerCase());
  return ascii || folded;
}

/** Tags pushed for discovery: three extra tags on the base image. */
function discoveryTags(ctx: Context): Promise<string[]> {
  return ctx.once('discovery tags', async () => {
    const img = await ctx.image();
    const tags = ['d1', 'd2', 'd3'].map((s) => ctx.tag(s));
    for (const t of tags) expectStatus(await ctx.putManifest(ctx.repo, t, img.manifest, MT.ociManifest), 201, `PUT tag ${t}`);
    return [...img.tags, ...tags];
  });
}

const tagsPath = (ctx: Context, query = '') => `/v2/${ctx.repo}/tags/list${query}`;

/** The whole tag list, following Link headers if the registry paginates on its own. */
async function allTags(ctx: Context): Promise<string[]> {
  let res = await ctx.request('GET', tagsPath(ctx));
  const out = parseTags(res, 'GET tags/list').tags;
  for (let page = 0; page < 100; page++) {
    const next = nextLink(res.headers.get('link'), res.url);
    if (!next) break;
    res = await ctx.request('GET', next.toString());
    out.push(...parseTags(res, 'GET tags/list (next page)').tags);
  }
  return out;
}

export const discoveryChecks: Check[] = [
  {
    name: 'tags list: 200 {"name","tags"} in lexical order, containing the pushed tags',
    workflow: 'content-discovery',
    async run(ctx) {
      const pushed = await discoveryTags(ctx);
      const res = await ctx.request('GET', tagsPath(ctx));
      const list = parseTags(res, 'GET tags/list');
      equal(list.name, ctx.repo, 'tags list "name"');
      ensure(isSorted(list.tags), `tags are not in lexical order: ${show(list.tags)}`);
      const all = await allTags(ctx);
      const missing = pushed.filter((t) => !all.includes(t));
      ensure(missing.length === 0, `tags list lacks pushed tags ${show(missing)}`);
      return `${all.length} tags`;
    },
  },
  {
    name: 'tags list ?n=2 returns the first 2 tags; ?last=<2nd> returns the rest',
    workflow: 'content-discovery',
    async run(ctx) {
      await discoveryTags(ctx);
      const all = await allTags(ctx);
      ensure(all.length >= 3, `need at least 3 tags, have ${all.length}`);
      const first = parseTags(await ctx.request('GET', tagsPath(ctx, '?n=2')), 'GET tags/list?n=2').tags;
      ensure(first.length === 2, `tags/list?n=2 returned ${first.length} tags (of ${all.length}): n is not honoured`);
      equal(JSON.stringify(first), JSON.stringify(all.slice(0, 2)), 'tags/list?n=2');
      const q = `?n=${all.length}&last=${encodeURIComponent(all[1]!)}`;
      const rest = parseTags(await ctx.request('GET', tagsPath(ctx, q)), `GET tags/list${q}`).tags;
      equal(JSON.stringify(rest), JSON.stringify(all.slice(2)), `tags/list${q}`);
    },
  },
  {
    name: 'tags list ?n=2 sends Link rel="next" (n=2&last=...) and following Links walks the whole list',
    workflow: 'content-discovery',
    optional: true,
    async run(ctx) {
      await discoveryTags(ctx);
      const all = await allTags(ctx);
      let res = await ctx.request('GET', tagsPath(ctx, '?n=2'));
      const seen = parseTags(res, 'GET tags/list?n=2').tags;
      const link = nextLink(res.headers.get('link'), res.url);
      if (!link) skip('no Link header on a partial page (the spec allows omitting it)');
      equal(link.searchParams.get('n'), '2', 'Link next: n');
      equal(link.searchParams.get('last'), seen[seen.length - 1], 'Link next: last');
      for (let next: URL | null = link, i = 0; next && i < 1000; i++) {
        res = await ctx.request('GET', next.toString());
        const page = parseTags(res, `GET ${next.pathname}${next.search}`).tags;
        ensure(page.length <= 2, `page has ${page.length} tags with n=2`);
        seen.push(...page);
        next = nextLink(res.headers.get('link'), res.url);
      }
      equal(JSON.stringify(seen), JSON.stringify(all), 'tags walked through Link headers');
    },
  },
  {
    name: 'tags list ?n=0 returns an empty list without Link',
    workflow: 'content-discovery',
    optional: true,
    async run(ctx) {
      await discoveryTags(ctx);
      const res = await ctx.request('GET', tagsPath(ctx, '?n=0'));
      if (res.status === 400) skip('registry rejects n=0 with 400 (older behaviour)');
      const list = parseTags(res, 'GET tags/list?n=0');
      if (list.tags.length > 0) skip(`registry treats n=0 as "no limit" (${list.tags.length} tags; newer spec wants none)`);
      equal(res.headers.get('link'), null, 'tags/list?n=0 Link header');
    },
  },
  {
    name: 'tags list of an unknown repository: 404 NAME_UNKNOWN',
    workflow: 'content-discovery',
    async run(ctx) {
      const res = await ctx.request('GET', `/v2/${ctx.repo}/absent-${ctx.run}/tags/list`);
      expectError(res, 404, ['NAME_UNKNOWN'], 'GET tags/list of unknown repository');
    },
  },
  {
    name: '_catalog lists the repository; ?n=1 paginates with Link rel="next"',
    workflow: 'content-discovery',
    optional: true,
    async run(ctx) {
      await ctx.image();
      let res = await ctx.request('GET', '/v2/_catalog');
      if ([401, 403, 404, 405].includes(res.status)) skip(`_catalog not offered (answered ${res.status})`);
      const repos = (r: HttpResponse, what: string): string[] => {
        expectStatus(r, 200, what);
        const list = (r.json() as { repositories?: unknown } | undefined)?.repositories;
        if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
          fail(`${what}: "repositories" must be an array of strings, got ${show(r.text())}`);
        }
        return list as string[];
      };
      const seen = repos(res, 'GET _catalog');
      for (let i = 0; !seen.includes(ctx.repo) && i < 50; i++) {
        const next = nextLink(res.headers.get('link'), res.url);
        if (!next) break;
        res = await ctx.request('GET', next.toString());
        seen.push(...repos(res, 'GET _catalog (next page)'));
      }
      ensure(seen.includes(ctx.repo), `_catalog does not list ${ctx.repo}`);
      if (seen.length < 2) return 'single repository: pagination not exercised';
      const one = await ctx.request('GET', '/v2/_catalog?n=1');
      const page = repos(one, 'GET _catalog?n=1');
      equal(page.length, 1, '_catalog?n=1 size');
      const link = nextLink(one.headers.get('link'), one.url);
      if (!link) fail('_catalog?n=1: no Link rel="next" although several repositories exist');
      equal(link.searchParams.get('last'), page[0], '_catalog Link next: last');
      const second = repos(await ctx.request('GET', link.toString()), 'GET _catalog next page');
      ensure(second.length >= 1 && second[0]! > page[0]!, `_catalog next page ${show(second)} does not follow ${page[0]}`);
    },
  },
];
