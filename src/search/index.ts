/**
 * Search and usage signals (issue #16): `GET /api/v1/search`, stars, download counts.
 * The index itself is maintained by SQL triggers (drizzle/0011_search.sql); this module reads
 * it, filtered to what the caller may pull.
 */
import type { Context } from 'hono';
import type { Caller } from '../auth/authenticate.js';
import { decide } from '../auth/capabilities.js';
import { isDigest } from '../core/digest.js';
import { isValidName, isValidTag } from '../core/names.js';
import { ociError } from '../errors/catalogue.js';
import type { ModuleDeps } from '../governance/module.js';
import type { AppEnv } from '../http/env.js';
import { parseSearchQuery } from './query.js';
import { SearchStore, type Readable, type SearchResult } from './store.js';
import { DownloadCounter, StarStore } from './usage.js';

export { SearchStore } from './store.js';
export { parseSearchQuery } from './query.js';

const FLUSH_INTERVAL_MS = 5_000;

export interface SearchModule {
  store: SearchStore;
  downloads: DownloadCounter;
  stars: StarStore;
  /** Runs a search as the request's caller sees it. */
  searchAs(c: Context<AppEnv>, params: URLSearchParams): SearchResult;
  /** Flushes pending download counts and stops the flush timer. */
  stop(): Promise<void>;
}

export function repositoryParam(c: Context<AppEnv>): string {
  const repository = c.req.query('repository') ?? '';
  if (!isValidName(repository)) throw ociError('INVALID_PAYLOAD', 'repository: not a valid repository name', { detail: [{ path: '$.repository', message: 'invalid' }] });
  return repository;
}

/**
 * What a non-administrator may pull, as SQL tests it (capabilities.ts decide, permissions.ts
 * allowedActions): public repositories, the user's own namespace and those of its organisations
 * — exactly (the rule of catalogScope), unless an API key narrows it to patterns or has no scope
 * (then a superset, and the evaluator decides every row). A bearer token: exactly the
 * repositories it grants pull on (public ones are not among them). Administrators' keys:
 * undefined, the evaluator alone.
 */
export function readableFor(caller: Caller): Readable | undefined {
  if (caller.grants) {
    const repositories = caller.grants.filter((g) => g.type === 'repository' && (g.actions.includes('pull') || g.actions.includes('*'))).map((g) => g.name);
    return { namespaces: [], repositories: [...new Set(repositories)], publicToo: false, exact: true };
  }
  const p = caller.principal;
  if (!p) return { namespaces: [], exact: true };
  if (p.isAdmin) return undefined;
  const unnarrowed = !p.key || (p.key.repositories === null && p.key.scopes.length > 0);
  return { namespaces: [p.name, ...p.roles.keys()], exact: unnarrowed };
}

export function registerSearch(deps: ModuleDeps): SearchModule {
  const { app, access, db } = deps;
  const store = new SearchStore(db);
  const downloads = new DownloadCounter(db);
  const stars = new StarStore(db);

  deps.governance.add({ name: 'search', checkPull: (t) => downloads.record(t.repository, t.digest, t.tag) });
  const timer = setInterval(() => {
    try {
      downloads.flush();
    } catch (err) {
      deps.log.warn({ err }, 'download counts not flushed; retrying next interval');
    }
  }, FLUSH_INTERVAL_MS);
  timer.unref();

  const searchAs = (c: Context<AppEnv>, params: URLSearchParams): SearchResult => {
    const query = parseSearchQuery(params);
    // An administrator may pull everything: no per-repository check needed.
    const everything = access.can(c, { kind: 'registry.admin' });
    // The one evaluator, with the repository's visibility read by the query's join.
    const caller = c.get('caller');
    const readable = readableFor(caller);
    return store.search(query, everything ? null : (repository, isPublic) => decide(caller, { kind: 'repository', repository, action: 'pull' }, () => isPublic).allowed, readable);
  };

  app.get('/api/v1/search', (c) => c.json(searchAs(c, new URL(c.req.url).searchParams)));

  const usage = (c: Context<AppEnv>, repository: string) => {
    const user = c.get('caller').principal?.name ?? null;
    const digest = c.req.query('digest');
    const tag = c.req.query('tag');
    if (digest !== undefined && !isDigest(digest)) throw ociError('INVALID_PAYLOAD', 'digest: not a digest', { detail: [{ path: '$.digest', message: 'invalid' }] });
    if (tag !== undefined && !isValidTag(tag)) throw ociError('INVALID_PAYLOAD', 'tag: not a valid tag', { detail: [{ path: '$.tag', message: 'invalid' }] });
    return {
      repository,
      downloads: downloads.count(repository),
      ...(digest ? { digestDownloads: downloads.count(repository, digest) } : {}),
      ...(tag ? { tagDownloads: downloads.count(repository, tag) } : {}),
      stars: stars.count(repository),
      starred: user !== null && stars.starredBy(repository, user),
    };
  };
  const star = (starred: boolean) => (c: Context<AppEnv>) => {
    const repository = repositoryParam(c);
    // Stars belong to an account; seeing the repository is the only right they need.
    access.require(c, { kind: 'account.read' });
    access.require(c, { kind: 'repository', repository, action: 'pull' });
    if (deps.store.repositoryId(repository) === undefined) throw ociError('NAME_UNKNOWN', undefined, { detail: { name: repository } });
    const caller = c.get('caller');
    stars.set(repository, caller.principal?.name ?? caller.actor, starred, c.get('actor'));
    return c.json(usage(c, repository));
  };
  app.put('/api/v1/stars', star(true));
  app.delete('/api/v1/stars', star(false));
  app.get('/api/v1/usage', (c) => {
    const repository = repositoryParam(c);
    access.require(c, { kind: 'repository', repository, action: 'pull' });
    return c.json(usage(c, repository));
  });

  return {
    store,
    downloads,
    stars,
    searchAs,
    async stop() {
      clearInterval(timer);
      downloads.flush();
    },
  };
}
