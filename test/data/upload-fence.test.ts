/**
 * A request that lost its upload lease (it stalled past the TTL) must not reach the session's
 * bytes once another request took the session over: its late writes land in an unlinked file,
 * and its appends and commits are refused (src/data/upload-fence.ts). Real files on disk, the fs
 * driver's O_DIRECT path included (appends of several MiB).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UploadTakenOverError } from '../../src/data/errors.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { hashStream, sha256Of } from '../../src/data/hashing.js';
import { UploadEngine } from '../../src/data/uploads.js';
import { INODE } from '../../src/data/upload-fence.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';

const MiB = 1024 * 1024;

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** A body that sends `first`, then waits for `release()` before sending `rest`: a request that stalls. */
function stalledBody(first: Uint8Array, rest: Uint8Array) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let sentFirst!: () => void;
  const firstSent = new Promise<void>((r) => (sentFirst = r));
  async function* body(): AsyncGenerator<Uint8Array> {
    yield first;
    sentFirst();
    await gate;
    yield rest;
  }
  return { body: body(), firstSent, release };
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'as-fence-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('upload session fencing (fs driver)', () => {
  it('a stalled holder that wakes after a takeover writes into an unlinked file: the committed blob is the new holder\'s bytes', async () => {
    const driver = new FsDriver({ root, fsync: true });
    const engine = new UploadEngine(driver);
    const id = randomUUID();
    const prefix = randomBytes(6 * MiB);
    const acknowledged = await engine.append(id, await engine.start(id), once(prefix));
    expect(typeof acknowledged.driver[INODE]).toBe('string');

    // The stale holder: its body stalls after 2 MiB, long enough for its lease to run out.
    const stale = stalledBody(randomBytes(2 * MiB), randomBytes(2 * MiB));
    const staleAppend = driver.append(id, acknowledged, stale.body);
    await stale.firstSent;

    // The new holder takes over: fence, then its own 4 MiB (other bytes) from the acknowledged size.
    const fenced = await engine.fence(id, acknowledged);
    expect(fenced.driver[INODE]).not.toBe(acknowledged.driver[INODE]);
    expect(fenced.size).toBe(acknowledged.size);
    const mine = randomBytes(4 * MiB);
    const next = await engine.append(id, fenced, once(mine));

    // The stale holder wakes up and finishes writing, into the file it still has open.
    stale.release();
    await staleAppend;
    // Its commit, and any new append of its, are refused.
    await expect(driver.commit(id, acknowledged, sha256Of(prefix))).rejects.toBeInstanceOf(UploadTakenOverError);
    await expect(driver.append(id, acknowledged, once(randomBytes(10)))).rejects.toBeInstanceOf(UploadTakenOverError);

    // 10 MiB: committed on the running hash, not re-read; the stored bytes must match it.
    const whole = Buffer.concat([prefix, mine]);
    const digest = sha256Of(whole);
    await engine.finish(id, next, digest);
    const stored = await hashStream('sha256', await driver.read(digest));
    expect(stored).toEqual({ digest, size: whole.length });
    // The fence's copy left no second session file behind.
    expect(await readdir(join(root, 'uploads'))).toEqual([]);
  });

  it('verifyUpload adopts the inode of the file at the session path (a restored copy); a state from before fencing stays as it is', async () => {
    const driver = new FsDriver({ root, fsync: false });
    const engine = new UploadEngine(driver);
    const id = randomUUID();
    const state = await engine.append(id, await engine.start(id), once(randomBytes(1000)));
    expect(await driver.verifyUpload(id, state)).toBe(state);
    const elsewhere = { ...state, driver: { ...state.driver, [INODE]: '1' } };
    const adopted = await driver.verifyUpload(id, elsewhere);
    expect(adopted.driver[INODE]).toBe(state.driver[INODE]);
    const legacy = { size: state.size, driver: { file: true } };
    expect(await driver.verifyUpload(id, legacy)).toBe(legacy);
    // The engine keeps the state object when nothing changed (its cached hash stays valid).
    expect(await engine.verify(id, state)).toBe(state);
  });
});

describe('upload lease takeover', () => {
  let db: Db;
  let store: RegistryStore;
  beforeEach(() => {
    db = openDatabase(join(root, 'metadata.db'));
    store = new RegistryStore(db);
  });
  afterEach(() => {
    db.$client.close();
  });

  it('reports a takeover only when it took an expired lease of another holder', async () => {
    const id = randomUUID();
    store.createUpload(id, 'a/b', JSON.stringify({ size: 0, driver: {} }), 'tester');
    expect(store.leaseUpload(id, 'first', 60_000)).toMatchObject({ takenOver: false });
    expect(store.leaseUpload(id, 'first', 60_000)).toMatchObject({ takenOver: false }); // its own, again
    expect(store.leaseUpload(id, 'second', 60_000)).toBe('busy');
    store.releaseUploadLease(id, 'first');
    expect(store.leaseUpload(id, 'second', 1)).toMatchObject({ takenOver: false }); // released: no one to fence
    await new Promise((r) => setTimeout(r, 10));
    expect(store.leaseUpload(id, 'third', 60_000)).toMatchObject({ takenOver: true }); // 'second' ran out
    // The stale holder cannot save over the new one's state.
    expect(store.updateUpload(id, JSON.stringify({ size: 5, driver: {} }), 'second')).toBe(false);
  });
});
