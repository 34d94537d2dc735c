/**
 * PostgreSQL search answers as SQLite's FTS5 search does (issue #15): one corpus written to both
 * back ends, every query's whole result (hits in order, totals, facets, sort) compared. The
 * corpus holds what tokenizers disagree on: punctuation inside words (versions, hosts, paths,
 * hyphens), case and diacritics, a typed phrase that would run across a column boundary, scope
 * words. Needs a PostgreSQL server: ARTIFACT_STORE_TEST_POSTGRES_URL, else skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { parseSearchQuery } from '../../src/search/query.js';
import { SearchStore, type Readable } from '../../src/search/store.js';

const url = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';

interface Doc {
  repo: string;
  tags: string[];
  title: string;
  type?: string;
  subjectOf?: number;
}
const DOCS: Doc[] = [
  { repo: 'shop/web', tags: ['frontend', 'v1.2.3'], title: 'Storefront web server' },
  { repo: 'shop/web-frontend', tags: ['latest'], title: 'The shop window, 2nd edition' },
  { repo: 'acme/api', tags: ['stable', 'release-2024.01'], title: 'Café ÜBER naïve résumé' },
  { repo: 'acme/docs', tags: ['v1'], title: 'See example.com or /usr/local/bin, mail ops@example.com' },
  { repo: 'ml/embedder', tags: ['prod'], title: 'Text embedding model 1e5 x2y', type: 'application/vnd.example.model.v1' },
  { repo: 'ml/Public-Models', tags: ['v2', 'referrer', 'public'], title: 'public referrer words as text' },
  { repo: 'acme/api', tags: [], title: 'signature', type: SIG, subjectOf: 3 },
  { repo: 'zed/a_b.c-d+e', tags: ['x.y_z'], title: 'Zürich 東京 Ελληνικά' },
];
const PUBLIC = new Set(['shop/web', 'shop/web-frontend', 'ml/Public-Models']);

function load(db: Db): void {
  const s = db.$client;
  const repos = [...new Set(DOCS.map((d) => d.repo))];
  const addRepo = s.prepare('INSERT INTO repositories(name, created_at) VALUES (?, 1)');
  const addManifest = s.prepare("INSERT INTO manifests(repository_id, digest, media_type, payload, size, artifact_type, subject, annotations, created_at) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', ?, 1, ?, ?, ?, ?)");
  const addTag = s.prepare('INSERT INTO tags(repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)');
  s.transaction(() => {
    for (const r of repos) addRepo.run(r);
    DOCS.forEach((d, i) => {
      const repoId = repos.indexOf(d.repo) + 1;
      addManifest.run(repoId, digestOf(i + 1), Buffer.from([0]), d.type ?? null, d.subjectOf ? digestOf(d.subjectOf) : null, JSON.stringify({ 'org.opencontainers.image.title': d.title }), 1_700_000_000_000 + i);
      d.tags.forEach((t, k) => addTag.run(repoId, t, digestOf(i + 1), 1_700_000_100_000 + i * 10 + k));
    });
    for (const r of PUBLIC) s.prepare("INSERT INTO repository_visibility(name, visibility) VALUES (?, 'public')").run(r);
  })();
}

const QUERIES = [
  '', 'q=shop', 'q=web-frontend', 'q=web-fro', 'q=frontend', 'q=web+frontend', 'q=shop+web', 'q=fro', 'q=storefront+web-server',
  'q=v1.2.3', 'q=v1.2', 'q=1.2.3', 'q=v1', 'q=release-2024', 'q=2024.01', 'q=example.com', 'q=example', 'q=usr%2Flocal', 'q=ops%40example.com',
  'q=cafe', 'q=caf%C3%A9', 'q=CAF%C3%89', 'q=uber', 'q=%C3%BCber', 'q=naive+resume', 'q=zurich', 'q=%E6%9D%B1%E4%BA%AC', 'q=%CE%B5%CE%BB%CE%BB', 'q=1e5', 'q=x2y',
  'q=public', 'q=referrer', 'q=public&include=referrers', 'q=referrer&include=referrers', 'q=signature&include=referrers', 'q=public-models', 'q=models',
  'q=a_b', 'q=c-d%2Be', 'q=x.y_z', 'q=z', 'q=json', 'q=manifest+v1', 'q=vnd.oci', 'q=model&type=application/vnd.example.model.v1',
  'q=OR', 'q=%22', 'q=NEAR(storefront+web)', 'q=shop&namespace=shop', 'q=a&namespace=zed', 'q=referrer&namespace=ml', 'q=web&sort=name', 'q=web&sort=updated', 'namespace=acme', 'q=a&per_page=2&page=2',
  'signed=true', 'q=the+shop+window', 'q=edition+2nd', 'q=2nd+edition',
  // Phrases that would run across a column boundary (name→tags, annotations→type, type→scope): no match in FTS5.
  'q=web-v1', 'q=web-v1.2.3', 'q=server-application', 'q=json-public', 'q=frontend-latest',
];

describe.skipIf(!url)('PostgreSQL search answers as SQLite search', () => {
  let lite: Db;
  let pg: Db;
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'search-pg-'));
    lite = openDatabase(':memory:'); // SQLite in every run
    pg = openDatabase(join(dir, 'metadata.db')); // this data dir's pg schema
    load(lite);
    load(pg);
  });
  afterAll(() => {
    lite?.$client.close();
    pg?.$client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const callers: [string, ((repository: string, isPublic: boolean) => boolean) | null, Readable | undefined][] = [
    ['everything', null, undefined],
    ['public + acme (exact SQL)', (r, p) => p || r.startsWith('acme/'), { namespaces: ['acme'], exact: true }],
    ['pull check per row', (r, p) => (p && !r.startsWith('ml/')) || r === 'zed/a_b.c-d+e', undefined],
    ['token for two names', (r) => r === 'zed/a_b.c-d+e' || r === 'acme/api', { namespaces: [], repositories: ['zed/a_b.c-d+e', 'acme/api'], publicToo: false, exact: true }],
    ['superset, check refuses one', (r, p) => (p || r.startsWith('acme/')) && r !== 'shop/web', { namespaces: ['acme'], exact: true }],
  ];

  it('same hits in the same order, totals, facets and sort for every query and caller', () => {
    const a = new SearchStore(lite);
    const b = new SearchStore(pg);
    let hits = 0;
    for (const [label, canPull, readable] of callers) {
      for (const qs of QUERIES) {
        const query = parseSearchQuery(new URLSearchParams(qs));
        const expected = a.search(query, canPull, readable);
        expect(b.search(query, canPull, readable), `${label}: ${qs}`).toEqual(expected);
        hits += expected.results.length;
      }
    }
    expect(hits).toBeGreaterThan(100);
  });
});
