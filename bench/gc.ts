/**
 * GC at scale (issue 12): a store generated directly in the metadata database — 100k blobs,
 * 10k manifests of 9 layers each across 100 repositories, 10k unreferenced blobs with their
 * files — then a dry run and a real run of the collector, timed. `npx tsx bench/gc.ts [blobs] [manifests]`.
 * With BENCH_PUSHES=1: the store behind a real server, push rate alone and during the GC run.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FsDriver } from '../src/data/fs-driver.js';
import { Governance } from '../src/governance/hooks.js';
import { createLogger } from '../src/log.js';
import { openDatabase } from '../src/meta/db.js';
import { GarbageCollector } from '../src/operations/gc.js';
import { PullRecorder } from '../src/operations/pulls.js';
import { OperationsStore } from '../src/operations/store.js';
import { loadConfig } from '../src/config/index.js';
import { startRegistry } from '../src/server.js';

const BLOBS = Number(process.argv[2] ?? 100_000);
const MANIFESTS = Number(process.argv[3] ?? 10_000);
const LAYERS = 9;
const REPOS = 100;
const digestOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

const dir = mkdtempSync(join(tmpdir(), 'as-gc-bench-'));
try {
  const db = openDatabase(join(dir, 'metadata.db'));
  const raw = db.$client;
  const old = Date.now() - 7_200_000;
  const t0 = Date.now();
  raw.transaction(() => {
    const repo = raw.prepare('INSERT INTO repositories (id, name, created_at) VALUES (?, ?, ?)');
    for (let r = 1; r <= REPOS; r++) repo.run(r, `bench/repo-${r}`, old);
    const blob = raw.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)');
    const link = raw.prepare('INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)');
    const man = raw.prepare('INSERT INTO manifests (repository_id, digest, media_type, payload, size, created_at) VALUES (?, ?, ?, ?, ?, ?)');
    const ref = raw.prepare("INSERT INTO manifest_references (repository_id, manifest_digest, target_digest, kind) VALUES (?, ?, ?, 'blob')");
    const tag = raw.prepare('INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)');
    const payload = Buffer.from('{}');
    let b = 0;
    for (let m = 0; m < MANIFESTS; m++) {
      const repoId = (m % REPOS) + 1;
      const md = digestOf(`manifest-${m}`);
      man.run(repoId, md, 'application/vnd.oci.image.manifest.v1+json', payload, 2, old);
      tag.run(repoId, `t${m}`, md, old);
      for (let l = 0; l < LAYERS && b < BLOBS; l++, b++) {
        const d = digestOf(`blob-${b}`);
        blob.run(d, 1000, old);
        link.run(repoId, d, old);
        ref.run(repoId, md, d);
      }
    }
    // The rest: linked to a repository, referenced by nothing (garbage), with files to delete.
    for (; b < BLOBS; b++) {
      const d = digestOf(`blob-${b}`);
      blob.run(d, 1000, old);
      link.run((b % REPOS) + 1, d, old);
      const file = join(dir, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, 'x');
    }
  })();
  const garbage = BLOBS - Math.min(BLOBS, MANIFESTS * LAYERS);
  console.log(`generated ${BLOBS} blobs (${garbage} unreferenced), ${MANIFESTS} manifests in ${Date.now() - t0} ms`);

  raw.close();

  if (process.env.BENCH_PUSHES === '1') {
    // The same store behind a real server: push rate alone, then while a GC run deletes the garbage.
    const config = loadConfig({}, { port: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent', fsync: false, auth: 'none', rateLimitPerSecond: 0, gcIntervalSeconds: 0 });
    const reg = await startRegistry(config, createLogger('silent'));
    const rate = async (untilDone: () => boolean, minMs: number) => {
      let pushes = 0;
      const t = Date.now();
      const pusher = async (p: number) => {
        for (let i = 0; Date.now() - t < minMs || !untilDone(); i++) {
          const layer = Buffer.from(`${p}-${i}-${Math.random()}`.repeat(50));
          const d = digestOf(layer.toString());
          await (await fetch(`${reg.url}/v2/bench/push-${p}/blobs/uploads/?digest=${d}`, { method: 'POST', body: layer })).arrayBuffer();
          const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d, size: layer.length }, layers: [] }));
          const res = await fetch(`${reg.url}/v2/bench/push-${p}/manifests/t${i}`, { method: 'PUT', body: m, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
          await res.arrayBuffer();
          if (res.status === 201) pushes++;
        }
      };
      await Promise.all([0, 1, 2, 3].map(pusher));
      return (pushes * 1000) / (Date.now() - t);
    };
    if (process.env.BENCH_SERVER_ONLY === '1') {
      const t = Date.now();
      const r = (await (await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: '{"dryRun":false}', headers: { 'Content-Type': 'application/json' } })).json()) as { blobs: number; durationMs: number };
      console.log(`GC in the server (every module's hooks), no pushes: ${r.blobs} blobs in ${r.durationMs} ms (${Date.now() - t} ms round trip)`);
      await reg.close();
      process.exit(0);
    }
    const alone = await rate(() => true, 5_000);
    let done = false;
    let report: { blobs: number; durationMs: number } | undefined;
    const gcRun = fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: '{"dryRun":false}', headers: { 'Content-Type': 'application/json' } })
      .then((r) => r.json() as Promise<{ blobs: number; durationMs: number }>)
      .then((r) => ((report = r), (done = true)));
    const during = await rate(() => done, 0);
    await gcRun;
    console.log(`pushes: ${alone.toFixed(1)}/s alone, ${during.toFixed(1)}/s during GC (${((during / alone) * 100).toFixed(0)}%); that GC deleted ${report!.blobs} blobs in ${report!.durationMs} ms`);
    await reg.close();
  } else {
    const db2 = openDatabase(join(dir, 'metadata.db'));
    const log = createLogger('warn');
    const ops = new OperationsStore(db2);
    const gc = new GarbageCollector(ops, new FsDriver({ root: dir, fsync: false }), new Governance(), { protectedReason: () => null }, new PullRecorder(ops, log), 3_600_000, log);
    const dry = await gc.run({ dryRun: true, actor: 'bench' });
    console.log(`dry run: ${dry.blobs} blobs would go, ${dry.durationMs} ms`);
    const run = await gc.run({ dryRun: false, actor: 'bench' });
    console.log(`run: ${run.blobs} blobs deleted (${run.bytes} bytes), ${run.durationMs} ms`);
    const again = await gc.run({ dryRun: false, actor: 'bench' });
    console.log(`second run (nothing to delete): ${again.durationMs} ms`);
    db2.$client.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
