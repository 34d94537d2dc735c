/**
 * The SQL form of "what the caller may pull" that search counts with (search/index.ts
 * readableFor: public, or the caller's namespaces; a bearer token's pull grants) gives exactly the answers of the evaluator
 * deciding every row: same results, totals and facets, for anonymous callers, users with and
 * without organisations, API keys (narrowed to patterns or not) and bearer tokens, over random
 * visibility. And when the evaluator refuses a row the SQL form let through (a divergence), the
 * search is answered by the evaluator alone: the refused repository is never returned.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Caller } from '../../src/auth/authenticate.js';
import { decide } from '../../src/auth/capabilities.js';
import type { Principal } from '../../src/auth/permissions.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { readableFor } from '../../src/search/index.js';
import { parseSearchQuery } from '../../src/search/query.js';
import { SearchStore } from '../../src/search/store.js';

const NAMESPACES = ['alice', 'acme', 'beta', 'zed'];
const REPOS = NAMESPACES.flatMap((ns) => [`${ns}/app`, `${ns}/service-one`, `${ns}/service-two`]);
const MODEL = 'application/vnd.example.model.v1';
const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

let db: Db;
let store: SearchStore;

beforeAll(() => {
  // :memory: is SQLite even in the suite's PostgreSQL run; a data dir's path is a pg schema there.
  db = openDatabase(process.env.ARTIFACT_STORE_TEST_POSTGRES_URL ? join(mkdtempSync(join(tmpdir(), 'search-scope-')), 'metadata.db') : ':memory:');
  const s = db.$client;
  const add = s.prepare("INSERT INTO manifests(repository_id, digest, media_type, payload, size, artifact_type, subject, annotations, created_at) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', ?, 1, ?, ?, ?, ?)");
  const addManifest = { run: (repo: number, digest: string, ...rest: unknown[]) => add.run(repo, digest, Buffer.from([0]), ...rest) };
  const addTag = s.prepare('INSERT INTO tags(repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)');
  let n = 0;
  REPOS.forEach((name, r) => {
    s.prepare('INSERT INTO repositories(name) VALUES (?)').run(name);
    for (let i = 0; i < 3; i++) {
      n++;
      addManifest.run(r + 1, digestOf(n), n % 4 === 0 ? MODEL : null, null, JSON.stringify({ 'org.opencontainers.image.title': `shared word ${i === 0 ? 'first' : 'later'}` }), 1_700_000_000_000 + n);
      addTag.run(r + 1, `v${i}`, digestOf(n), 1_700_000_000_000 + n);
    }
    // A referrer in each repository: hidden unless asked for, in every path.
    n++;
    addManifest.run(r + 1, digestOf(n), 'application/vnd.dev.cosign.artifact.sig.v1+json', digestOf(n - 1), null, 1_700_000_000_000 + n);
  });
  store = new SearchStore(db);
});
afterAll(() => db.$client.close());

const principal = (name: string, roles: [string, 'owner' | 'reader'][], key?: Principal['key']): Principal => ({ id: 1, name, isAdmin: false, roles: new Map(roles), ...(key ? { key } : {}) });
const callers: [string, Caller][] = [
  ['anonymous', { principal: null, actor: 'anonymous', bucket: 'ip:x' }],
  ['alice alone', { principal: principal('alice', []), actor: 'alice', bucket: 'u' }],
  ['bob in acme and beta', { principal: principal('bob', [['acme', 'reader'], ['beta', 'owner']]), actor: 'bob', bucket: 'u' }],
  ['alice, key for everything', { principal: principal('alice', [['acme', 'owner']], { id: 'k', scopes: ['read'], repositories: null, expiresAt: null }), actor: 'alice', bucket: 'u' }],
  ['alice, key for acme/service-*', { principal: principal('alice', [['acme', 'owner']], { id: 'k', scopes: ['publish'], repositories: ['acme/*'], expiresAt: null }), actor: 'alice', bucket: 'u' }],
  ['token for two names', { principal: principal('bob', []), grants: [{ type: 'repository', name: 'zed/app', actions: ['pull'] }, { type: 'repository', name: 'beta/app', actions: ['push'] }], actor: 'bob', bucket: 'u' }],
];
const QUERIES = ['', 'q=service', 'q=shared+word', 'q=first', `type=${MODEL}`, 'namespace=acme', 'q=app&sort=name', 'sort=name', 'q=word&sort=updated', 'signed=true', 'q=shared&include=referrers', 'per_page=2&page=3', 'q=shared&per_page=3&page=2'];

const pullCheck = (caller: Caller) => (repository: string, isPublic: boolean) => decide(caller, { kind: 'repository', repository, action: 'pull' }, () => isPublic).allowed;

describe('search counts with SQL exactly what the evaluator allows', () => {
  it('same results, totals and facets as the evaluator deciding every row, for any visibility', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: REPOS.length, maxLength: REPOS.length }), (publicFlags) => {
        db.$client.prepare('DELETE FROM repository_visibility').run();
        const setVis = db.$client.prepare("INSERT INTO repository_visibility(name, visibility) VALUES (?, 'public')");
        REPOS.forEach((name, i) => publicFlags[i] && setVis.run(name));
        for (const [label, caller] of callers) {
          const canPull = pullCheck(caller);
          for (const qs of QUERIES) {
            const query = parseSearchQuery(new URLSearchParams(qs));
            const viaSql = store.search(query, canPull, readableFor(caller));
            const perRow = store.search(query, canPull, undefined);
            expect(viaSql, `${label}: ${qs}`).toEqual(perRow);
            for (const hit of viaSql.results) expect(canPull(hit.repository, publicFlags[REPOS.indexOf(hit.repository)]!), `${label}: ${qs}`).toBe(true);
          }
        }
      }),
      { numRuns: 25 },
    );
  });

  it('a row the evaluator refuses is never returned, even when the SQL form let it through', () => {
    db.$client.prepare('DELETE FROM repository_visibility').run();
    const bob = callers[2]![1];
    const allowed = pullCheck(bob);
    // A divergence on purpose: the evaluator refuses acme/app although bob reads acme.
    const canPull = (repository: string, isPublic: boolean) => repository !== 'acme/app' && allowed(repository, isPublic);
    for (const qs of ['q=app', 'namespace=acme', 'q=first&sort=name', '']) {
      const r = store.search(parseSearchQuery(new URLSearchParams(`${qs}&per_page=100`)), canPull, readableFor(bob));
      expect(r.results.map((h) => h.repository), qs).not.toContain('acme/app');
      expect(JSON.stringify(r), qs).not.toContain('"acme/app"');
      expect(r, qs).toEqual(store.search(parseSearchQuery(new URLSearchParams(`${qs}&per_page=100`)), canPull, undefined));
    }
  });
});
