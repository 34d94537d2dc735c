/**
 * Crash test for large chunked uploads (issue 17): their PATCHes are written with O_DIRECT
 * (src/data/direct-writer.ts), in unaligned pieces. A real registry process (dist/, `npm run
 * build` first) is killed with SIGKILL while several such uploads are in flight. After a restart
 * on the same data directory every blob that got a 201 is complete and hashes to its digest,
 * and every session whose PATCH got a 202 reports at least the acknowledged bytes and can be
 * finished there, by the new process, from where it reports.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { disposeAfterEach, startRegistryProcess } from '../helpers/registry.js';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WORKERS = 6;
const MiB = 1024 * 1024;

interface Session {
  repo: string;
  location: string;
  blob: Buffer;
  /** Bytes the server acknowledged with a 202. */
  acked: number;
}

async function patch(url: string, s: Session, from: number, to: number): Promise<Response> {
  const res = await fetch(`${url}${s.location}`, {
    method: 'PATCH',
    body: s.blob.subarray(from, to),
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${from}-${to - 1}` },
  });
  await res.arrayBuffer();
  if (res.status === 202) s.location = res.headers.get('location') ?? s.location;
  return res;
}

async function commit(url: string, s: Session): Promise<number> {
  const res = await fetch(`${url}${s.location}${s.location.includes('?') ? '&' : '?'}digest=${sha256(s.blob)}`, { method: 'PUT' });
  await res.arrayBuffer();
  return res.status;
}

/** As a client does: retries while the session's lease is still held by the killed process (503, until it expires). */
async function retrying(f: () => Promise<number>): Promise<number> {
  for (let i = 0; ; i++) {
    const status = await f();
    if (status !== 503 || i >= 60) return status;
    await sleep(1000);
  }
}

describe('SIGKILL during large chunked uploads (O_DIRECT appends)', () => {
  const disposed = disposeAfterEach();

  it('every 201 survives complete; every acknowledged PATCH survives and its session finishes after the restart', async () => {
    const first = disposed(await startRegistryProcess({ ARTIFACT_STORE_LOG_LEVEL: 'warn' }), 'SIGKILL');

    const committed: Session[] = [];
    const open = new Set<Session>();
    let pushing = true;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; pushing; i++) {
        const s: Session = { repo: `crash/large-${w % 2}`, location: '', blob: randomBytes(3 * MiB + ((w * 7919 + i * 104729) % MiB)), acked: 0 };
        try {
          const start = await fetch(`${first.url}/v2/${s.repo}/blobs/uploads/`, { method: 'POST' });
          await start.arrayBuffer();
          if (start.status !== 202) continue;
          s.location = start.headers.get('location')!;
          open.add(s);
          // Pieces that end mid-block, so appends start unaligned.
          const piece = MiB + 4097 * (1 + ((w + i) % 7));
          while (s.acked < s.blob.length) {
            const to = Math.min(s.blob.length, s.acked + piece);
            const res = await patch(first.url, s, s.acked, to);
            expect(res.status).toBe(202);
            s.acked = to;
          }
          const status = await commit(first.url, s);
          expect(status).toBe(201);
          open.delete(s);
          committed.push(s);
        } catch (err) {
          if ((err as Error).name === 'AssertionError') throw err;
          await sleep(5); // connection refused or reset: the process is dead
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    // Killed once blobs were committed and some session is between acknowledged PATCHes.
    for (let i = 0; committed.length < 4 || ![...open].some((s) => s.acked > 0 && s.acked < s.blob.length); i++) {
      expect(i, `pushers made no progress\n${first.output()}`).toBeLessThan(6000);
      await sleep(10);
    }
    await first.kill('SIGKILL');
    pushing = false;
    await Promise.all(workers);
    const resumable = [...open].filter((s) => s.acked > 0);
    expect(resumable.length).toBeGreaterThan(0);

    // Same settings, same data directory.
    const second = disposed(await first.restart());
    for (const s of committed) {
      const res = await fetch(`${second.url}/v2/${s.repo}/blobs/${sha256(s.blob)}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(s.blob)).toBe(true);
    }
    for (const s of resumable) {
      const status = await fetch(`${second.url}${s.location}`);
      const blob = `${second.url}/v2/${s.repo}/blobs/${sha256(s.blob)}`;
      if (status.status === 404 && s.acked === s.blob.length) {
        // Its PUT was in flight and got no answer: it committed, or the client pushes again (the
        // bytes it moved under the digest name before the kill must not get in the way).
        if ((await fetch(blob, { method: 'HEAD' })).status === 404) {
          const again = await fetch(`${second.url}/v2/${s.repo}/blobs/uploads/?digest=${sha256(s.blob)}`, { method: 'POST', body: s.blob });
          await again.arrayBuffer();
          expect(again.status).toBe(201);
        }
        const res = await fetch(blob);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(s.blob)).toBe(true);
        continue;
      }
      expect(status.status).toBe(204);
      const have = Number(status.headers.get('range')!.split('-')[1]) + 1;
      // A PATCH whose 202 was lost may have been saved too; fewer bytes than acknowledged never.
      expect(have).toBeGreaterThanOrEqual(s.acked);
      if (have < s.blob.length) expect(await retrying(async () => (await patch(second.url, s, have, s.blob.length)).status)).toBe(202);
      expect(await retrying(() => commit(second.url, s))).toBe(201);
      const res = await fetch(blob);
      expect(Buffer.from(await res.arrayBuffer()).equals(s.blob)).toBe(true);
    }
  }, 300_000);
});
