/**
 * One behavioural suite for every BlobDriver, run through UploadEngine (as the control plane
 * uses it) and directly. Sizes straddle 5 MiB, the S3 minimum part size, so a driver built with
 * 5 MiB parts crosses every part boundary.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BlobDriver, UploadState } from '../../src/data/driver.js';
import { BlobNotFoundError, DigestMismatchError, UploadNotFoundError } from '../../src/data/errors.js';
import { hashStream, sha256Of } from '../../src/data/hashing.js';
import { UploadEngine } from '../../src/data/uploads.js';

export interface DriverFixture {
  driver: BlobDriver;
  /** Another driver instance on the same store, as a restarted or second process would have. */
  reopen(): Promise<BlobDriver>;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;
const TIMEOUT = 120_000;

async function* chunks(bytes: Uint8Array, size = 256 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function* failing(bytes: Uint8Array, error: Error): AsyncGenerator<Uint8Array> {
  yield* chunks(bytes);
  throw error;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Pushes `pieces` as consecutive appends of one session; returns the committed digest. */
async function push(engine: UploadEngine, pieces: Uint8Array[], digest?: string): Promise<string> {
  const id = randomUUID();
  let state = await engine.start(id);
  for (const p of pieces) state = await engine.append(id, state, chunks(p));
  const d = digest ?? sha256Of(Buffer.concat(pieces));
  await engine.finish(id, state, d);
  return d;
}

/** The control plane stores states as JSON: make sure nothing survives that JSON would drop. */
const persisted = (s: UploadState): UploadState => JSON.parse(JSON.stringify(s)) as UploadState;

export function driverSuite(name: string, make: () => Promise<DriverFixture>): void {
  const withDriver = (title: string, fn: (f: DriverFixture) => Promise<void>): void => {
    it(title, async () => {
      const f = await make();
      try {
        await fn(f);
      } finally {
        await f.cleanup();
      }
    }, TIMEOUT);
  };

  describe(`BlobDriver: ${name}`, () => {
    withDriver('deleteMany removes many blobs in batches (S3: DeleteObjects, 1000 keys a request), absent ones included', async ({ driver }) => {
      expect(driver.deleteMany).toBeTypeOf('function');
      const engine = new UploadEngine(driver);
      const stored: string[] = [];
      for (let i = 0; i < 3; i++) stored.push(await push(engine, [randomBytes(1024 + i)]));
      const keep = await push(engine, [randomBytes(2048)]);
      // 1500 absent digests around the stored ones: crosses the 1000-key request boundary.
      const absent = Array.from({ length: 1500 }, () => sha256Of(randomBytes(16)));
      const list = [...absent.slice(0, 999), stored[0]!, stored[1]!, ...absent.slice(999), stored[2]!];
      // On S3, count the requests: two DeleteObjects, no per-key DeleteObject (which would also pass the checks below).
      const client = (driver as { client?: { send: (cmd: object) => Promise<unknown> } }).client;
      const sent: string[] = [];
      if (client) {
        const send = client.send.bind(client);
        client.send = (cmd: object) => (sent.push(cmd.constructor.name), send(cmd));
      }
      expect(await driver.deleteMany!(list)).toEqual([]);
      for (const d of stored) expect(await driver.stat(d)).toBeNull();
      expect(await driver.stat(keep)).toEqual({ size: 2048 });
      expect(await driver.deleteMany!([])).toEqual([]);
      if (client) {
        expect(sent.filter((n) => n === 'DeleteObjectsCommand')).toHaveLength(2);
        expect(sent).not.toContain('DeleteObjectCommand');
      }
    });

    withDriver('stores, stats, reads whole and ranges, redirects and deletes', async ({ driver }) => {
      const engine = new UploadEngine(driver);
      const bytes = randomBytes(100 * 1024);
      const digest = await push(engine, [bytes]);
      expect(await driver.stat(digest)).toEqual({ size: bytes.length });
      expect((await readAll(await driver.read(digest))).equals(bytes)).toBe(true);
      const mid = await readAll(await driver.read(digest, { start: 10, end: 1009 }));
      expect(mid.equals(bytes.subarray(10, 1010))).toBe(true);
      const end = await readAll(await driver.read(digest, { start: bytes.length - 5, end: bytes.length - 1 }));
      expect(end.equals(bytes.subarray(bytes.length - 5))).toBe(true);
      const url = await driver.redirectUrl(digest, 60);
      if (url !== null) expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(bytes)).toBe(true);
      await driver.delete(digest);
      expect(await driver.stat(digest)).toBeNull();
      await expect(driver.read(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
      await driver.delete(digest); // absent is not an error
    });

    withDriver('stores the empty blob', async ({ driver }) => {
      const digest = await push(new UploadEngine(driver), []);
      expect(await driver.stat(digest)).toEqual({ size: 0 });
      expect((await readAll(await driver.read(digest))).length).toBe(0);
    });

    withDriver('crosses part boundaries: 5 MiB - 1, 5 MiB, 5 MiB + 1, 10 MiB + 3 over three appends', async ({ driver }) => {
      const engine = new UploadEngine(driver);
      const data = randomBytes(10 * MiB + 3);
      for (const size of [5 * MiB - 1, 5 * MiB, 5 * MiB + 1]) {
        const bytes = data.subarray(0, size);
        const digest = await push(engine, [bytes]);
        expect(await driver.stat(digest)).toEqual({ size });
        expect((await readAll(await driver.read(digest))).equals(bytes)).toBe(true);
      }
      const cuts = [0, 3 * MiB + 17, 7 * MiB - 5, data.length];
      const digest = await push(engine, cuts.slice(1).map((c, i) => data.subarray(cuts[i], c)));
      expect((await readAll(await driver.read(digest))).equals(data)).toBe(true);
      const range = await readAll(await driver.read(digest, { start: 5 * MiB - 2, end: 5 * MiB + 1 }));
      expect(range.equals(data.subarray(5 * MiB - 2, 5 * MiB + 2))).toBe(true);
    });

    withDriver('accepts many small appends (200 x 37 KiB)', async ({ driver }) => {
      const engine = new UploadEngine(driver);
      const pieces = Array.from({ length: 200 }, () => randomBytes(37 * 1024));
      const digest = await push(engine, pieces);
      expect((await readAll(await driver.read(digest))).equals(Buffer.concat(pieces))).toBe(true);
      expect(await driver.listUploads()).toEqual([]);
    });

    withDriver('resumes a session in a new driver and engine from the saved state', async ({ driver, reopen }) => {
      const data = randomBytes(9 * MiB + 123);
      const id = randomUUID();
      const first = new UploadEngine(driver);
      let state = await first.start(id);
      state = persisted(await first.append(id, state, chunks(data.subarray(0, 6 * MiB))));
      state = persisted(await first.append(id, state, chunks(data.subarray(6 * MiB, 6 * MiB + 100_000))));

      const other = await reopen();
      try {
        expect((await readAll(await other.readUpload(id, state))).equals(data.subarray(0, state.size))).toBe(true);
        const second = new UploadEngine(other);
        state = persisted(await second.append(id, state, chunks(data.subarray(state.size))));
        const digest = sha256Of(data);
        await second.finish(id, state, digest);
        expect((await readAll(await other.read(digest))).equals(data)).toBe(true);
        expect((await readAll(await driver.read(digest))).equals(data)).toBe(true);
      } finally {
        await other.close();
      }
    });

    withDriver('rolls a failed append back to the previous state', async ({ driver, reopen }) => {
      const engine = new UploadEngine(driver);
      const data = randomBytes(8 * MiB);
      const id = randomUUID();
      let state = persisted(await engine.append(id, await engine.start(id), chunks(data.subarray(0, 6 * MiB))));
      const before = JSON.stringify(state);
      const boom = new Error('client went away');
      // Fails after more than a whole part, then after a few bytes.
      await expect(engine.append(id, state, failing(randomBytes(7 * MiB), boom))).rejects.toBe(boom);
      await expect(engine.append(id, state, failing(randomBytes(1000), boom))).rejects.toBe(boom);
      expect(JSON.stringify(state)).toBe(before);
      expect((await readAll(await driver.readUpload(id, state))).equals(data.subarray(0, 6 * MiB))).toBe(true);
      // A process without the cached hash re-hashes what is stored: it must be the old bytes.
      const other = await reopen();
      try {
        const fresh = new UploadEngine(other);
        state = await fresh.append(id, state, chunks(data.subarray(6 * MiB)));
        await fresh.finish(id, state, sha256Of(data));
        expect((await readAll(await other.read(sha256Of(data)))).equals(data)).toBe(true);
      } finally {
        await other.close();
      }
    });

    withDriver('commits the same digest from two sessions at once: both succeed, one copy', async ({ driver }) => {
      const engine = new UploadEngine(driver);
      const data = randomBytes(6 * MiB + 7);
      const digest = sha256Of(data);
      const ids = [randomUUID(), randomUUID()];
      const states = await Promise.all(ids.map(async (id) => engine.append(id, await engine.start(id), chunks(data))));
      await Promise.all(ids.map((id, i) => engine.finish(id, states[i]!, digest)));
      expect(await driver.stat(digest)).toEqual({ size: data.length });
      expect((await readAll(await driver.read(digest))).equals(data)).toBe(true);
      expect(await driver.listUploads()).toEqual([]);
      await driver.delete(digest);
      expect(await driver.stat(digest)).toBeNull();
    });

    withDriver('verifies other digest algorithms by re-reading the session', async ({ driver }) => {
      const data = randomBytes(6 * MiB + 1);
      const { digest } = await hashStream('blake3', chunks(data));
      await push(new UploadEngine(driver), [data.subarray(0, MiB), data.subarray(MiB)], digest);
      expect((await readAll(await driver.read(digest))).equals(data)).toBe(true);
    });

    withDriver('abort removes the session', async ({ driver }) => {
      const engine = new UploadEngine(driver);
      const id = randomUUID();
      const state = await engine.append(id, await engine.start(id), chunks(randomBytes(6 * MiB)));
      expect(await driver.listUploads()).toContain(id);
      await engine.abort(id, state);
      expect(await driver.listUploads()).not.toContain(id);
      await expect(driver.readUpload(id, state)).rejects.toBeInstanceOf(UploadNotFoundError);
      await expect(driver.append(id, state, chunks(randomBytes(10)))).rejects.toBeInstanceOf(UploadNotFoundError);
      const empty = randomUUID();
      const emptyState = await driver.createUpload(empty);
      await driver.abort(empty, emptyState);
      await expect(driver.readUpload(empty, emptyState)).rejects.toBeInstanceOf(UploadNotFoundError);
    });

    withDriver('a digest mismatch leaves nothing visible', async ({ driver }) => {
      const engine = new UploadEngine(driver);
      const data = randomBytes(5 * MiB + 9);
      const wrong = sha256Of(randomBytes(16));
      const id = randomUUID();
      const state = await engine.append(id, await engine.start(id), chunks(data));
      await expect(engine.finish(id, state, wrong)).rejects.toBeInstanceOf(DigestMismatchError);
      expect(await driver.stat(wrong)).toBeNull();
      expect(await driver.stat(sha256Of(data))).toBeNull();
      await engine.abort(id, state);
      expect(await driver.listUploads()).toEqual([]);
    });

    withDriver('a crash between append and saving its state leaves the saved state usable (release only after the save)', async ({ driver, reopen }) => {
      const engine = new UploadEngine(driver);
      const data = randomBytes(7 * MiB + 5);
      const id = randomUUID();
      // 1 MiB stays a tail; the next append fills a part with it.
      const saved = persisted(await engine.append(id, await engine.start(id), chunks(data.subarray(0, MiB))));
      const lost = persisted(await engine.append(id, saved, chunks(data.subarray(MiB, 6 * MiB))));
      expect(lost.size).toBe(6 * MiB);
      // "Crash": `lost` was never saved. Another process continues from `saved`.
      const other = await reopen();
      try {
        expect((await readAll(await other.readUpload(id, saved))).equals(data.subarray(0, MiB))).toBe(true);
        const fresh = new UploadEngine(other);
        let state = persisted(await fresh.append(id, saved, chunks(data.subarray(MiB, 6 * MiB))));
        await fresh.settle(id, saved, state);
        const next = persisted(await fresh.append(id, state, chunks(data.subarray(6 * MiB))));
        await fresh.settle(id, state, next);
        state = next;
        expect((await readAll(await other.readUpload(id, state))).equals(data)).toBe(true);
        await fresh.finish(id, state, sha256Of(data));
        expect((await readAll(await other.read(sha256Of(data)))).equals(data)).toBe(true);
      } finally {
        await other.close();
      }
    });

    withDriver('a cached hash is never used for a same-sized state another process wrote', async ({ driver, reopen }) => {
      const size = 9 * MiB; // above VERIFY_FROM_STORE_BYTES, so commit relies on the running hash
      const mine = randomBytes(size);
      const theirs = randomBytes(size);
      const id = randomUUID();
      const a = new UploadEngine(driver);
      const start = persisted(await a.start(id));
      await a.append(id, start, chunks(mine)); // A caches the hash of `mine` at `size`
      const other = await reopen();
      try {
        // B (another process, holding the session after A lost it) rewrote it from the start.
        const b = new UploadEngine(other);
        const theirsState = persisted(await b.append(id, start, chunks(theirs)));
        expect(theirsState.size).toBe(size);
        // A, asked to commit B's state, must hash B's bytes, not trust its cache of `mine`.
        await expect(a.finish(id, theirsState, sha256Of(mine))).rejects.toBeInstanceOf(DigestMismatchError);
        expect(await driver.stat(sha256Of(mine))).toBeNull();
      } finally {
        await other.close();
      }
    });

    withDriver('a missing blob is BlobNotFoundError, promptly', async ({ driver }) => {
      const digest = sha256Of(randomBytes(8));
      expect(await driver.stat(digest)).toBeNull();
      await expect(driver.read(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
      await expect(driver.read(digest, { start: 0, end: 9 })).rejects.toBeInstanceOf(BlobNotFoundError);
    });
  });
}
