/**
 * Search API over real HTTP (auth: none): full text over names, tags, annotations and types;
 * filters and facets; the index follows pushes, tag moves and deletes in the same transaction;
 * user input is never FTS5 syntax; pagination is deterministic.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildInto } from '../../src/events/rebuild.js';
import { openDatabase } from '../../src/meta/db.js';
import { imageManifest, pushBlob, pushImage, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
const COSIGN_SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';

interface Hit {
  repository: string;
  digest: string;
  tags: string[];
  signed: boolean;
  type: string;
  annotations: Record<string, string>;
}
interface Result {
  total: number;
  page: number;
  results: Hit[];
  facets: Record<string, { value: string; count: number }[]>;
}

async function search(query: string): Promise<Result> {
  const res = await fetch(`${reg.url}/api/v1/search?${query}`);
  const body = await res.text();
  expect(res.status, body).toBe(200);
  return JSON.parse(body) as Result;
}

const title = (t: string, more: Record<string, string> = {}) => ({ annotations: { 'org.opencontainers.image.title': t, ...more } });
let webDigest = '';

beforeAll(async () => {
  reg = await startTestRegistry();
  webDigest = (await pushImage(reg.url, 'shop/web', 'v1.2.0', title('Storefront web server', { 'org.opencontainers.image.licenses': 'Apache-2.0' }))).digest;
  await pushImage(reg.url, 'shop/worker', 'stable', title('Background queue worker', { 'org.opencontainers.image.licenses': 'MIT' }));
  await pushImage(reg.url, 'ml/embedder', 'prod', { artifactType: 'application/vnd.example.model.v1', ...title('Text embedding model') });
  // A cosign-style signature referrer of shop/web.
  const empty = Buffer.from('{}');
  const emptyDigest = await pushBlob(reg.url, 'shop/web', empty);
  const sig = imageManifest({ digest: emptyDigest, size: empty.length }, [], { artifactType: COSIGN_SIG, subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: webDigest, size: 1 } });
  const res = await fetch(`${reg.url}/v2/shop/web/manifests/${sha256(sig)}`, { method: 'PUT', body: sig, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  expect(res.status).toBe(201);
});
afterAll(async () => {
  await reg.stop();
});

describe('search API', () => {
  it('finds by annotation words, prefixes, tags and repository name parts', async () => {
    expect((await search('q=storefront')).results.map((h) => h.repository)).toEqual(['shop/web']);
    expect((await search('q=embed')).results.map((h) => h.repository)).toEqual(['ml/embedder']);
    expect((await search('q=stable')).results.map((h) => h.repository)).toEqual(['shop/worker']);
    expect((await search('q=shop')).results.map((h) => h.repository).sort()).toEqual(['shop/web', 'shop/worker']);
    expect((await search('q=shop+queue')).results.map((h) => h.repository)).toEqual(['shop/worker']);
    expect((await search('q=nothing-like-this')).total).toBe(0);
  });

  it('filters by type, namespace, annotation and signed, with facets over what matched', async () => {
    const all = await search('');
    // The signature is a referrer: hidden unless asked for. (_registry/* holds family entries.)
    expect(all.facets.namespace.filter((f) => f.value !== '_registry')).toEqual([{ value: 'shop', count: 2 }, { value: 'ml', count: 1 }]);
    expect(all.facets.type.find((f) => f.value === 'application/vnd.example.model.v1')?.count).toBe(1);
    const shop = await search('namespace=shop');
    expect(shop.total).toBe(2);
    expect(shop.facets.signed).toEqual([{ value: 'false', count: 1 }, { value: 'true', count: 1 }]);
    expect(shop.facets.namespace).toEqual([{ value: 'shop', count: 2 }]);
    expect((await search('type=application/vnd.example.model.v1')).results.map((h) => h.repository)).toEqual(['ml/embedder']);
    expect((await search('namespace=ml')).total).toBe(1);
    expect((await search('annotation.org.opencontainers.image.licenses=MIT')).results.map((h) => h.repository)).toEqual(['shop/worker']);
    expect((await search('annotation.org.opencontainers.image.licenses=mit')).total).toBe(0); // exact value
    const signed = await search('signed=true');
    expect(signed.results.map((h) => [h.repository, h.digest])).toEqual([['shop/web', webDigest]]);
    const withRefs = await search('include=referrers&type=' + encodeURIComponent(COSIGN_SIG));
    expect(withRefs.total).toBe(1);
  });

  it('finds family entries through their OCI form (_registry/<family>, tagged by entry id)', async () => {
    expect((await fetch(`${reg.url}/api/v1/families`)).status).toBe(200);
    const r = await search('q=webhook+create&namespace=_registry');
    expect(r.results.map((h) => [h.repository, h.tags])).toEqual([['_registry/audit-action', ['webhook.create']]]);
  });

  it('treats FTS5 syntax in q as plain words (never an error, never an operator)', async () => {
    for (const q of ['"', '"unterminated', 'a OR b', 'NEAR(storefront web)', 'repository:shop', '*', '^web', 'web AND', '(((', '-x', 'title : "x"', "'; DROP TABLE search_docs; --"]) {
      const res = await fetch(`${reg.url}/api/v1/search?q=${encodeURIComponent(q)}`);
      expect(res.status, q).toBe(200);
    }
    // OR is a word to find, not an operator: "storefront OR queue" needs all three words.
    expect((await search(`q=${encodeURIComponent('storefront OR queue')}`)).total).toBe(0);
    // A column filter is two plain words here, and "repository" is not indexed text.
    expect((await search(`q=${encodeURIComponent('repository:shop')}`)).total).toBe(0);
    expect((await search(`q=${encodeURIComponent('"storefront"')}`)).results.map((h) => h.repository)).toEqual(['shop/web']);
  });

  it('refuses bad parameters with 400 INVALID_PAYLOAD, never a 500', async () => {
    for (const q of ['sort=bogus', 'page=0', 'page=x', 'per_page=1000', `q=${'a'.repeat(300)}`, 'signed=maybe', 'include=everything', 'annotation.=x']) {
      const res = await fetch(`${reg.url}/api/v1/search?${q}`);
      const body = (await res.json()) as { errors: { code: string }[] };
      expect(res.status, q).toBe(400);
      expect(body.errors[0]!.code).toBe('INVALID_PAYLOAD');
    }
  });

  it('follows tag moves, tag deletes and manifest deletes at once', async () => {
    const a = await pushImage(reg.url, 'sync/app', 'blue', title('Sync probe'));
    expect((await search('q=blue')).results.map((h) => h.digest)).toEqual([a.digest]);
    const b = await pushImage(reg.url, 'sync/app', 'blue');
    expect((await search('q=blue')).results.map((h) => h.digest)).toEqual([b.digest]);
    expect((await search('q=probe')).results[0]!.tags).toEqual([]);
    expect((await fetch(`${reg.url}/v2/sync/app/manifests/blue`, { method: 'DELETE' })).status).toBe(202);
    expect((await search('q=blue')).total).toBe(0);
    expect((await fetch(`${reg.url}/v2/sync/app/manifests/${a.digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await search('q=probe')).total).toBe(0);
  });

  it('counts downloads per repository and digest in memory, written in batches (no database write per GET)', async () => {
    const img = await pushImage(reg.url, 'count/app', 'v1');
    // openDatabase: the registry's metadata on either back end (a pg schema in the suite's PostgreSQL run).
    const db = openDatabase(join(reg.dataDir, 'metadata.db')).$client;
    try {
      const stored = () => db.prepare("SELECT count(*) FROM search_downloads WHERE repository = 'count/app'").pluck().get();
      for (let i = 0; i < 5; i++) expect((await fetch(`${reg.url}/v2/count/app/manifests/v1`)).status).toBe(200);
      expect(stored()).toBe(0); // nothing written yet: counted in memory
      const usage = (await (await fetch(`${reg.url}/api/v1/usage?repository=count/app&digest=${img.digest}`)).json()) as { downloads: number; digestDownloads: number };
      expect(usage).toMatchObject({ downloads: 5, digestDownloads: 5 });
      const badge = await (await fetch(`${reg.url}/badges/count/app/downloads.svg`)).text();
      expect(badge).toContain('>5<');
    } finally {
      db.close();
    }
  });

  it('download counts pending at shutdown are written, and the index survives a restart', async () => {
    reg = await reg.restart();
    const usage = (await (await fetch(`${reg.url}/api/v1/usage?repository=count/app`)).json()) as { downloads: number };
    expect(usage.downloads).toBe(5);
    expect((await search('q=storefront')).results.map((h) => h.repository)).toEqual(['shop/web']);
  });

  it('pages deterministically: every document once, the same order every time', async () => {
    for (let i = 0; i < 23; i++) await pushImage(reg.url, `page/r${String(i).padStart(2, '0')}`, 'same', title('pagination corpus'));
    for (const sort of ['relevance', 'updated', 'name']) {
      const seen: string[] = [];
      for (let page = 1; page <= 4; page++) {
        const r = await search(`q=pagination&sort=${sort}&per_page=7&page=${page}`);
        expect(r.total).toBe(23);
        seen.push(...r.results.map((h) => h.repository));
      }
      expect(new Set(seen).size, sort).toBe(23);
      const again: string[] = [];
      for (let page = 1; page <= 4; page++) again.push(...(await search(`q=pagination&sort=${sort}&per_page=7&page=${page}`)).results.map((h) => h.repository));
      expect(again).toEqual(seen);
      if (sort === 'name') expect(seen).toEqual([...seen].sort());
    }
  });

  it('finds family entries by their description and owner, from the transaction that writes them', async () => {
    const post = (family: string, entry: Record<string, unknown>) =>
      fetch(`${reg.url}/api/v1/families/${family}/entries`, { method: 'POST', body: JSON.stringify(entry), headers: { 'Content-Type': 'application/json' } });
    const created = await post('scope', { id: 'payments-eu', owner: 'artifact-store', description: 'Quokka settlement ledger for Europe' });
    expect(created.status, await created.clone().text()).toBe(201);
    const hits = (await search('q=quokka+ledger')).results;
    expect(hits.map((h) => [h.repository, h.tags])).toEqual([['_registry/scope', ['payments-eu']]]);
    // A new version: its own words are found, the old version's document keeps its own.
    const v2 = await fetch(`${reg.url}/api/v1/families/scope/entries/payments-eu`, { method: 'PUT', body: JSON.stringify({ id: 'payments-eu', owner: 'artifact-store', description: 'Wombat clearing house' }), headers: { 'Content-Type': 'application/json' } });
    expect(v2.status, await v2.clone().text()).toBe(200);
    expect((await search('q=wombat')).results.map((h) => h.annotations['dev.artifact-store.entry.version'])).toEqual(['2']);
    expect((await search('q=quokka')).results.map((h) => h.annotations['dev.artifact-store.entry.version'])).toEqual(['1']);
  });

  // rebuildInto reads and writes SQLite files and compares FTS5 answers.
  it.skipIf(!!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL)('a rebuild from the event log reproduces the index, family entry words and visibility included', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'search-rebuild-'));
    const live = new Database(join(reg.dataDir, 'metadata.db'), { readonly: true });
    try {
      rebuildInto(live, join(scratch, 'rebuilt.db'));
      const rebuilt = new Database(join(scratch, 'rebuilt.db'), { readonly: true });
      try {
        const docs = (d: Database.Database) => d.prepare('SELECT repository, digest, type, subject, annotation_text, tags, signed, public, scope FROM search_docs ORDER BY repository, digest').all();
        expect(docs(rebuilt)).toEqual(docs(live));
        const match = (d: Database.Database, q: string) => d.prepare('SELECT count(*) FROM search_fts WHERE search_fts MATCH ?').pluck().get(q);
        for (const q of ['wombat', 'quokka', 'storefront', '{scope} : referrer']) expect(match(rebuilt, q), q).toBe(match(live, q));
        expect(match(rebuilt, 'wombat')).toBe(1);
      } finally {
        rebuilt.close();
      }
    } finally {
      live.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
