/**
 * Scale-out (issue #15): three registry processes on one PostgreSQL schema and one S3 bucket
 * (a real s3rver), behind a round-robin proxy that sends each new request to the next process.
 * Through it: the conformance suite, skopeo round trips, concurrent pushes with a chunked upload
 * whose PATCHes, and PUT, land on different processes; the event chain then verifies and
 * `events check` finds no difference. Then one process is killed with SIGKILL in the middle of a
 * chunked upload: the other two keep serving, the upload resumes on another process, and every
 * manifest acknowledged before the kill can still be pulled. A second process is then killed
 * while a PATCH streams into it (holding the session's lease): the last process continues the
 * session from its acknowledged Range once that lease has run out.
 *
 * Runs only when ARTIFACT_STORE_TEST_POSTGRES_URL names a PostgreSQL server (CI's PostgreSQL
 * run sets it); each run gets its own schema there, dropped at the end.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../oci-conformance/config.js';
import { runConformance } from '../../oci-conformance/suite.js';
import { openDatabase } from '../../src/meta/db.js';
import { verifyChain } from '../../src/meta/events.js';
import { imageManifest, randomBlob, sha256 } from '../helpers/http.js';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, type RegistryProcess } from '../helpers/registry.js';
import { blobDigestAt, manifestDigestAt, MANIFEST, PIN_HEADER, replicaEnv, SERVED_BY_HEADER, startReplica, startRoundRobinProxy, tryPushImage, type RoundRobinProxy } from '../helpers/replicas.js';
import { registryS3Env, startS3Server, type S3Server } from '../helpers/s3-server.js';

const run = promisify(execFile);
const PG = process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const MiB = 1024 * 1024;

let s3: S3Server;
let replicas: RegistryProcess[] = [];
let proxy: RoundRobinProxy;
let startupErrors: string[] = [];
let databaseUrl: string;
// Made in beforeAll: a skipped run (no PostgreSQL) leaves nothing behind.
let work: string;
const schema = `replicas_${process.pid}_${Date.now().toString(36)}`;

const sharedEnv = (): Record<string, string> => ({
  ARTIFACT_STORE_DATABASE_URL: databaseUrl,
  ...registryS3Env(s3),
});

/** A JSON log line without its error's stack, so the message and `msg` fit in a failure report. */
function withoutStack(line: string): string {
  try {
    const parsed = JSON.parse(line) as { err?: { stack?: string } };
    if (parsed.err) delete parsed.err.stack;
    return JSON.stringify(parsed);
  } catch {
    return line;
  }
}

const elapsed = (t0: number): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

async function pushImage(base: string, repo: string, tag: string): Promise<{ digest: string; blobs: string[] }> {
  const pushed = await tryPushImage(base, repo, tag);
  if (!pushed) throw new Error(`push of ${repo}:${tag} failed`);
  return pushed;
}

const pinned = (backend: number | undefined): Record<string, string> => (backend === undefined ? {} : { [PIN_HEADER]: String(backend) });

async function startUpload(repo: string, backend?: number): Promise<string> {
  const res = await fetch(`${proxy.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: pinned(backend) });
  expect(res.status, await res.text()).toBe(202);
  return res.headers.get('location')!;
}

/** One PATCH of `bytes` at `start`; returns the next Location and which process answered. */
async function patchChunk(location: string, bytes: Buffer, start: number, backend?: number): Promise<{ location: string; servedBy: number }> {
  const res = await fetch(`${proxy.url}${location}`, {
    method: 'PATCH',
    body: bytes,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + bytes.length - 1}`, ...pinned(backend) },
  });
  expect(res.status, await res.text()).toBe(202);
  return { location: res.headers.get('location')!, servedBy: Number(res.headers.get(SERVED_BY_HEADER)) };
}

async function finishUpload(location: string, digest: string, tail: Buffer, start: number, backend?: number): Promise<number> {
  const sep = location.includes('?') ? '&' : '?';
  const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', ...pinned(backend) };
  if (tail.length > 0) headers['Content-Range'] = `${start}-${start + tail.length - 1}`;
  const res = await fetch(`${proxy.url}${location}${sep}digest=${digest}`, { method: 'PUT', body: tail, headers });
  expect(res.status, await res.text()).toBe(201);
  return Number(res.headers.get(SERVED_BY_HEADER));
}

/** `artifact-store events check` as an operator runs it: same database URL and bucket as the replicas. */
async function eventsCheck(): Promise<{ code: number; stdout: string }> {
  const env = replicaEnv({ ...sharedEnv(), ARTIFACT_STORE_DATA_DIR: join(work, 'cli'), ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_LOG_LEVEL: 'warn' });
  try {
    const { stdout } = await run(process.execPath, ['bin/artifact-store.js', 'events', 'check'], { env, timeout: 120_000 });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

function chainOfSharedDatabase(): ReturnType<typeof verifyChain> {
  const db = openDatabase(databaseUrl);
  try {
    return verifyChain(db);
  } finally {
    db.$client.close();
  }
}

describe.skipIf(!PG)('three replicas on one PostgreSQL schema and one S3 bucket', () => {
  beforeAll(async () => {
    const url = new URL(PG!);
    url.searchParams.set('schema', schema);
    databaseUrl = url.toString();
    work = mkdtempSync(join(tmpdir(), 'as-replicas-'));
    s3 = await startS3Server();
    const t0 = performance.now();
    // All three at the same moment: the schema's migrations must run once, under their lock.
    const started = await Promise.allSettled([0, 1, 2].map(() => startReplica(sharedEnv())));
    replicas = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    if (failed.length > 0) throw new Error(`replicas did not start:\n${failed.join('\n')}`);
    console.log(`three replicas started together in ${elapsed(t0)}`);
    startupErrors = replicas.flatMap((r, i) => r.output().split('\n').filter((l) => /"level":(50|60)/.test(l)).map((l) => `replica ${i}: ${withoutStack(l).slice(0, 600)}`));
    proxy = await startRoundRobinProxy(replicas.map((r) => r.url));
  }, 240_000);

  afterAll(async () => {
    await proxy?.close();
    for (const r of replicas) {
      if (r.proc.exitCode === null && r.proc.signalCode === null) await r.stop();
      else removeDir(r.dataDir);
    }
    await s3?.stop();
    if (databaseUrl) {
      try {
        const db = openDatabase(PG!);
        db.$client.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        db.$client.close();
      } catch (err) {
        console.log(`schema ${schema} left behind: ${String(err)}`);
      }
    }
    if (work) removeDir(work);
  }, 60_000);

  it('three processes starting together on a fresh schema log no error', () => {
    expect(startupErrors).toEqual([]);
  });

  it('passes the conformance suite through the proxy, optional checks included', async () => {
    const t0 = performance.now();
    const cfg = configFromEnv({ OCI_ROOT_URL: proxy.url, OCI_NAMESPACE: 'replicas/conformance', OCI_REQUIRE_OPTIONAL: '1', OCI_SEED: 'replicas' });
    const results = await runConformance(cfg);
    console.log(`conformance: ${results.length} checks in ${elapsed(t0)}`);
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => !r.ok || r.skipped).map((r) => `${r.workflow}: ${r.name} - ${r.detail ?? 'skipped'}`)).toEqual([]);
    // Round robin: every process took part.
    expect(new Set(proxy.served.map((s) => s.backend))).toEqual(new Set([0, 1, 2]));
  }, 300_000);

  it('round-trips a single image and a multi-arch index with skopeo', async () => {
    const t0 = performance.now();
    const host = proxy.url.replace('http://', '');
    const skopeo = async (...args: string[]): Promise<string> => (await run('skopeo', args, { timeout: 90_000 })).stdout;
    const single = writeLayout(join(work, 'single'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
    const multi = writeLayout(join(work, 'multi'), 'm', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${join(work, 'single')}:v1`, `docker://${host}/replicas/app:1`);
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${join(work, 'multi')}:m`, `docker://${host}/replicas/multi:1`);
    const info = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${host}/replicas/app:1`)) as { Digest: string };
    expect(info.Digest).toBe(single.top.digest);
    expect(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/replicas/multi:1`)).toBe(multi.top.bytes.toString());
    await skopeo('copy', '--src-tls-verify=false', `docker://${host}/replicas/app:1`, `oci:${join(work, 'single-back')}:v1`);
    await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${host}/replicas/multi:1`, `oci:${join(work, 'multi-back')}:m`);
    const back = (dir: string): string => (JSON.parse(readFileSync(join(work, dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]!.digest;
    expect(back('single-back')).toBe(single.top.digest);
    expect(back('multi-back')).toBe(multi.top.digest);
    // Every process answers for what went in through the others.
    for (const r of replicas) expect(await manifestDigestAt(r.url, 'replicas/multi', '1')).toBe(multi.top.digest);
    console.log(`skopeo round trips in ${elapsed(t0)}`);
  }, 240_000);

  it('takes 14 concurrent pushes and a chunked upload spread over all three processes', async () => {
    const t0 = performance.now();
    const repo = 'replicas/chunked';
    const blob = randomBlob(12 * MiB + 12_345);
    const digest = sha256(blob);
    const chunked = (async () => {
      // PATCHes alternate between processes 0 and 1 across S3 part boundaries; the PUT, carrying
      // the last bytes, lands on process 2. Pinned, so concurrent traffic cannot reorder the turns.
      let location = await startUpload(repo, 0);
      const servedBy: number[] = [];
      let off = 0;
      for (let i = 0; off < 12 * MiB; i++, off += 3 * MiB) {
        const r = await patchChunk(location, blob.subarray(off, off + 3 * MiB), off, i % 2);
        location = r.location;
        servedBy.push(r.servedBy);
      }
      const putBy = await finishUpload(location, digest, blob.subarray(off), off, 2);
      return { servedBy, putBy };
    })();
    const pushes = Array.from({ length: 14 }, (_, i) => (i < 7 ? pushImage(proxy.url, 'replicas/shared', `s${i}`) : pushImage(proxy.url, `replicas/own-${i}`, 'v1')));
    const [pushed, route] = await Promise.all([Promise.all(pushes), chunked]);
    console.log(`14 concurrent pushes + a 12 MiB chunked upload in ${elapsed(t0)}`);
    expect(route.servedBy).toEqual([0, 1, 0, 1]);
    expect(route.putBy).toBe(2);

    const config = Buffer.from('{"architecture":"amd64","os":"linux","chunked":true}');
    const cfgRes = await fetch(`${proxy.url}/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config });
    expect(cfgRes.status).toBe(201);
    const manifest = imageManifest({ digest: sha256(config), size: config.length }, [{ digest, size: blob.length }]);
    const put = await fetch(`${proxy.url}/v2/${repo}/manifests/big`, { method: 'PUT', body: manifest, headers: { 'Content-Type': MANIFEST } });
    expect(put.status, await put.text()).toBe(201);

    // Each process, asked directly, has every manifest and the chunked blob byte for byte.
    for (const r of replicas) {
      expect(await blobDigestAt(r.url, repo, digest)).toBe(digest);
      expect(await manifestDigestAt(r.url, repo, 'big')).toBe(sha256(manifest));
      for (let i = 0; i < pushed.length; i++) {
        const [name, tag] = i < 7 ? ['replicas/shared', `s${i}`] : [`replicas/own-${i}`, 'v1'];
        expect(await manifestDigestAt(r.url, name, tag)).toBe(pushed[i]!.digest);
      }
    }
    const tags = (await (await fetch(`${proxy.url}/v2/replicas/shared/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['s0', 's1', 's2', 's3', 's4', 's5', 's6']);
  }, 240_000);

  it('keeps one event chain across the three processes: it verifies', () => {
    const chain = chainOfSharedDatabase();
    console.log(`event chain: ${JSON.stringify(chain)}`);
    expect(chain).toMatchObject({ ok: true });
  });

  it('`events check` finds no difference between the tables and a rebuild from the log', async () => {
    const t0 = performance.now();
    const check = await eventsCheck();
    console.log(`events check in ${elapsed(t0)}: ${check.stdout.trim().split('\n').slice(-1)[0]}`);
    expect(check.stdout).toMatch(/tables match a rebuild from \d+ events/);
    expect(check.code).toBe(0);
  }, 180_000);

  it('survives kill -9 of one process mid chunked upload: the others serve, the upload resumes, nothing acknowledged is lost', async () => {
    const t0 = performance.now();
    const victim = 2;
    const acked: { repo: string; tag: string; digest: string; blobs: string[]; afterKill: boolean }[] = [];
    let killed = false;
    let pushing = true;
    const workers = Array.from({ length: 3 }, async (_, w) => {
      for (let n = 0; pushing; n++) {
        const repo = `replicas/kill-${w}`;
        const tag = `t${n}`;
        const wasKilled = killed;
        const pushed = await tryPushImage(proxy.url, repo, tag);
        if (pushed) acked.push({ repo, tag, ...pushed, afterKill: wasKilled });
      }
    });

    const repo = 'replicas/resumed';
    const blob = randomBlob(9 * MiB + 777);
    const digest = sha256(blob);
    let location = await startUpload(repo, 0);
    // Two PATCHes acknowledged, the second by the process about to die.
    location = (await patchChunk(location, blob.subarray(0, 3 * MiB), 0, 1)).location;
    location = (await patchChunk(location, blob.subarray(3 * MiB, 5 * MiB + 10), 3 * MiB, victim)).location;
    await new Promise((r) => setTimeout(r, 500));
    const ackedBeforeKill = acked.length;
    replicas[victim]!.proc.kill('SIGKILL');
    killed = true;
    await new Promise((r) => replicas[victim]!.proc.once('exit', r));

    // Resume through the proxy: ask where the session stands, send the rest, commit.
    const status = await fetch(`${proxy.url}${location}`);
    expect(status.status).toBe(204);
    const range = /^0-(\d+)$/.exec(status.headers.get('range') ?? '');
    expect(range, `Range ${status.headers.get('range')}`).not.toBeNull();
    const have = Number(range![1]) + 1;
    expect(have).toBe(5 * MiB + 10);
    const resumed = await patchChunk(location, blob.subarray(have, 8 * MiB), have);
    expect(resumed.servedBy).not.toBe(victim);
    const putBy = await finishUpload(resumed.location, digest, blob.subarray(8 * MiB), 8 * MiB);
    expect(putBy).not.toBe(victim);
    expect(await blobDigestAt(proxy.url, repo, digest)).toBe(digest);

    // Let the survivors take a little more traffic, then stop the writers.
    await new Promise((r) => setTimeout(r, 1_500));
    pushing = false;
    await Promise.all(workers);
    console.log(`kill -9 scenario in ${elapsed(t0)}: ${acked.length} images acknowledged (${ackedBeforeKill} before the kill, ${acked.filter((a) => a.afterKill).length} started after it)`);

    expect(proxy.dead.has(victim)).toBe(true);
    expect(ackedBeforeKill).toBeGreaterThan(0);
    expect(acked.filter((a) => a.afterKill).length).toBeGreaterThan(0);
    // Nothing acknowledged is lost: every manifest and blob that got its 201, on both survivors.
    const missing: string[] = [];
    for (const r of replicas.filter((_, i) => i !== victim)) {
      for (const a of acked) {
        const got = await manifestDigestAt(r.url, a.repo, a.tag);
        if (got !== a.digest) missing.push(`${r.url} ${a.repo}:${a.tag} ${got}`);
        for (const b of a.blobs) {
          const head = await fetch(`${r.url}/v2/${a.repo}/blobs/${b}`, { method: 'HEAD' });
          if (head.status !== 200) missing.push(`${r.url} ${a.repo}@${b} HTTP ${head.status}`);
        }
      }
    }
    expect(missing).toEqual([]);
  }, 240_000);

  it('a PATCH cut off by kill -9 of the process streaming it: the session resumes on the last process from its acknowledged Range', async () => {
    const t0 = performance.now();
    const victim = 1;
    const repo = 'replicas/cut';
    const blob = randomBlob(7 * MiB + 99);
    const digest = sha256(blob);
    let location = await startUpload(repo, 0);
    location = (await patchChunk(location, blob.subarray(0, 2 * MiB), 0, 0)).location;
    // The second PATCH trickles into the victim, which dies holding the session's lease.
    const piece = blob.subarray(2 * MiB, 6 * MiB);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= piece.length) return controller.close();
        await new Promise((r) => setTimeout(r, 50));
        controller.enqueue(piece.subarray(sent, sent + 256 * 1024));
        sent += 256 * 1024;
      },
    });
    const cut = fetch(`${proxy.url}${location}`, {
      method: 'PATCH',
      body,
      duplex: 'half',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${2 * MiB}-${6 * MiB - 1}`, 'Content-Length': String(piece.length), [PIN_HEADER]: String(victim) },
    } as RequestInit).then((r) => r.status, () => 'cut');
    while (sent < MiB) await new Promise((r) => setTimeout(r, 20));
    replicas[victim]!.proc.kill('SIGKILL');
    await new Promise((r) => replicas[victim]!.proc.once('exit', r));
    const cutStatus = await cut;
    expect(cutStatus === 'cut' || cutStatus === 502, `the cut PATCH answered ${cutStatus}`).toBe(true);

    // Only what was acknowledged is claimed.
    const status = await fetch(`${proxy.url}${location}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${2 * MiB - 1}`);
    // The dead holder's lease runs out (30 s); until then the survivor answers 503 + Retry-After.
    let resumed: Response | undefined;
    let unavailable = 0;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const rest = blob.subarray(2 * MiB, 6 * MiB);
      resumed = await fetch(`${proxy.url}${location}`, { method: 'PATCH', body: rest, headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${2 * MiB}-${6 * MiB - 1}` } });
      if (resumed.status !== 503) break;
      unavailable++;
      await resumed.arrayBuffer();
      await new Promise((r) => setTimeout(r, Number(resumed!.headers.get('retry-after') ?? '1') * 1000));
    }
    expect(resumed!.status, await resumed!.text()).toBe(202);
    const putBy = await finishUpload(resumed!.headers.get('location')!, digest, blob.subarray(6 * MiB), 6 * MiB);
    expect(putBy).toBe(0);
    expect(await blobDigestAt(proxy.url, repo, digest)).toBe(digest);
    console.log(`cut PATCH resumed in ${elapsed(t0)} (${unavailable} answers of 503 while the dead holder's lease ran out)`);
  }, 240_000);

  it('after the kills, the event chain still verifies', () => {
    expect(chainOfSharedDatabase()).toMatchObject({ ok: true });
  });

  it('after the kills, `events check` still finds no difference', async () => {
    const check = await eventsCheck();
    expect(check.stdout).toMatch(/tables match a rebuild from \d+ events/);
    expect(check.code).toBe(0);
  }, 180_000);
});
