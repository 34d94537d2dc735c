/**
 * UI pages on large data stay paged server-side: 1k referrers (a tree with one level of their
 * own referrers), 10k tags and 100k repositories each render a bounded number of rows in bounded
 * time, and walking the pages visits every item exactly once.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/meta/db.js';
import { pushBlob, pushImage, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const REFERRERS = 1000;
const GRANDCHILDREN = 12;
const TAGS = 10_000;
const REPOS = Number(process.env.UI_SCALE_REPOS ?? 100_000);
/** Loose: a shared 2-core machine; the point is that it does not grow with the data. */
const PAGE_MS = 1500;

describe('UI on large data (auth: none)', () => {
  let reg: TestRegistry;
  let subject = '';
  let firstReferrer = '';
  const timings: string[] = [];

  const timed = async (path: string) => {
    const t0 = performance.now();
    // The long database seeding can outlast the server's keep-alive idle timeout; a reused socket
    // that the server has just closed fails once (ECONNRESET), so the first try may be retried.
    const res = await fetch(`${reg.url}${path}`).catch(() => fetch(`${reg.url}${path}`));
    const text = await res.text();
    const ms = performance.now() - t0;
    expect(res.status, path).toBe(200);
    return { text, ms };
  };

  beforeAll(async () => {
    reg = await startTestRegistry();
    const pushed = await pushImage(reg.url, 'big/app', 'v1');
    subject = pushed.digest;
    const empty = Buffer.from('{}');
    const emptyDigest = await pushBlob(reg.url, 'big/app', empty);
    const artifact = (i: number, of: string, type: string) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType: type,
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 },
          layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 }],
          subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: of, size: 100 },
          annotations: { n: String(i) },
        }),
      );
    const put = async (bytes: Buffer) => {
      const res = await fetch(`${reg.url}/v2/big/app/manifests/${sha256(bytes)}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      expect(res.status).toBe(201);
      return sha256(bytes);
    };
    const types = ['application/vnd.dev.cosign.artifact.sig.v1+json', 'application/spdx+json', 'application/vnd.in-toto+json', 'application/vnd.artifact-store.evidence.v1'];
    const digests: string[] = [];
    for (let i = 0; i < REFERRERS; i += 8) digests.push(...(await Promise.all(Array.from({ length: Math.min(8, REFERRERS - i) }, (_, j) => put(artifact(i + j, subject, types[(i + j) % 4]!))))));
    firstReferrer = [...digests].sort()[0]!;
    for (let i = 0; i < GRANDCHILDREN; i++) await put(artifact(10_000 + i, firstReferrer, types[0]!));

    // Tags and repositories straight into the metadata database (pushing 100k over HTTP would take minutes).
    const db = openDatabase(join(reg.dataDir, 'metadata.db'));
    try {
      const s = db.$client;
      const repoId = s.prepare("SELECT id FROM repositories WHERE name = 'big/app'").pluck().get() as number;
      const addTag = s.prepare('INSERT INTO tags(repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)');
      const addRepo = s.prepare('INSERT INTO repositories(name) VALUES (?)');
      const addManifest = s.prepare('INSERT INTO manifests(repository_id, digest, media_type, payload, size, artifact_type, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      // In transactions of 1,000 rows: every tag insert rewrites the same search document, and
      // PostgreSQL can prune that row's old versions only once they are committed (one
      // transaction for all 10k made each update walk every earlier version).
      const chunk = 1000;
      for (let from = 0; from < TAGS; from += chunk) {
        s.transaction(() => {
          for (let i = from; i < Math.min(TAGS, from + chunk); i++) addTag.run(repoId, `t${String(i).padStart(5, '0')}`, subject, 1_700_000_000_000 + i);
        })();
      }
      for (let from = 0; from < REPOS; from += chunk) {
        s.transaction(() => {
          for (let r = from; r < Math.min(REPOS, from + chunk); r++) {
            const id = addRepo.run(`many/repo-${r}`).lastInsertRowid;
            addManifest.run(id, `sha256:${r.toString(16).padStart(64, '0')}`, 'application/vnd.oci.image.manifest.v1+json', Buffer.from('{}'), 100, null, JSON.stringify({ 'org.opencontainers.image.title': `service ${r}` }), 1_700_000_000_000 + r);
          }
        })();
      }
    } finally {
      db.$client.close();
    }
  }, 600_000);

  afterAll(async () => {
    console.log(`UI page render times (ms): ${timings.join(', ')}`);
    await reg.stop();
  });

  it(`referrers: ${REFERRERS} render as a tree, 25 per page; paging visits each once; their own referrers one level down`, async () => {
    const seen = new Set<string>();
    let path = `/ui/r/big/app?digest=${subject}`;
    let pages = 0;
    let worst = 0;
    // Referrers are paged in digest order and the subject's digest differs per run, so which
    // types the first page holds is chance ((3/4)^25 that one of them is missing): counted over all pages.
    const labels = new Set<string>();
    for (;;) {
      const { text, ms } = await timed(path);
      worst = Math.max(worst, ms);
      pages++;
      const tree = /<ul class="tree" aria-label="Referrers">([\s\S]*?)<\/ul>\n<div class="pager">/.exec(text)?.[1] ?? '';
      // Top-level items only: strip the nested lists first.
      const top = tree.replace(/<ul>[\s\S]*?<\/ul>/g, '');
      const rows = [...top.matchAll(/<a class="digest" href="[^"]*">(sha256:[0-9a-f]{64})<\/a>/g)].map((m) => m[1]!);
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.length).toBeLessThanOrEqual(25);
      for (const d of rows) {
        expect(seen.has(d), d).toBe(false);
        seen.add(d);
      }
      if (pages === 1) {
        expect(text).toContain(`${REFERRERS} referrers · 25 on this page`);
        // The first referrer shows 5 of its own 12 referrers and a link to all of them.
        expect(text).toContain(`all ${GRANDCHILDREN} referrers of this`);
      }
      for (const label of ['signature', 'SBOM', 'attestation']) if (top.includes(label)) labels.add(label);
      const next = /href="([^"]*rlast=[^"]*)" rel="next">next referrers/.exec(text)?.[1];
      if (!next) break;
      path = next.replace(/&amp;/g, '&');
    }
    expect([...labels].sort()).toEqual(['SBOM', 'attestation', 'signature']);
    expect(seen.size).toBe(REFERRERS);
    expect(pages).toBe(Math.ceil(REFERRERS / 25));
    timings.push(`referrers worst page ${worst.toFixed(0)}`);
    expect(worst).toBeLessThan(PAGE_MS);
  });

  it(`tags: ${TAGS} tags render 50 per page, first and deep pages alike`, async () => {
    for (const path of ['/ui/r/big/app', '/ui/r/big/app?last=t09000']) {
      const { text, ms } = await timed(path);
      timings.push(`tags ${path.includes('last') ? 'deep' : 'first'} page ${ms.toFixed(0)}`);
      expect(text).toContain(`(${TAGS + 1})`);
      const rows = [...text.matchAll(/<td><a href="\/ui\/r\/big\/app\?tag=[^"]+">/g)].length;
      expect(rows).toBe(50);
      expect(text).toContain('rel="next">next tags');
      expect(ms).toBeLessThan(PAGE_MS);
    }
  });

  it(`repositories: ${REPOS} repositories browse through search in bounded pages`, async () => {
    for (const path of ['/ui/', '/ui/?q=service', '/ui/?page=100', '/ui/?q=service&page=500']) {
      const { text, ms } = await timed(path);
      timings.push(`search ${path} ${ms.toFixed(0)}`);
      const hits = [...text.matchAll(/<div class="hit">/g)].length;
      expect(hits, path).toBeGreaterThan(0);
      expect(hits, path).toBeLessThanOrEqual(50);
      expect(text).toContain('rel="next"');
      expect(ms).toBeLessThan(PAGE_MS);
    }
  });
});
