/**
 * The search index is a pure function of the OCI tables: after any sequence of pushes, tag
 * moves, tag deletes and manifest deletes (random, fast-check), `search_docs` equals the
 * documents recomputed from scratch, the FTS table answers for every live tag and for no dead
 * one, and a write that rolls back leaves the index untouched (same transaction).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { parseSearchQuery } from '../../src/search/query.js';
import { FACET_SCAN, SearchStore } from '../../src/search/store.js';

const SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
let db: Db | undefined;
const PG = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
/** :memory: is SQLite even in the suite's PostgreSQL run; there a fresh data dir's path is its own pg schema. */
const freshDb = () => openDatabase(PG ? join(mkdtempSync(join(tmpdir(), 'search-index-')), 'metadata.db') : ':memory:');
/** Documents whose tags hold `tag` as a word (FTS5 column filter; on pg tags carry weight B, as only scope's public/referrer do besides). */
const tagHits = (d: Db, tag: string) =>
  PG
    ? (d.$client.prepare('SELECT count(*) FROM search_fts WHERE doc @@ ?::tsquery').pluck().get(`'${tag}':B`) as number)
    : (d.$client.prepare('SELECT count(*) FROM search_fts WHERE search_fts MATCH ?').pluck().get(`tags:"${tag}"`) as number);
afterEach(() => {
  db?.$client.close();
  db = undefined;
});

type Op =
  | { kind: 'push'; repo: number; m: number; tags: string[]; sigOf: number | null }
  | { kind: 'deleteTag'; repo: number; tag: string }
  | { kind: 'deleteManifest'; repo: number; m: number };

const tagArb = fc.constantFrom('latest', 'v1', 'v2', 'stable', 'dev');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('push' as const), repo: fc.integer({ min: 0, max: 2 }), m: fc.integer({ min: 1, max: 8 }), tags: fc.array(tagArb, { maxLength: 2 }), sigOf: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }) }),
  fc.record({ kind: fc.constant('deleteTag' as const), repo: fc.integer({ min: 0, max: 2 }), tag: tagArb }),
  fc.record({ kind: fc.constant('deleteManifest' as const), repo: fc.integer({ min: 0, max: 2 }), m: fc.integer({ min: 1, max: 8 }) }),
);

function apply(store: RegistryStore, op: Op): void {
  const repo = `ns${op.repo}/app`;
  const repoId = store.repositoryId(repo);
  if (op.kind === 'push') {
    const subject = op.sigOf !== null && op.sigOf !== op.m ? digestOf(op.sigOf) : null;
    store.putManifest(
      repo,
      { digest: digestOf(op.m), mediaType: 'application/vnd.oci.image.manifest.v1+json', payload: Buffer.from('{}'), size: op.m, artifactType: subject ? SIG : null, subject, annotations: { 'org.opencontainers.image.title': `title${op.m}` }, references: [] },
      op.tags,
      'test',
    );
  } else if (repoId !== undefined && op.kind === 'deleteTag') store.deleteTag(repo, repoId, op.tag, 'test');
  else if (repoId !== undefined && op.kind === 'deleteManifest') store.deleteManifest(repo, repoId, digestOf(op.m), 'test');
}

/** The index recomputed from the OCI tables (all tags: the test never exceeds the 50-tag cap). */
function expected(d: Db) {
  return d.$client
    .prepare(
      `SELECT r.name AS repository, m.digest, coalesce(m.artifact_type, m.media_type) AS type, m.subject,
         coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest ORDER BY name) AS x), '') AS tags,
         EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.subject = m.digest AND s.artifact_type = '${SIG}') AS signed
       FROM manifests m JOIN repositories r ON r.id = m.repository_id ORDER BY r.name, m.digest`,
    )
    .all();
}
function actual(d: Db) {
  const rows = d.$client.prepare('SELECT repository, digest, type, subject, tags, signed FROM search_docs ORDER BY repository, digest').all() as { tags: string }[];
  return rows.map((r) => ({ ...r, tags: r.tags.split(' ').filter(Boolean).sort().join(' ') }));
}

describe('search index consistency', () => {
  it('equals the recomputed documents after any sequence of writes', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        db?.$client.close();
        db = freshDb();
        const store = new RegistryStore(db);
        for (const op of ops) {
          try {
            apply(store, op);
          } catch {
            /* refused writes (e.g. deleting a manifest an index needs) change nothing */
          }
        }
        expect(actual(db)).toEqual(expected(db));
        // FTS answers for live tags only.
        const live = new Set((db.$client.prepare('SELECT DISTINCT name FROM tags').pluck().all() as string[]));
        for (const tag of ['latest', 'v1', 'v2', 'stable', 'dev']) expect(tagHits(db, tag) > 0, tag).toBe(live.has(tag));
        // The index matches its content table: FTS5's own check; on pg, every document's entry is as recomputed.
        if (!PG) db.$client.prepare("INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 1)").run();
        else expect(db.$client.prepare('SELECT count(*) FROM search_docs d FULL JOIN search_fts f ON f.rowid = d.id WHERE f.doc IS DISTINCT FROM search_document(d.repository, d.tags, d.annotation_text, d.type, d.scope)').pluck().get()).toBe(0);
      }),
      // A pg schema per run costs its migrations (~0.5 s).
      { numRuns: PG ? 12 : 60 },
    );
  });

  it('a write that rolls back leaves the index as it was', () => {
    db = freshDb();
    const store = new RegistryStore(db);
    apply(store, { kind: 'push', repo: 0, m: 1, tags: ['v1'], sigOf: null });
    const before = actual(db);
    expect(() =>
      store.putManifest(
        'ns0/app',
        { digest: digestOf(2), mediaType: 'application/vnd.oci.image.manifest.v1+json', payload: Buffer.from('{}'), size: 2, artifactType: null, subject: null, annotations: null, references: [] },
        ['v1', 'v9'],
        'test',
        { after: () => { throw new Error('refused by a governance hook'); } },
      ),
    ).toThrow('refused');
    expect(actual(db)).toEqual(before);
    expect(tagHits(db, 'v9')).toBe(0);
  });
});

describe('large result sets', () => {
  it('beyond 2000 matches: total "2000+", relevance falls back to newest-first, pages stay disjoint', () => {
    db = freshDb();
    const s = db.$client;
    s.prepare("INSERT INTO repositories(name) VALUES ('big/app')").run();
    const add = s.prepare("INSERT INTO manifests(repository_id, digest, media_type, payload, size, annotations) VALUES (1, ?, 'application/vnd.oci.image.manifest.v1+json', ?, 1, ?)");
    s.transaction(() => {
      for (let i = 0; i < 2100; i++) add.run(digestOf(i + 1), Buffer.from([0]), JSON.stringify({ 'org.opencontainers.image.title': `common word ${i}` }));
    })();
    const search = new SearchStore(db);
    const page = (n: number, sort?: string) => search.search(parseSearchQuery(new URLSearchParams({ q: 'common', page: String(n), per_page: '100', ...(sort ? { sort } : {}) })), null);
    const first = page(1);
    expect(first).toMatchObject({ total: FACET_SCAN, totalExact: false, facetsExact: false, sort: 'newest' });
    expect(first.facets.type).toEqual([{ value: 'application/vnd.oci.image.manifest.v1+json', count: FACET_SCAN }]);
    expect(first.results[0]!.digest).toBe(digestOf(2100));
    const seen = new Set<string>();
    for (let n = 1; n <= 21; n++) for (const h of page(n).results) seen.add(h.digest);
    expect(seen.size).toBe(2100);
    // Asked explicitly, other orders are kept.
    expect(page(1, 'name').sort).toBe('name');
    // Under the bound, relevance is relevance.
    expect(search.search(parseSearchQuery(new URLSearchParams({ q: 'word 7' })), null)).toMatchObject({ sort: 'relevance', totalExact: true, facetsExact: true });
  });
});

describe('relevance', () => {
  it('name before tag before annotation, a short name before a long one, ties by document id; the last word is a prefix', () => {
    db = freshDb();
    const s = db.$client;
    const add = s.prepare("INSERT INTO manifests(repository_id, digest, media_type, payload, size, annotations) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', ?, 1, ?)");
    const names = ['other/annotated', 'shop/web-frontend', 'other/tagged', 'shop', 'other/annotated-too'];
    names.forEach((name, i) => {
      s.prepare('INSERT INTO repositories(name) VALUES (?)').run(name);
      add.run(i + 1, digestOf(i + 1), Buffer.from([0]), JSON.stringify({ 'org.opencontainers.image.title': name.startsWith('other/annotated') ? 'the shop window' : 'plain' }));
    });
    s.prepare("INSERT INTO tags(repository_id, name, digest, updated_at) VALUES (3, 'Shop-Stable', ?, 1)").run(digestOf(3));
    const search = new SearchStore(db);
    const order = (q: string) => search.search(parseSearchQuery(new URLSearchParams({ q })), null).results.map((h) => h.repository);
    expect(order('shop')).toEqual(['shop', 'shop/web-frontend', 'other/tagged', 'other/annotated', 'other/annotated-too']);
    // "fro" is a prefix of frontend (the last word); "shop" must still match everywhere it did.
    expect(order('shop fro')).toEqual(['shop/web-frontend']);
    expect(order('web shop')).toEqual(['shop/web-frontend']);
    expect(search.search(parseSearchQuery(new URLSearchParams({ q: 'shop' })), null).sort).toBe('relevance');
  });
});

// SQLite's own migrations and FTS5 (the pg index is drizzle-pg/0001_search.sql).
describe.skipIf(PG)('migration 0012 on an index written by 0011', () => {
  it('keeps every document, adds family entry words and scope tokens, and the FTS5 index passes its integrity check', () => {
    const dir = mkdtempSync(join(tmpdir(), 'search-migrate-'));
    try {
      // The migrations up to 0011 only: a registry as the previous release left it.
      const old = join(dir, 'drizzle-0011');
      cpSync('drizzle', old, { recursive: true });
      const journalFile = join(old, 'meta', '_journal.json');
      const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as { entries: { idx: number }[] };
      journal.entries = journal.entries.filter((e) => e.idx <= 11);
      writeFileSync(journalFile, JSON.stringify(journal));
      const file = join(dir, 'metadata.db');
      const sqlite = new Database(file);
      migrate(drizzle(sqlite), { migrationsFolder: old });
      sqlite.prepare("INSERT INTO repositories(name) VALUES ('_registry/scope'), ('pub/app')").run();
      const add = sqlite.prepare("INSERT INTO manifests(repository_id, digest, media_type, payload, size, annotations, created_at) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', x'00', 1, ?, 1)");
      add.run(1, digestOf(1), JSON.stringify({ 'dev.artifact-store.entry.id': 'payments' }));
      add.run(2, digestOf(2), JSON.stringify({ 'org.opencontainers.image.title': 'open thing' }));
      sqlite.prepare("INSERT INTO family_entry_versions(family, id, version, digest, layer_digest, entry, actor) VALUES ('scope', 'payments', 1, ?, ?, ?, 'test')").run(digestOf(1), digestOf(1), JSON.stringify({ id: 'payments', owner: 'artifact-store', description: 'Numbat ledger' }));
      sqlite.prepare("INSERT INTO repository_visibility(name, visibility) VALUES ('pub/app', 'public')").run();
      expect(sqlite.prepare("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'numbat'").pluck().get()).toBe(0);
      sqlite.close();

      db = openDatabase(file);
      const fts = (q: string) => db!.$client.prepare('SELECT count(*) FROM search_fts WHERE search_fts MATCH ?').pluck().get(q);
      expect(db.$client.prepare('SELECT count(*) FROM search_docs').pluck().get()).toBe(2);
      expect(fts('numbat')).toBe(1);
      expect(fts('{scope} : public')).toBe(1);
      db.$client.prepare("INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 1)").run();
      const hits = new SearchStore(db).search(parseSearchQuery(new URLSearchParams({ q: 'numbat ledger' })), null).results;
      expect(hits.map((h) => h.repository)).toEqual(['_registry/scope']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

