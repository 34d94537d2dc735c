import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SizeMismatchError } from '../../src/data/errors.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { sha256Of } from '../../src/data/hashing.js';
import { UploadEngine } from '../../src/data/uploads.js';
import { driverSuite } from './driver-suite.js';

driverSuite('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'fs-driver-'));
  const driver = new FsDriver({ root });
  return {
    driver,
    reopen: async () => new FsDriver({ root }),
    cleanup: async () => {
      await driver.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

/** Records directory fsyncs, and whether the entry the sync must make durable was already there. */
class RecordingFsDriver extends FsDriver {
  readonly dirSyncs: { dir: string; entries: string[] }[] = [];
  protected override async syncDirectory(dir: string): Promise<void> {
    this.dirSyncs.push({ dir, entries: await readdir(dir) });
    await super.syncDirectory(dir);
  }
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

describe('fs durability (issue 18, item 9)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'fs-durable-'));
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('fsyncs the blob directory after the rename that makes the blob visible, and every directory it created', async () => {
    const driver = new RecordingFsDriver({ root, fsync: true });
    const engine = new UploadEngine(driver);
    const bytes = randomBytes(1000);
    const digest = sha256Of(bytes);
    const id = randomUUID();
    const state = await engine.append(id, await engine.start(id), once(bytes));
    driver.dirSyncs.length = 0;
    await engine.finish(id, state, digest);

    const hex = digest.slice('sha256:'.length);
    const blobDir = join(root, 'blobs', 'sha256', hex.slice(0, 2));
    const synced = new Map(driver.dirSyncs.map((s) => [s.dir, s.entries]));
    // The directory holding the blob was synced after the rename put the blob in it.
    expect(synced.get(blobDir)).toContain(hex);
    // mkdir -p created blobs/, blobs/sha256/ and blobs/sha256/xx/: each new entry's parent is synced.
    expect(synced.get(join(root, 'blobs', 'sha256'))).toContain(hex.slice(0, 2));
    expect(synced.get(join(root, 'blobs'))).toContain('sha256');
    expect(synced.get(root)).toContain('blobs');
  });

  it('a session start syncs nothing; its entries are synced with the first acknowledged bytes, once (issue 17)', async () => {
    const driver = new RecordingFsDriver({ root, fsync: true });
    const engine = new UploadEngine(driver);
    const warm = randomUUID();
    await engine.start(warm); // creates uploads/ (synced into root once)
    const id = randomUUID();
    driver.dirSyncs.length = 0;
    let state = await engine.start(id);
    expect(driver.dirSyncs).toEqual([]);
    // Bytes the same request commits need no sync of their own: the commit flushes them.
    state = await engine.append(id, state, once(randomBytes(100)), { durable: false });
    expect(driver.dirSyncs).toEqual([]);
    // The first acknowledged bytes: the session's file in uploads/.
    state = await engine.append(id, state, once(randomBytes(100)));
    expect(driver.dirSyncs.map((s) => s.dir)).toEqual([join(root, 'uploads')]);
    expect(driver.dirSyncs[0]!.entries).toContain(id);
    // Remembered in the state (as the control plane persists it): later appends sync only bytes.
    driver.dirSyncs.length = 0;
    await engine.append(id, JSON.parse(JSON.stringify(state)) as typeof state, once(randomBytes(100)));
    expect(driver.dirSyncs).toEqual([]);
  });

  it('syncs no directory with fsync off', async () => {
    const driver = new RecordingFsDriver({ root, fsync: false });
    const engine = new UploadEngine(driver);
    const bytes = randomBytes(10);
    const id = randomUUID();
    await engine.finish(id, await engine.append(id, await engine.start(id), once(bytes)), sha256Of(bytes));
    expect(driver.dirSyncs).toEqual([]);
  });

  it('a session file shorter than its state: verifyUpload reports the real size; append and commit refuse to invent bytes', async () => {
    const driver = new FsDriver({ root, fsync: true });
    const engine = new UploadEngine(driver);
    const bytes = randomBytes(4000);
    const id = randomUUID();
    const state = await engine.append(id, await engine.start(id), once(bytes));
    await truncate(join(root, 'uploads', id), 1500); // the crash
    await expect(driver.append(id, state, once(Buffer.from('more')))).rejects.toBeInstanceOf(SizeMismatchError);
    await expect(driver.commit(id, state, sha256Of(bytes))).rejects.toBeInstanceOf(SizeMismatchError);
    const real = await engine.verify(id, state);
    expect(real.size).toBe(1500);
    const resumed = await engine.append(id, real, once(bytes.subarray(1500)));
    await engine.finish(id, resumed, sha256Of(bytes));
    expect(await driver.stat(sha256Of(bytes))).toEqual({ size: 4000 });
  });

  it('a session is one file in uploads/, no directory of its own; the commit moves it into blobs/ (issue 17)', async () => {
    const driver = new FsDriver({ root, fsync: true });
    const engine = new UploadEngine(driver);
    const bytes = randomBytes(3000);
    const id = randomUUID();
    const state = await engine.append(id, await engine.start(id), once(bytes));
    const entry = await stat(join(root, 'uploads', id));
    expect(entry.isFile()).toBe(true);
    expect(await driver.listUploads()).toEqual([id]);
    await engine.finish(id, state, sha256Of(bytes));
    expect(await readdir(join(root, 'uploads'))).toEqual([]);
    expect(await driver.stat(sha256Of(bytes))).toEqual({ size: 3000 });
  });

  it('continues and commits a session of the layout before #17 (uploads/<id>/data), then removes its directory', async () => {
    const driver = new RecordingFsDriver({ root, fsync: true });
    const engine = new UploadEngine(driver);
    const bytes = randomBytes(5000);
    const id = randomUUID();
    // What an older version left: the directory, the first 2,000 bytes, and a state without the layout flag.
    await mkdir(join(root, 'uploads', id), { recursive: true });
    await writeFile(join(root, 'uploads', id, 'data'), bytes.subarray(0, 2000));
    const old = { size: 2000, driver: { entriesSynced: true } };
    expect(await driver.verifyUpload(id, old)).toEqual(old);
    expect(await driver.uploadTouchedAt(id)).not.toBeNull();
    const state = await engine.append(id, old, once(bytes.subarray(2000)));
    expect((await stat(join(root, 'uploads', id, 'data'))).size).toBe(5000);
    await engine.finish(id, state, sha256Of(bytes));
    expect(await readdir(join(root, 'uploads'))).toEqual([]);
    expect(await driver.stat(sha256Of(bytes))).toEqual({ size: 5000 });
    // An old-layout session is aborted by the same call.
    const other = randomUUID();
    await mkdir(join(root, 'uploads', other));
    await writeFile(join(root, 'uploads', other, 'data'), 'x');
    await driver.abort(other, { size: 1, driver: {} });
    expect(await driver.listUploads()).toEqual([]);
  });
});
