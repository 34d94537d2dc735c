/**
 * Durability and resource limits of upload sessions (issue 18, items 8, 9 and 12), over real
 * HTTP: a session whose file lost bytes in a crash resumes from what is there; an S3 session
 * survives a failure between storing an append and saving its state; open sessions are capped
 * per caller (atomically); storage of sessions without a row is swept.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, statSync, truncateSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageUnavailableError } from '../../src/data/errors.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { S3Driver } from '../../src/data/s3-driver.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { expectError, randomBlob, sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3Server, type S3Server } from '../helpers/s3-server.js';

const MiB = 1024 * 1024;

async function openSession(url: string, repo: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
}

function patch(url: string, location: string, body: Buffer, start: number, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}${location}`, {
    method: 'PATCH',
    body,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + body.length - 1}`, 'Content-Length': String(body.length), ...headers },
  });
}

describe('fs session file shorter than its saved state (crash without the bytes on disk)', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ fsync: true });
  });
  afterAll(async () => reg.stop());

  it('reports the real size, refuses appends past it with 416 + Range, resumes and commits the exact bytes', async () => {
    const blob = randomBlob(3000);
    const res = await openSession(reg.url, 'dur/short');
    const loc = res.headers.get('location')!;
    const id = res.headers.get('docker-upload-uuid')!;
    expect((await patch(reg.url, loc, blob.subarray(0, 2000), 0)).status).toBe(202);

    // The crash: the file kept only 1200 of the 2000 acknowledged bytes.
    const file = join(reg.dataDir, 'uploads', id);
    truncateSync(file, 1200);

    const status = await fetch(`${reg.url}${loc}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe('0-1199');

    // A PUT that does not say where its bytes go is refused (never committed with a hole)...
    const blind = await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT', body: blob.subarray(2000) });
    expect(blind.headers.get('range')).toBe('0-1199');
    await expectError(blind, 416, 'BLOB_UPLOAD_INVALID');
    // ...and so is a chunk placed after the acknowledged (lost) bytes.
    const stale = await patch(reg.url, loc, blob.subarray(2000), 2000);
    expect(stale.headers.get('range')).toBe('0-1199');
    await expectError(stale, 416, 'BLOB_UPLOAD_INVALID');

    expect((await patch(reg.url, loc, blob.subarray(1200), 1200)).status).toBe(202);
    expect((await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT' })).status).toBe(201);
    const got = Buffer.from(await (await fetch(`${reg.url}/v2/dur/short/blobs/${sha256(blob)}`)).arrayBuffer());
    expect(got.equals(blob)).toBe(true);
  });

  it('a storage outage at commit (503) keeps the session: the PUT can be retried', async () => {
    const blob = randomBlob(10_000);
    const loc = (await openSession(reg.url, 'dur/outage')).headers.get('location')!;
    expect((await patch(reg.url, loc, blob, 0)).status).toBe(202);
    const commit = FsDriver.prototype.commit;
    FsDriver.prototype.commit = async () => {
      throw new StorageUnavailableError('injected: storage unavailable');
    };
    try {
      const res = await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT' });
      await expectError(res, 503, 'UNAVAILABLE');
    } finally {
      FsDriver.prototype.commit = commit;
    }
    expect((await fetch(`${reg.url}${loc}`)).headers.get('range')).toBe(`0-${blob.length - 1}`);
    expect((await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT' })).status).toBe(201);
  });

  it('with fsync on, a chunked upload of several MiB still round-trips', async () => {
    const blob = randomBlob(3 * MiB + 5);
    const loc = (await openSession(reg.url, 'dur/sync')).headers.get('location')!;
    for (let off = 0; off < blob.length; off += MiB) expect((await patch(reg.url, loc, blob.subarray(off, off + MiB), off)).status).toBe(202);
    expect((await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT' })).status).toBe(201);
  });
});

describe('open upload sessions per caller (maxUploadsPerCaller)', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ maxUploadsPerCaller: 3, auth: 'token' });
    await withIdentities(reg.dataDir, async (_ids, s) => {
      await s.user('alice');
      await s.user('bob');
    });
  });
  afterAll(async () => reg.stop());
  const alice = { Authorization: basic('alice', PASSWORD) };
  const bob = { Authorization: basic('bob', PASSWORD) };

  it('refuses the session over the cap with 429 TOOMANYREQUESTS, counts per caller, frees a slot on cancel and commit', async () => {
    const locs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await openSession(reg.url, 'alice/cap', alice);
      expect(res.status).toBe(202);
      locs.push(res.headers.get('location')!);
    }
    await expectError(await openSession(reg.url, 'alice/cap', alice), 429, 'TOOMANYREQUESTS');
    // A monolithic push opens a session too.
    const blob = randomBlob(100);
    await expectError(await fetch(`${reg.url}/v2/alice/cap/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob, headers: alice }), 429, 'TOOMANYREQUESTS');
    // Another caller has its own allowance.
    expect((await openSession(reg.url, 'bob/cap', bob)).status).toBe(202);

    expect((await fetch(`${reg.url}${locs[0]}`, { method: 'DELETE', headers: alice })).status).toBe(204);
    expect((await openSession(reg.url, 'alice/cap', alice)).status).toBe(202);
    expect((await fetch(`${reg.url}${locs[1]}?digest=${sha256(blob)}`, { method: 'PUT', body: blob, headers: alice })).status).toBe(201);
    const again = await openSession(reg.url, 'alice/cap', alice);
    expect(again.status).toBe(202);
    await expectError(await openSession(reg.url, 'alice/cap', alice), 429, 'TOOMANYREQUESTS');
  });

  it('holds under parallel POSTs: exactly the cap succeeds', async () => {
    await withIdentities(reg.dataDir, async (_ids, s) => void (await s.user('carol')));
    const carol = { Authorization: basic('carol', PASSWORD) };
    const results = await Promise.all(Array.from({ length: 12 }, () => openSession(reg.url, 'carol/par', carol)));
    expect(results.filter((r) => r.status === 202).length).toBe(3);
    expect(results.filter((r) => r.status === 429).length).toBe(9);
    const sessions = (await readdirSafe(join(reg.dataDir, 'uploads'))).length;
    // Refused sessions leave no storage behind (alice's and bob's from the test above remain).
    expect(sessions).toBeLessThanOrEqual(3 + 3 + 1);
  });
});

async function readdirSafe(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  return readdir(dir).catch(() => []);
}

describe('sweep of session storage without a row', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ uploadTtlSeconds: 1 });
  });
  afterAll(async () => reg.stop());

  it('removes orphaned session files (and directories of the layout before #17) once untouched for the TTL', async () => {
    const orphan = join(reg.dataDir, 'uploads', randomUUID());
    mkdirSync(orphan, { recursive: true });
    writeFileSync(join(orphan, 'data'), randomBlob(100));
    const old = new Date(Date.now() - 3600_000);
    utimesSync(join(orphan, 'data'), old, old);
    const orphanFile = join(reg.dataDir, 'uploads', randomUUID());
    writeFileSync(orphanFile, randomBlob(100));
    utimesSync(orphanFile, old, old);
    // Not an upload id: never touched by the sweep.
    const stranger = join(reg.dataDir, 'uploads', 'not-a-session');
    mkdirSync(stranger, { recursive: true });
    const deadline = Date.now() + 5_000;
    while ((existsSync(orphan) || existsSync(orphanFile)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(orphanFile)).toBe(false);
    expect(statSync(stranger).isDirectory()).toBe(true);
  });
});

describe('S3: a failure between storing an append and saving its state (item 8)', () => {
  let s3: S3Server;
  let reg: TestRegistry;
  beforeAll(async () => {
    s3 = await startS3Server();
    reg = await startTestRegistry({
      storage: 's3', s3Endpoint: s3.endpoint, s3Bucket: s3.bucket, s3AccessKeyId: s3.accessKeyId, s3SecretAccessKey: s3.secretAccessKey,
      s3ForcePathStyle: true, s3Prefix: 'dur', s3PartSize: 5 * MiB,
    });
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
    await s3?.stop();
  });

  it('leaves the saved session usable: the PATCH can be retried and the blob commits with the exact bytes', async () => {
    const blob = randomBlob(7 * MiB + 11);
    const loc = (await openSession(reg.url, 'dur/s3')).headers.get('location')!;
    // 1 MiB: stored as a tail piece.
    expect((await patch(reg.url, loc, blob.subarray(0, MiB), 0)).status).toBe(202);

    // The next PATCH fills a part (the stored tail becomes its head), then saving the state fails.
    const save = RegistryStore.prototype.updateUpload;
    let failures = 0;
    RegistryStore.prototype.updateUpload = function (...args: Parameters<typeof save>) {
      failures++;
      throw new Error('injected: metadata write failed');
    };
    try {
      expect((await patch(reg.url, loc, blob.subarray(MiB, 6 * MiB), MiB)).status).toBe(500);
    } finally {
      RegistryStore.prototype.updateUpload = save;
    }
    expect(failures).toBe(1);

    const status = await fetch(`${reg.url}${loc}`);
    expect(status.headers.get('range')).toBe(`0-${MiB - 1}`);
    expect((await patch(reg.url, loc, blob.subarray(MiB, 6 * MiB), MiB)).status).toBe(202);
    expect((await patch(reg.url, loc, blob.subarray(6 * MiB), 6 * MiB)).status).toBe(202);
    expect((await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT' })).status).toBe(201);
    const got = Buffer.from(await (await fetch(`${reg.url}/v2/dur/s3/blobs/${sha256(blob)}`)).arrayBuffer());
    expect(got.equals(blob)).toBe(true);
  }, 120_000);

  it('sweeps a session whose objects exist without a row (listUploads), and keeps sessions that have one', async () => {
    const swept = await startTestRegistry({
      storage: 's3', s3Endpoint: s3.endpoint, s3Bucket: s3.bucket, s3AccessKeyId: s3.accessKeyId, s3SecretAccessKey: s3.secretAccessKey,
      s3ForcePathStyle: true, s3Prefix: 'orphans', uploadTtlSeconds: 2,
    });
    const driver = new S3Driver({ endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, prefix: 'orphans', accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, maxAttempts: 2 });
    try {
      const orphan = randomUUID();
      await driver.append(orphan, await driver.createUpload(orphan), (async function* () { yield randomBlob(1000); })());
      const live = (await openSession(swept.url, 'dur/live')).headers.get('docker-upload-uuid')!;
      // (Modules that seed content at startup may have sessions of their own in flight here.)
      expect(await driver.listUploads()).toEqual(expect.arrayContaining([orphan, live]));
      const deadline = Date.now() + 8_000;
      while ((await driver.listUploads()).includes(orphan) && Date.now() < deadline) {
        // Keep the live session fresh (a byte a time) so the stale-session sweep has no claim on it.
        const res = await fetch(`${swept.url}/v2/dur/live/blobs/uploads/${live}`, { method: 'PATCH', body: 'x', headers: { 'Content-Length': '1' } });
        expect(res.status).toBe(202);
        await new Promise((r) => setTimeout(r, 200));
      }
      const left = await driver.listUploads();
      expect(left).not.toContain(orphan);
      expect(left).toContain(live);
      expect((await fetch(`${swept.url}/v2/dur/live/blobs/uploads/${live}`)).status).toBe(204);
    } finally {
      await driver.close();
      await swept.stop();
    }
  }, 60_000);
});
