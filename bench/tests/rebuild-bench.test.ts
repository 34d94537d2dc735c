/**
 * Rebuild speed (issue #14: 1 million events in under 60 s). A generated log of cheap OCI
 * actions — repositories, blob pushes, small manifest pushes with their bytes, tag sets and
 * moves — is replayed into a fresh database; events/second is printed. REBUILD_BENCH_EVENTS
 * sets the size (default 100,000 to keep the suite quick; run it with 1000000 to measure).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { rebuildInto } from '../../src/events/rebuild.js';
import { openDatabase } from '../../src/meta/db.js';
import { eventHash, GENESIS_HASH } from '../../src/meta/events.js';

const N = Number(process.env.REBUILD_BENCH_EVENTS ?? 100_000);
const dir = mkdtempSync(join(tmpdir(), 'rebuild-bench-'));
afterAll(() => (process.env.REBUILD_BENCH_KEEP ? undefined : rmSync(dir, { recursive: true, force: true })));

const digestOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** Writes a valid hash-chained log of `n` events into a new database; returns what it holds. */
function generateLog(file: string, n: number): { repositories: number; manifests: number; tags: number } {
  const db = openDatabase(file).$client;
  db.pragma('synchronous = OFF');
  const insert = db.prepare('INSERT INTO events (time, actor, action, repository, digest, tag, before, after, reason, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
  let prev = GENESIS_HASH;
  let written = 0;
  let repos = 0;
  let manifests = 0;
  const tags = new Set<string>();
  const append = (action: string, repository: string | null, digest: string | null, tag: string | null, before: unknown, after: unknown) => {
    const row = { time: 1_700_000_000_000 + written, actor: 'bench', action, repository, digest, tag, before: before ? JSON.stringify(before) : null, after: after ? JSON.stringify(after) : null, reason: null };
    const hash = eventHash(prev, row);
    insert.run(row.time, row.actor, row.action, row.repository, row.digest, row.tag, row.before, row.after, row.reason, prev, hash);
    prev = hash;
    written++;
  };
  const batch = db.transaction(() => {
    for (let i = 0; i < 10_000 && written < n; i++) {
      const k = written;
      if (k % 1000 === 0) append('oci.repository.create', `bench/r${++repos}`, null, null, null, null);
      const repo = `bench/r${repos}`;
      const layer = digestOf(`layer ${k}`);
      append('oci.blob.push', repo, layer, null, null, { size: 1000 });
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: layer, size: 1000 }, layers: [] }));
      const md = digestOf(manifest.toString());
      append('oci.manifest.push', repo, md, null, null, { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: manifest.length, references: [{ digest: layer, kind: 'blob' }], payload: manifest.toString('base64') });
      manifests++;
      const tag = `t${k % 50}`;
      const key = `${repo}:${tag}`;
      append(tags.has(key) ? 'oci.tag.move' : 'oci.tag.set', repo, md, tag, null, { digest: md });
      tags.add(key);
    }
  });
  while (written < n) batch();
  db.close();
  return { repositories: repos, manifests, tags: tags.size };
}

describe('rebuild benchmark', () => {
  it(`replays ${N} generated events and reports events/second`, () => {
    const source = join(dir, 'source.db');
    const expected = generateLog(source, N);
    const live = new Database(source, { readonly: true });
    try {
      const r = rebuildInto(live, join(dir, 'rebuilt.db'));
      const perSecond = Math.round(r.events / (r.ms / 1000));
      console.log(`rebuild: ${r.events} events in ${Math.round(r.ms)} ms = ${perSecond} events/s`);
      expect(r.events).toBeGreaterThanOrEqual(N);
      expect(r.unhandled).toEqual({});
      const out = new Database(join(dir, 'rebuilt.db'), { readonly: true });
      try {
        expect(out.prepare('SELECT count(*) FROM repositories').pluck().get()).toBe(expected.repositories);
        expect(out.prepare('SELECT count(*) FROM manifests').pluck().get()).toBe(expected.manifests);
        expect(out.prepare('SELECT count(*) FROM tags').pluck().get()).toBe(expected.tags);
      } finally {
        out.close();
      }
      // The budget is 1M events in 60 s (16.7k/s); a loaded shared machine gets slack.
      expect(perSecond).toBeGreaterThan(5_000);
    } finally {
      live.close();
    }
  }, 600_000);
});
