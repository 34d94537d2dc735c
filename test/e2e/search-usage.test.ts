/**
 * Download counts per repository, digest and tag: counted in memory (no database write per
 * pull), written in one transaction per flush; per-tag counts read a page of tags in one query
 * and are shown by the usage API (`tag=`) and the repository page's tag table.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/meta/db.js';
import { DownloadCounter } from '../../src/search/usage.js';
import { pushImage } from '../helpers/http.js';
import { removeDir, startTestRegistry } from '../helpers/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'search-usage-'));
afterAll(() => removeDir(dir));

describe('DownloadCounter', () => {
  it('counts repository, digest and tag in memory; one flush writes them; pending and stored add up', () => {
    const db = openDatabase(join(dir, 'metadata.db'));
    try {
      const counter = new DownloadCounter(db);
      const stored = () => db.$client.prepare('SELECT ref, count FROM search_downloads WHERE repository = ? ORDER BY ref').all('team/app');
      const d1 = `sha256:${'1'.repeat(64)}`;
      for (let i = 0; i < 3; i++) counter.record('team/app', d1, 'latest');
      counter.record('team/app', d1, 'v1');
      counter.record('team/app', d1); // by digest: no tag
      expect(stored()).toEqual([]); // nothing written per pull
      expect(counter.count('team/app')).toBe(5);
      expect(counter.count('team/app', d1)).toBe(5);
      expect(counter.countTags('team/app', ['latest', 'v1', 'never'])).toEqual(new Map([['latest', 3], ['v1', 1], ['never', 0]]));

      counter.flush();
      expect(stored()).toEqual([
        { ref: '', count: 5 },
        { ref: 'latest', count: 3 },
        { ref: d1, count: 5 },
        { ref: 'v1', count: 1 },
      ]);
      counter.record('team/app', d1, 'latest');
      expect(counter.countTags('team/app', ['latest', 'v1'])).toEqual(new Map([['latest', 4], ['v1', 1]]));
      counter.flush();
      expect(stored()).toContainEqual({ ref: 'latest', count: 4 });
      // Another repository's tag of the same name is its own count.
      expect(counter.countTags('team/other', ['latest']).get('latest')).toBe(0);
    } finally {
      db.$client.close();
    }
  });

  it('a tag page of any size is counted (chunked IN lists)', () => {
    const db = openDatabase(join(dir, 'many.db'));
    try {
      const counter = new DownloadCounter(db);
      const tags = Array.from({ length: 1200 }, (_, i) => `t${i}`);
      const d = `sha256:${'2'.repeat(64)}`;
      for (const t of tags) counter.record('big/app', d, t);
      counter.flush();
      counter.record('big/app', d, 't1199');
      const counts = counter.countTags('big/app', tags);
      expect(counts.size).toBe(1200);
      expect(counts.get('t0')).toBe(1);
      expect(counts.get('t1199')).toBe(2);
    } finally {
      db.$client.close();
    }
  });
});

describe('per-tag counts over HTTP', () => {
  it('the usage API answers tagDownloads; the repository page shows a Downloads column', async () => {
    const reg = await startTestRegistry();
    try {
      await pushImage(reg.url, 'tagged/app', 'stable');
      await pushImage(reg.url, 'tagged/app', 'edge');
      // Counts a previous flush wrote (the server adds what it has not flushed yet).
      const db = openDatabase(join(reg.dataDir, 'metadata.db')).$client;
      db.prepare("INSERT INTO search_downloads(repository, ref, count) VALUES ('tagged/app', 'stable', 41), ('tagged/app', 'edge', 7)").run();
      db.close();
      const usage = await (await fetch(`${reg.url}/api/v1/usage?repository=tagged/app&tag=stable`)).json();
      expect(usage).toMatchObject({ repository: 'tagged/app', tagDownloads: 41 });
      const bad = await fetch(`${reg.url}/api/v1/usage?repository=tagged/app&tag=${encodeURIComponent('no/such:tag')}`);
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('INVALID_PAYLOAD');
      // Real pulls count per tag: three by tag, one by digest (which counts for no tag).
      const edge = await fetch(`${reg.url}/v2/tagged/app/manifests/edge`);
      const edgeDigest = edge.headers.get('docker-content-digest')!;
      for (let i = 0; i < 2; i++) expect((await fetch(`${reg.url}/v2/tagged/app/manifests/edge`)).status).toBe(200);
      expect((await fetch(`${reg.url}/v2/tagged/app/manifests/${edgeDigest}`)).status).toBe(200);
      expect(await (await fetch(`${reg.url}/api/v1/usage?repository=tagged/app&tag=edge`)).json()).toMatchObject({ tagDownloads: 10 });
      const page = await (await fetch(`${reg.url}/ui/r/tagged/app`)).text();
      expect(page).toContain('<th>Downloads</th>');
      expect(page).toMatch(/>stable<\/a><\/td>(<td[^>]*>[^<]*<\/td>){3}<td>41<\/td>/);
      expect(page).toMatch(/>edge<\/a><\/td>(<td[^>]*>[^<]*<\/td>){3}<td>10<\/td>/);
    } finally {
      await reg.stop();
    }
  });
});
