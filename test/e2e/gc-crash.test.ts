/**
 * Crash test (issue 12): a real registry process (dist/, `npm run build` first) is killed with
 * SIGKILL in the middle of a GC sweep — frozen with SIGSTOP at a moment the database shows a
 * batch `deleting` (metadata committed, bytes not all removed yet), so the kill always lands in
 * that window instead of by luck — while pushers keep pushing. After a restart on the same data
 * directory: every manifest a pusher got 201 for (before or during the sweep) is readable with all
 * its blobs at the right digest; the interrupted deletion is finished at start (tombstones
 * `deleted`, bytes gone); the next run removes the rest of the garbage.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageManifest, pushImage, randomBlob, sha256 } from '../helpers/http.js';
import { openMetadata, onPostgres } from '../helpers/metadata.js';
import { disposeAfterEach, startRegistryProcess } from '../helpers/registry.js';

const GARBAGE = 6000;
const MT = 'application/vnd.oci.image.manifest.v1+json';
const ENV: Record<string, string> = {
  ARTIFACT_STORE_GC_GRACE_SECONDS: '0',
  ARTIFACT_STORE_GC_INTERVAL_SECONDS: '0',
  ARTIFACT_STORE_LOG_LEVEL: 'warn',
};
const blobPath = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pushed {
  repo: string;
  digest: string;
  blobs: string[];
}

/** Garbage written straight into the store: linked to a repository, referenced by no manifest, with bytes. */
function seedGarbage(dataDir: string): string[] {
  const db = openMetadata(dataDir);
  if (!onPostgres) db.pragma('busy_timeout = 10000');
  const old = Date.now() - 7_200_000;
  const digests: string[] = [];
  db.transaction(() => {
    db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)').run('crash/garbage', old);
    const repoId = (db.prepare('SELECT id FROM repositories WHERE name = ?').get('crash/garbage') as { id: number }).id;
    const blob = db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)');
    const link = db.prepare('INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)');
    for (let i = 0; i < GARBAGE; i++) {
      const bytes = Buffer.from(`garbage-${i}-${Math.random()}`);
      const d = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      blob.run(d, bytes.length, old);
      link.run(repoId, d, old);
      mkdirSync(dirname(blobPath(dataDir, d)), { recursive: true });
      writeFileSync(blobPath(dataDir, d), bytes);
      digests.push(d);
    }
  })();
  db.close();
  return digests;
}

async function readable(url: string, p: Pushed): Promise<void> {
  const m = await fetch(`${url}/v2/${p.repo}/manifests/${p.digest}`, { headers: { Accept: MT } });
  expect(m.status, `${p.repo}@${p.digest}`).toBe(200);
  expect(sha256(Buffer.from(await m.arrayBuffer()))).toBe(p.digest);
  for (const b of p.blobs) {
    const r = await fetch(`${url}/v2/${p.repo}/blobs/${b}`);
    expect(r.status, `blob ${b} of ${p.repo}@${p.digest}`).toBe(200);
    expect(sha256(Buffer.from(await r.arrayBuffer()))).toBe(b);
  }
}

describe('GC crash (kill -9 during a sweep)', () => {
  const disposed = disposeAfterEach();

  it('loses nothing referenced and finishes the interrupted deletion after a restart', async () => {
    const first = disposed(await startRegistryProcess(ENV));
    const dataDir = first.dataDir;
    const pushed: Pushed[] = [];
    for (let i = 0; i < 5; i++) {
      const img = await pushImage(first.url, `crash/app-${i}`, `v${i}`);
      pushed.push({ repo: `crash/app-${i}`, digest: img.digest, blobs: [img.layer, img.config] });
    }
    const garbage = seedGarbage(dataDir);

    // Pushers run through the sweep and the kill; only 201s count.
    let pushing = true;
    const pusher = async (p: number): Promise<void> => {
      for (let i = 0; pushing; i++) {
        try {
          const repo = `crash/live-${p}`;
          const layer = randomBlob(512);
          const config = Buffer.from(`{"p":${p},"i":${i}}`);
          for (const b of [layer, config]) await (await fetch(`${first.url}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: b })).arrayBuffer();
          const body = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]);
          const res = await fetch(`${first.url}/v2/${repo}/manifests/t${i}`, { method: 'PUT', body, headers: { 'Content-Type': MT } });
          await res.arrayBuffer();
          if (res.status === 201) pushed.push({ repo, digest: sha256(body), blobs: [sha256(layer), sha256(config)] });
        } catch {
          await sleep(20); // the process is frozen or dead
        }
      }
    };
    const pushers = [0, 1, 2].map(pusher);
    for (let i = 0; pushed.length < 11; i++) {
      expect(i, 'pushers made no progress').toBeLessThan(3000);
      await sleep(20);
    }
    const gcRun = fetch(`${first.url}/api/v1/gc`, { method: 'POST', body: '{"dryRun":false}', headers: { 'Content-Type': 'application/json' } }).catch(() => null);

    // Freeze the process when a batch is `deleting`; if that batch finished meanwhile, thaw and wait for the next.
    const watch = openMetadata(dataDir, { readonly: true });
    const deletingNow = () => (watch.prepare("SELECT digest FROM gc_tombstones WHERE state = 'deleting'").all() as { digest: string }[]).map((r) => r.digest);
    let deletingAtKill: string[] = [];
    for (let i = 0; ; i++) {
      expect(i, 'the sweep never showed a deleting batch').toBeLessThan(20_000);
      if (deletingNow().length > 0) {
        first.proc.kill('SIGSTOP');
        deletingAtKill = deletingNow();
        if (deletingAtKill.length > 0) break;
        first.proc.kill('SIGCONT');
      }
      await sleep(2);
    }
    await first.kill('SIGKILL');
    pushing = false;
    await Promise.all(pushers);
    await gcRun;
    const stillListed = (watch.prepare('SELECT count(*) AS n FROM blobs WHERE digest IN (SELECT digest FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = ?))').get('crash/garbage') as { n: number }).n;
    watch.close();
    // Really mid-sweep: some garbage is gone from the metadata, some is not yet, a batch is half done.
    expect(stillListed).toBeGreaterThan(0);
    expect(stillListed).toBeLessThan(GARBAGE);
    expect(deletingAtKill.length).toBeGreaterThan(0);
    expect(pushed.length).toBeGreaterThan(10);

    // Same settings, same data directory.
    const reg = disposed(await first.restart());
    for (const p of pushed) await readable(reg.url, p);

    // The interrupted deletion is finished at start: tombstones `deleted`, bytes gone.
    const check = openMetadata(dataDir, { readonly: true });
    const stateOf = check.prepare('SELECT state FROM gc_tombstones WHERE digest = ?');
    for (let i = 0; deletingAtKill.some((d) => (stateOf.get(d) as { state: string }).state !== 'deleted'); i++) {
      expect(i, 'interrupted deletion not resumed').toBeLessThan(600);
      await sleep(50);
    }
    for (const d of deletingAtKill) expect(existsSync(blobPath(dataDir, d)), d).toBe(false);
    check.close();

    // The next run sweeps the rest; still nothing referenced goes.
    const res = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: '{"dryRun":false}', headers: { 'Content-Type': 'application/json' } });
    expect(res.status).toBe(200);
    for (const d of garbage) expect(existsSync(blobPath(dataDir, d)), d).toBe(false);
    for (const p of pushed) await readable(reg.url, p);
  }, 240_000);
});
