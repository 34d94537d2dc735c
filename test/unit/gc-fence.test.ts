/**
 * The GC/push fence (src/operations/fence.ts), one interleaving at a time, deterministically:
 * an upload that pinned its digest first is left alone; a pin taken while GC is deleting waits
 * for the bytes to be gone, so the commit writes fresh ones; a mount of a collected blob falls
 * back; a run that stopped between the metadata commit and the byte deletion is finished by the
 * next one; an expired pin no longer holds GC back.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobDriver } from '../../src/data/driver.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { AppError } from '../../src/errors/catalogue.js';
import { Governance } from '../../src/governance/hooks.js';
import { createLogger } from '../../src/log.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { BlobCollectedError, MOUNT_FENCE, pinForUpload } from '../../src/operations/fence.js';
import { GarbageCollector } from '../../src/operations/gc.js';
import { PullRecorder } from '../../src/operations/pulls.js';
import { OperationsStore } from '../../src/operations/store.js';
import { sha256 } from '../helpers/http.js';

const log = createLogger('silent');
let dir: string;
let db: Db;
let store: RegistryStore;
let driver: FsDriver;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'as-gc-fence-'));
  db = openDatabase(join(dir, 'metadata.db'));
  store = new RegistryStore(db);
  driver = new FsDriver({ root: dir, fsync: false });
});
afterEach(() => {
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

function collector(d: BlobDriver = driver): GarbageCollector {
  const ops = new OperationsStore(db);
  return new GarbageCollector(ops, d, new Governance(), { protectedReason: () => null }, new PullRecorder(ops, log), 0, log);
}

/** Writes bytes through an upload session and commits them (the driver discards them when the digest exists). */
async function commitBytes(bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const id = randomUUID();
  let state = await driver.createUpload(id);
  state = await driver.append(id, state, (async function* () {
    yield bytes;
  })());
  await driver.commit(id, state, digest);
  return digest;
}

async function uploadAndLink(repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const fence = await pinForUpload(db, digest);
  await commitBytes(bytes);
  store.linkBlob(repo, digest, bytes.length, 'test', 'oci.blob.push', undefined, fence);
  await new Promise((r) => setTimeout(r, 5)); // grace 0 collects what is older than "now": leave this millisecond
  return digest;
}

const tombstone = (digest: string) => db.$client.prepare('SELECT state FROM gc_tombstones WHERE digest = ?').get(digest) as { state: string } | undefined;
const stored = async (digest: string) => (await driver.stat(digest)) !== null;

describe('GC fence', () => {
  it('a pin taken before the sweep keeps the digest; without it the same blob is collected', async () => {
    const bytes = randomBytes(1000);
    const digest = await uploadAndLink('a/one', bytes); // linked, referenced by no manifest: garbage at grace 0
    const pin = await pinForUpload(db, digest); // a second upload of the same bytes begins
    expect((await collector().run({ dryRun: false, actor: 't' })).blobs).toBe(0);
    await commitBytes(bytes); // discarded: the digest is stored
    store.linkBlob('a/two', digest, bytes.length, 'test', 'oci.blob.push', undefined, pin);
    expect(await stored(digest)).toBe(true);
    expect(store.repositoryBlobSize('a/two', digest)).toBe(1000);
    await new Promise((r) => setTimeout(r, 5)); // grace 0 spares a link made in this very millisecond
    // The pin is gone with the link: the next run collects the (still unreferenced) blob.
    expect((await collector().run({ dryRun: false, actor: 't' })).blobs).toBe(1);
    expect(await stored(digest)).toBe(false);
    expect(tombstone(digest)?.state).toBe('deleted');
  });

  it('a pin taken while GC deletes waits for the bytes to be gone; the commit then writes fresh bytes', async () => {
    const bytes = randomBytes(1000);
    const digest = await uploadAndLink('a/one', bytes);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const slow: BlobDriver = Object.assign(Object.create(driver) as FsDriver, {
      delete: async (d: string) => {
        await gate;
        await driver.delete(d);
      },
    });
    const run = collector(slow).run({ dryRun: false, actor: 't' });
    for (let i = 0; tombstone(digest)?.state !== 'deleting'; i++) {
      expect(i).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(store.repositoryBlobSize('a/one', digest)).toBeUndefined(); // metadata already gone
    let pinned = false;
    const pin = pinForUpload(db, digest).then((f) => ((pinned = true), f));
    await new Promise((r) => setTimeout(r, 150));
    expect(pinned).toBe(false); // waits while the bytes may still vanish
    open();
    expect((await run).blobs).toBe(1);
    const fence = await pin;
    expect(await stored(digest)).toBe(false);
    await commitBytes(bytes); // nothing stored: this commit writes the bytes
    store.linkBlob('a/one', digest, bytes.length, 'test', 'oci.blob.push', undefined, fence);
    expect(await stored(digest)).toBe(true);
    expect(tombstone(digest)).toBeUndefined(); // revived
  });

  it('a mount of a collected blob is refused (the route falls back to an upload), as is a link without a pin', async () => {
    const bytes = randomBytes(500);
    const digest = await uploadAndLink('a/one', bytes);
    await collector().run({ dryRun: false, actor: 't' });
    expect(() => store.linkBlob('a/two', digest, 500, 'test', 'oci.blob.mount', 'a/one', MOUNT_FENCE)).toThrow(BlobCollectedError);
    expect(() => store.linkBlob('a/two', digest, 500, 'test', 'oci.blob.push')).toThrow(AppError);
    expect(store.repositoryBlobSize('a/two', digest)).toBeUndefined();
  });

  it('a run that stopped after the metadata commit is finished by the next run (crash or storage error)', async () => {
    const bytes = randomBytes(700);
    const digest = await uploadAndLink('a/one', bytes);
    const failing: BlobDriver = Object.assign(Object.create(driver) as FsDriver, {
      delete: async () => {
        throw new Error('storage down');
      },
    });
    await collector(failing).run({ dryRun: false, actor: 't' });
    expect(tombstone(digest)?.state).toBe('deleting');
    expect(await stored(digest)).toBe(true);
    expect(await collector().resume()).toBe(1);
    expect(await stored(digest)).toBe(false);
    expect(tombstone(digest)?.state).toBe('deleted');
  });

  it('an expired pin (an upload that died between pin and link) no longer holds GC back', async () => {
    const bytes = randomBytes(300);
    const digest = await uploadAndLink('a/one', bytes);
    db.$client.prepare('INSERT INTO gc_pins (token, digest, created_at) VALUES (?, ?, ?)').run(randomUUID(), digest, Date.now() - 2 * 3_600_000);
    expect((await collector().run({ dryRun: false, actor: 't' })).blobs).toBe(1);
    expect((db.$client.prepare('SELECT COUNT(*) AS n FROM gc_pins').get() as { n: number }).n).toBe(0);
  });

  it('one run at a time: in the process, and across processes sharing the database (lease)', async () => {
    const gc = collector();
    const first = gc.run({ dryRun: true, actor: 't' });
    await expect(gc.run({ dryRun: true, actor: 't' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await first;
    // Another collector on the same database (another server, the CLI) holds the lease: refused.
    db.$client.prepare("UPDATE gc_state SET holder = 'other-process', held_until = ? WHERE id = 1").run(Date.now() + 60_000);
    await expect(collector().run({ dryRun: true, actor: 't' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(collector().resume()).rejects.toMatchObject({ code: 'CONFLICT' });
    // A lease left by a crashed process expires.
    db.$client.prepare("UPDATE gc_state SET holder = 'dead', held_until = ? WHERE id = 1").run(Date.now() - 1);
    await expect(collector().run({ dryRun: true, actor: 't' })).resolves.toMatchObject({ dryRun: true });
  });

  it('a pin taken with the upload lease (one transaction) holds GC back like pinForUpload, and none while GC deletes', async () => {
    const bytes = randomBytes(400);
    const digest = await uploadAndLink('a/one', bytes);
    const pins = () => (db.$client.prepare('SELECT COUNT(*) AS n FROM gc_pins WHERE digest = ?').get(digest) as { n: number }).n;
    const id = randomUUID();
    store.createUpload(id, 'a/two', JSON.stringify({ size: 0, driver: {} }), 'tester');
    const got = store.leaseUpload(id, 'holder', 60_000, digest);
    expect(got).toMatchObject({ row: { repository: 'a/two' }, fence: { kind: 'upload' } });
    const fence = typeof got === 'object' ? got.fence! : MOUNT_FENCE;
    expect(pins()).toBe(1);
    expect((await collector().run({ dryRun: false, actor: 't' })).blobs).toBe(0);
    // Another holder cannot take the lease, and pins nothing trying.
    expect(store.leaseUpload(id, 'other', 60_000, digest)).toBe('busy');
    expect(pins()).toBe(1);
    await commitBytes(bytes);
    store.linkBlob('a/two', digest, bytes.length, 'test', 'oci.blob.push', undefined, fence);
    expect(pins()).toBe(0);

    // While GC deletes the digest, the lease is still taken but without a pin (the PUT pins later, waiting).
    await new Promise((r) => setTimeout(r, 5));
    db.$client.prepare("INSERT INTO gc_tombstones (digest, generation, state, size) VALUES (?, 1, 'deleting', 400)").run(digest);
    const next = randomUUID();
    store.createUpload(next, 'a/three', JSON.stringify({ size: 0, driver: {} }), 'tester');
    const during = store.leaseUpload(next, 'holder', 60_000, digest);
    expect(during).toMatchObject({ row: { repository: 'a/three' } });
    expect(typeof during === 'object' && during.fence).toBeUndefined();
    expect(pins()).toBe(0);
  });
});
