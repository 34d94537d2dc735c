/**
 * O_DIRECT appends (src/data/direct-writer.ts): real files on disk, the bytes read back and
 * compared, appends starting mid-block after buffered tails, failures rolled back.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DirectTarget } from '../../src/data/direct-writer.js';
import { writeAt } from '../../src/data/file-writer.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { sha256Of } from '../../src/data/hashing.js';
import { UploadEngine } from '../../src/data/uploads.js';

/** `bytes` in pieces of the given sizes (cycled), as a request body arrives. */
async function* pieces(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let off = 0;
  for (let i = 0; off < bytes.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, bytes.length - off);
    yield bytes.subarray(off, off + n);
    off += n;
  }
}

async function* failingAfter(bytes: Uint8Array, chunk: number): AsyncGenerator<Uint8Array> {
  yield* pieces(bytes, [chunk]);
  throw new Error('client went away');
}

/** Opens `file` with O_DIRECT for writeAt and counts how often it was asked to. */
function countingTarget(file: string): DirectTarget & { opened: number; refused: number } {
  const t = {
    opened: 0,
    refused: 0,
    open: () => {
      t.opened++;
      return openSync(file, constants.O_WRONLY | constants.O_DIRECT);
    },
    unsupported: () => {
      t.refused++;
    },
  };
  return t;
}

const directSupported = constants.O_DIRECT !== undefined;

describe.skipIf(!directSupported)('O_DIRECT appends', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'direct-writer-'));
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('writeAt: a large append goes through O_DIRECT from an unaligned start, a small one stays buffered; the file holds exactly the bytes', async () => {
    const file = join(root, 'f');
    const head = randomBytes(5000); // unaligned end: the next append starts mid-block
    await writeFile(file, head);
    const big = randomBytes(3 * 1024 * 1024 + 777);
    const target = countingTarget(file);
    const fd = openSync(file, 'r+');
    try {
      expect(await writeAt(fd, pieces(big, [65536, 1, 4095, 100_000]), head.length, true, target)).toBe(big.length);
      expect(target.opened).toBe(1);
      const small = randomBytes(300_000);
      expect(await writeAt(fd, pieces(small, [65536]), head.length + big.length, true, target)).toBe(small.length);
      expect(target.opened).toBe(1); // below one batch: buffered
      expect(target.refused).toBe(0); // the direct writes were taken, not quietly done buffered
      expect(readFileSync(file).equals(Buffer.concat([head, big, small]))).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it('writes refused with EINVAL (alignment the filesystem does not take) are repeated buffered: no byte lost, no more attempts', async () => {
    const file = join(root, 'f');
    const head = randomBytes(123);
    await writeFile(file, head);
    const big = randomBytes(2 * 1024 * 1024 + 4099);
    let refused = 0;
    // Fault injection: an fd whose writes the kernel refuses with EINVAL (any write of these bytes there is invalid).
    const target: DirectTarget = { open: () => openSync('/proc/self/oom_score_adj', 'w'), unsupported: () => void refused++ };
    const fd = openSync(file, 'r+');
    try {
      expect(await writeAt(fd, pieces(big, [65536, 333]), head.length, true, target)).toBe(big.length);
    } finally {
      closeSync(fd);
    }
    expect(refused).toBe(1);
    expect(readFileSync(file).equals(Buffer.concat([head, big]))).toBe(true);
  });

  it('a chunked session of odd-sized PATCHes reads back and commits under its digest', async () => {
    const driver = new FsDriver({ root });
    const engine = new UploadEngine(driver);
    const id = randomUUID();
    let state = await engine.start(id);
    const parts = [1024 * 1024 + 3, 17, 2 * 1024 * 1024 - 5, 4096, 1024 * 1024, 5 * 1024 * 1024 + 1].map((n) => randomBytes(n));
    for (const p of parts) state = await engine.append(id, state, pieces(p, [16384, 65536, 7]), { expectedLength: p.length });
    const all = Buffer.concat(parts);
    expect(state.size).toBe(all.length);
    const read: Buffer[] = [];
    for await (const c of await driver.readUpload(id, state)) read.push(c as Buffer);
    expect(Buffer.concat(read).equals(all)).toBe(true);
    // Another process resumes it: the hash is rebuilt from the stored bytes.
    const other = new UploadEngine(new FsDriver({ root }));
    expect(await other.finish(id, state, sha256Of(all))).toEqual({ size: all.length });
  });

  it('a failed direct append leaves the session exactly as acknowledged, the block it started in included', async () => {
    const driver = new FsDriver({ root });
    const engine = new UploadEngine(driver);
    const id = randomUUID();
    const first = randomBytes(1024 * 1024 + 1234);
    let state = await engine.start(id);
    state = await engine.append(id, state, pieces(first, [65536]));
    await expect(engine.append(id, state, failingAfter(randomBytes(3 * 1024 * 1024 + 99), 65536))).rejects.toThrow('client went away');
    expect(await driver.verifyUpload(id, state)).toEqual(state);
    const second = randomBytes(2 * 1024 * 1024 + 1);
    state = await engine.append(id, state, pieces(second, [50_000]));
    const all = Buffer.concat([first, second]);
    expect(await engine.finish(id, state, sha256Of(all))).toEqual({ size: all.length });
    const stored: Buffer[] = [];
    for await (const c of await driver.read(sha256Of(all))) stored.push(Buffer.from(c));
    expect(Buffer.concat(stored).equals(all)).toBe(true);
  });

  it('concurrent large appends to different sessions (more than the staging slabs) all land intact', async () => {
    const driver = new FsDriver({ root });
    const engine = new UploadEngine(driver);
    const blobs = Array.from({ length: 10 }, (_, i) => randomBytes(2 * 1024 * 1024 + i * 513));
    await Promise.all(
      blobs.map(async (b) => {
        const id = randomUUID();
        const s = await engine.start(id);
        const next = await engine.append(id, s, pieces(b, [32768, 65536]));
        await engine.finish(id, next, sha256Of(b));
      }),
    );
    for (const b of blobs) expect(await driver.stat(sha256Of(b))).toEqual({ size: b.length });
  });
});
