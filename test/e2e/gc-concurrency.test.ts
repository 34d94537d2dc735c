/**
 * GC never loses a blob that a push got 201 for: pushers re-push, mount and delete the same
 * shared blobs while garbage collection sweeps in a loop with a grace window of 0, on the local
 * filesystem and on an S3 server. The test also checks that the race really happened (GC
 * deleted blobs that pushers then brought back), so it cannot pass by GC doing nothing. A third
 * race runs across two server processes on one database (SQLite file, or PostgreSQL in the pg
 * test run): both sweep, the lease lets one at a time, pushes alternate between them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageManifest, randomBlob, sha256 } from '../helpers/http.js';
import { openMetadata } from '../helpers/metadata.js';
import { removeDir, startRegistryProcess, startTestRegistry, type RegistryProcess, type TestRegistry } from '../helpers/registry.js';
import { startS3Server, type S3Server } from '../helpers/s3-server.js';

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

interface Pushed {
  repo: string;
  digest: string;
  blobs: string[];
}

/** The registry a race talks to: one process, or several sharing one database and blob store (each request picks the next). */
interface Target {
  urls: string[];
  dataDir: string;
}

let turn = 0;
const pick = (urls: string[]): string => urls[turn++ % urls.length]!;

async function uploadBlob(urls: string[], repo: string, bytes: Buffer, digest: string, style: number): Promise<boolean> {
  const url = pick(urls);
  if (style === 0) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
    await res.arrayBuffer();
    return res.status === 201;
  }
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  if (start.status !== 202) return false;
  // Each step of a session may go to another process (they share upload sessions).
  let location = new URL(start.headers.get('location')!, pick(urls)).toString();
  if (style === 2) {
    // Chunked: first half by PATCH, the rest with the closing PUT.
    const half = bytes.length >> 1;
    const patch = await fetch(location, { method: 'PATCH', body: bytes.subarray(0, half), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${half - 1}` } });
    await patch.arrayBuffer();
    if (patch.status !== 202) return false;
    location = new URL(patch.headers.get('location')!, pick(urls)).toString();
    bytes = bytes.subarray(half);
  }
  const sep = location.includes('?') ? '&' : '?';
  const put = await fetch(`${location}${sep}digest=${digest}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
  await put.arrayBuffer();
  return put.status === 201;
}

async function mountBlob(urls: string[], repo: string, from: string, digest: string): Promise<boolean> {
  const url = pick(urls);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?mount=${digest}&from=${from}`, { method: 'POST' });
  await res.arrayBuffer();
  if (res.status === 202) {
    // Mount refused (the blob is gone): drop the session the registry opened instead.
    await fetch(new URL(res.headers.get('location')!, url), { method: 'DELETE' }).then((r) => r.arrayBuffer());
  }
  return res.status === 201;
}

/** What is wrong with a pushed manifest now: missing manifest, missing blob or wrong bytes. */
async function unreadable(url: string, p: Pushed): Promise<string[]> {
  const out: string[] = [];
  const m = await fetch(`${url}/v2/${p.repo}/manifests/${p.digest}`, { headers: { Accept: MANIFEST_TYPE } });
  const body = Buffer.from(await m.arrayBuffer());
  if (m.status !== 200 || sha256(body) !== p.digest) out.push(`${p.repo}@${p.digest}: manifest ${m.status}`);
  for (const b of p.blobs) {
    const res = await fetch(`${url}/v2/${p.repo}/blobs/${b}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || sha256(bytes) !== b) out.push(`${p.repo}@${p.digest}: blob ${b} ${res.status}`);
  }
  return out;
}

async function runRace(target: Target, opts: { pushers: number; rounds: number; gcPauseMs: number }) {
  const urls = target.urls;
  const repos = ['race/a', 'race/b', 'race/c'];
  const pool = Array.from({ length: 6 }, (_, i) => randomBlob(16 * 1024 + i * 97));
  const poolDigest = pool.map((b) => sha256(b));
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const configDigest = sha256(config);
  const survivors: Pushed[] = [];
  const failures: string[] = [];
  const stats = { manifests201: 0, manifestRetries: 0, uploadRetries: 0, mounts: 0, deletes: 0 };
  let pushing = true;
  let gcRuns = 0;
  let gcDeleted = 0;

  const pusher = async (p: number): Promise<void> => {
    for (let round = 0; round < opts.rounds; round++) {
      const repo = repos[(p + round) % repos.length]!;
      const other = repos[(p + round + 1) % repos.length]!;
      const picks = [...new Set([p % pool.length, (p * 3 + round) % pool.length, (round * 5 + 1) % pool.length])];
      const manifest = imageManifest(
        { digest: configDigest, size: config.length },
        picks.map((i) => ({ digest: poolDigest[i]!, size: pool[i]!.length })),
        { annotations: { round: `${p}-${round}` } },
      );
      const digest = sha256(manifest);
      let ok = false;
      for (let attempt = 0; attempt < 500 && !ok; attempt++) {
        if (attempt > 0) stats.manifestRetries++;
        // Link every blob (in parallel): mount from another repository when it has it, else upload.
        const link = async (k: number, i: number): Promise<void> => {
          const bytes = i < 0 ? config : pool[i]!;
          const d = i < 0 ? configDigest : poolDigest[i]!;
          if ((round + k + attempt) % 3 === 0 && (await mountBlob(urls, repo, other, d))) {
            stats.mounts++;
            return;
          }
          let linked = false;
          for (let u = 0; u < 20 && !linked; u++) {
            if (u > 0) stats.uploadRetries++;
            linked = await uploadBlob(urls, repo, bytes, d, (round + u + k + 3) % 3);
          }
          expect(linked, `upload of ${d} never succeeded`).toBe(true);
        };
        await Promise.all([...picks.map((i, k) => link(k, i)), link(picks.length, -1)]);
        const res = await fetch(`${pick(urls)}/v2/${repo}/manifests/${digest}`, { method: 'PUT', body: manifest, headers: { 'Content-Type': MANIFEST_TYPE } });
        const text = await res.text();
        if (res.status === 201) ok = true;
        else expect(res.status, text).toBe(400); // MANIFEST_BLOB_UNKNOWN: a blob was collected meanwhile
      }
      expect(ok, 'manifest push never succeeded').toBe(true);
      stats.manifests201++;
      const pushed = { repo, digest, blobs: [configDigest, ...picks.map((i) => poolDigest[i]!)] };
      // While the manifest exists every blob must be readable, byte for byte.
      failures.push(...(await unreadable(pick(urls), pushed)));
      // Then delete it (but in the last round), so its blobs turn into garbage again for GC to
      // race with the next pushes of the same digests.
      if (round < opts.rounds - 1) {
        const del = await fetch(`${pick(urls)}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
        await del.arrayBuffer();
        expect(del.status).toBe(202);
        stats.deletes++;
      } else {
        survivors.push(pushed);
      }
    }
  };

  // One collector per process. Across processes only one sweeps at a time: the others get 409.
  let gcRefused = 0;
  const collector = async (url: string): Promise<void> => {
    while (pushing) {
      const res = await fetch(`${url}/api/v1/gc`, { method: 'POST', body: JSON.stringify({ dryRun: false }), headers: { 'Content-Type': 'application/json' } });
      const body = (await res.json()) as { blobs: number; errors?: { code: string; message: string }[] };
      if (urls.length > 1 && res.status === 409) {
        expect(body.errors?.[0]?.message).toBe('another process is running a garbage collection');
        gcRefused++;
      } else {
        expect(res.status, JSON.stringify(body)).toBe(200);
        gcRuns++;
        gcDeleted += body.blobs;
      }
      // A random pause: with grace 0, back-to-back sweeps can starve a push (never lose it).
      await new Promise((r) => setTimeout(r, Math.random() * opts.gcPauseMs));
    }
  };

  const gcLoops = urls.map(collector);
  await Promise.all(Array.from({ length: opts.pushers }, (_, p) => pusher(p))).finally(() => (pushing = false));
  await Promise.all(gcLoops);
  // One more sweep at rest: content of every surviving manifest is referenced, so it must stay.
  const last = await fetch(`${urls[0]}/api/v1/gc`, { method: 'POST', body: '{"dryRun":false}', headers: { 'Content-Type': 'application/json' } });
  expect(last.status).toBe(200);

  for (const sv of survivors) for (const url of urls) failures.push(...(await unreadable(url, sv)));
  expect(failures).toEqual([]);

  // The race was real: GC deleted blobs while pushers ran, and pushers linked a digest again
  // after GC had deleted it (the tombstone path), more than once.
  const db = openMetadata(target.dataDir, { readonly: true });
  const revived = db
    .prepare(
      `SELECT COUNT(*) AS n FROM events p WHERE p.action IN ('oci.blob.push','oci.blob.mount')
         AND EXISTS (SELECT 1 FROM events g, json_each(json_extract(g.before, '$.blobs')) j
                     WHERE g.action = 'gc.blob.delete' AND g.seq < p.seq AND json_extract(j.value, '$.digest') = p.digest)`,
    )
    .get() as { n: number };
  db.close();
  return { stats, gcRuns, gcRefused, gcDeleted, revived: revived.n, survivors: survivors.length };
}

describe('GC racing pushers on the filesystem (grace 0)', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ gcGraceSeconds: 0, gcIntervalSeconds: 0 });
  });
  afterAll(async () => reg?.stop());

  it('every manifest that got 201 keeps all its blobs, byte for byte', async () => {
    const r = await runRace({ urls: [reg.url], dataDir: reg.dataDir }, { pushers: 6, rounds: 12, gcPauseMs: 60 });
    console.log('gc race (fs):', JSON.stringify(r));
    expect(r.gcRuns).toBeGreaterThan(5);
    expect(r.gcDeleted).toBeGreaterThan(10);
    expect(r.revived).toBeGreaterThan(10);
    expect(r.survivors).toBe(6);
  }, 480_000);
});

describe('GC racing pushers on S3 (grace 0)', () => {
  let s3: S3Server;
  let reg: TestRegistry;
  beforeAll(async () => {
    s3 = await startS3Server();
    reg = await startTestRegistry({
      gcGraceSeconds: 0,
      gcIntervalSeconds: 0,
      storage: 's3',
      s3Endpoint: s3.endpoint,
      s3Bucket: s3.bucket,
      s3AccessKeyId: s3.accessKeyId,
      s3SecretAccessKey: s3.secretAccessKey,
      s3ForcePathStyle: true,
      s3Prefix: 'gc',
    });
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
    await s3?.stop();
  });

  it('every manifest that got 201 keeps all its blobs, byte for byte', async () => {
    const r = await runRace({ urls: [reg.url], dataDir: reg.dataDir }, { pushers: 3, rounds: 6, gcPauseMs: 400 });
    console.log('gc race (s3):', JSON.stringify(r));
    expect(r.gcDeleted).toBeGreaterThan(5);
    expect(r.revived).toBeGreaterThan(5);
    expect(r.survivors).toBe(3);
  }, 480_000);
});

describe('GC racing pushers across two server processes on one database (grace 0)', () => {
  let dataDir: string;
  const procs: RegistryProcess[] = [];
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'as-gc-two-'));
    const env = { ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_GC_GRACE_SECONDS: '0', ARTIFACT_STORE_GC_INTERVAL_SECONDS: '0', ARTIFACT_STORE_LOG_LEVEL: 'warn' };
    procs.push(await startRegistryProcess(env));
    procs.push(await startRegistryProcess(env));
  }, 120_000);
  afterAll(async () => {
    for (const p of procs) await p.stop();
    if (dataDir) removeDir(dataDir);
  });

  it('both sweep, one at a time; every manifest that got 201 keeps all its blobs on both', async () => {
    const r = await runRace({ urls: procs.map((p) => p.url), dataDir }, { pushers: 4, rounds: 8, gcPauseMs: 60 });
    console.log('gc race (two processes):', JSON.stringify(r));
    expect(r.gcRuns).toBeGreaterThan(5);
    expect(r.gcRefused).toBeGreaterThan(0);
    expect(r.gcDeleted).toBeGreaterThan(5);
    expect(r.revived).toBeGreaterThan(5);
    expect(r.survivors).toBe(4);
  }, 480_000);
});
