/**
 * Crash test for the blob commit path (issue 17): a real registry process (dist/, `npm run
 * build` first) takes many concurrent small blob pushes — POST + PUT with the body, single-POST
 * monolithic, and PATCH + PUT — and is killed with SIGKILL while they are in flight. After a
 * restart on the same data directory every blob that got a 201 is there, complete, and hashes
 * to its digest, through the API and in the store; nothing that was refused or cut off left a
 * half-written blob under a digest name.
 *
 * SIGKILL loses the process, not the page cache: this proves the commit order (bytes, rename,
 * metadata, then the 201) and that group-committed directory syncs and batched link commits
 * answer no request early. Power-loss durability of the same order rests on the fsyncs that
 * test/data/fs-driver.test.ts records.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { disposeAfterEach, startRegistryProcess } from '../helpers/registry.js';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WORKERS = 24;

interface Pushed {
  repo: string;
  digest: string;
  size: number;
}

async function pushOne(url: string, repo: string, blob: Buffer, style: number): Promise<number> {
  const digest = sha256(blob);
  if (style === 0) {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob });
    await res.arrayBuffer();
    return res.status;
  }
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  if (start.status !== 202) return start.status;
  const loc = start.headers.get('location')!;
  if (style === 1) {
    const res = await fetch(`${url}${loc}?digest=${digest}`, { method: 'PUT', body: blob, headers: { 'Content-Type': 'application/octet-stream' } });
    await res.arrayBuffer();
    return res.status;
  }
  const half = blob.length >> 1;
  const p = await fetch(`${url}${loc}`, {
    method: 'PATCH',
    body: blob.subarray(0, half),
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${half - 1}` },
  });
  await p.arrayBuffer();
  if (p.status !== 202) return p.status;
  const res = await fetch(`${url}${p.headers.get('location') ?? loc}?digest=${digest}`, { method: 'PUT', body: blob.subarray(half), headers: { 'Content-Type': 'application/octet-stream' } });
  await res.arrayBuffer();
  return res.status;
}

describe('SIGKILL during concurrent small blob pushes', () => {
  const disposed = disposeAfterEach();

  it('every blob that got 201 survives complete and verifies by digest after a restart', async () => {
    const first = disposed(await startRegistryProcess({ ARTIFACT_STORE_LOG_LEVEL: 'warn' }), 'SIGKILL');
    const dataDir = first.dataDir;

    const pushed: Pushed[] = [];
    const statuses = new Map<number, number>();
    let inFlight = 0;
    let inFlightAtKill = 0;
    let pushing = true;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; pushing; i++) {
        const repo = `crash/blobs-${w % 4}`;
        // 1 B .. 48 KiB: most are a single request chunk, some span several.
        const blob = randomBytes(1 + ((w * 7919 + i * 104729) % (48 * 1024)));
        inFlight++;
        try {
          const status = await pushOne(first.url, repo, blob, (w + i) % 3);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status === 201) pushed.push({ repo, digest: sha256(blob), size: blob.length });
        } catch {
          await sleep(5); // connection refused or reset: the process is dead
        } finally {
          inFlight--;
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    for (let i = 0; pushed.length < 300; i++) {
      expect(i, `pushers made no progress: ${JSON.stringify([...statuses])}\n${first.output()}`).toBeLessThan(6000);
      await sleep(10);
    }
    inFlightAtKill = inFlight;
    await first.kill('SIGKILL');
    pushing = false;
    await Promise.all(workers);

    // Killed mid-way: requests were in flight, and none failed before the kill.
    expect(inFlightAtKill).toBeGreaterThan(0);
    expect([...statuses.keys()].filter((s) => s !== 201 && s !== 202)).toEqual([]);

    // Same settings, same data directory.
    const second = disposed(await first.restart());
    for (const p of pushed) {
      const res = await fetch(`${second.url}/v2/${p.repo}/blobs/${p.digest}`);
      expect(res.status, `${p.repo}@${p.digest}`).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.length, p.digest).toBe(p.size);
      expect(sha256(body), p.digest).toBe(p.digest);
    }
    // Every file under a digest name in the store (201 or not) holds exactly that digest's bytes.
    const root = join(dataDir, 'blobs', 'sha256');
    let files = 0;
    for (const prefix of readdirSync(root)) {
      for (const hex of readdirSync(join(root, prefix))) {
        expect(sha256(readFileSync(join(root, prefix, hex))), `${prefix}/${hex}`).toBe(`sha256:${hex}`);
        files++;
      }
    }
    expect(files).toBeGreaterThanOrEqual(pushed.length);
  }, 240_000);
});
