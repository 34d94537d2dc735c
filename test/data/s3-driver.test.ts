import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DataError, StorageUnavailableError } from '../../src/data/errors.js';
import { sha256Of } from '../../src/data/hashing.js';
import { UploadEngine } from '../../src/data/uploads.js';
import { S3Driver } from '../../src/data/s3-driver.js';
import { startS3Server, type S3Server } from '../helpers/s3-server.js';
import { driverSuite } from './driver-suite.js';

let server: S3Server;
beforeAll(async () => {
  server = await startS3Server();
}, 30_000);
afterAll(async () => server?.stop());

// 5 MiB parts (the S3 minimum) so the suite's sizes cross part boundaries; a prefix per test.
const open = (prefix: string): S3Driver =>
  new S3Driver({ ...server, region: 'us-east-1', prefix, partSize: 5 * 1024 * 1024, redirect: true, maxAttempts: 2 });

driverSuite('s3 (s3rver process)', async () => {
  const prefix = `t-${randomUUID()}`;
  const driver = open(prefix);
  return { driver, reopen: async () => open(prefix), cleanup: () => driver.close() };
});

// s3rver 3.x implements no ListMultipartUploads: the sweep must say so plainly, not crash or hang.
it('sweep reports a server that cannot list multipart uploads with a clear error', async () => {
  const driver = open(`t-${randomUUID()}`);
  await expect(driver.sweep(0)).rejects.toThrow(DataError);
  await expect(driver.sweep(0)).rejects.toThrow(/ListMultipartUploads/);
  await driver.close();
});

it('a server that accepts but never answers is StorageUnavailableError, not a hang', async () => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  const driver = new S3Driver({
    endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', bucket: 'nothing', accessKeyId: 'x', secretAccessKey: 'y',
    maxAttempts: 2, connectionTimeoutMs: 500, requestTimeoutMs: 1_000, idleTimeoutMs: 1_000,
  });
  try {
    await expect(driver.read(sha256Of(Buffer.from('x')))).rejects.toBeInstanceOf(StorageUnavailableError);
  } finally {
    await driver.close();
    sockets.forEach((s) => s.destroy());
    await new Promise((r) => silent.close(r));
  }
}, 20_000);

const MiB = 1024 * 1024;
async function* slowly(bytes: Buffer, pieces: number, delayMs: number, seen?: () => void): AsyncGenerator<Uint8Array> {
  const size = Math.ceil(bytes.length / pieces);
  for (let i = 0; i < bytes.length; i += size) {
    seen?.();
    await new Promise((r) => setTimeout(r, delayMs));
    yield bytes.subarray(i, i + size);
  }
}

async function keysUnder(driver: S3Driver, prefix: string): Promise<string[]> {
  const res = await driver.client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!).sort();
}

it('keeps the tail pieces a saved state names until releaseSuperseded, then removes exactly those', async () => {
  const prefix = `t-${randomUUID()}`;
  const driver = open(prefix);
  try {
    const engine = new UploadEngine(driver);
    const id = randomUUID();
    const data = randomBytes(6 * MiB);
    const saved = await engine.append(id, await engine.start(id), (async function* () { yield data.subarray(0, MiB); })());
    const tailKeys = (await keysUnder(driver, `${prefix}/uploads/${id}/tail.`));
    expect(tailKeys.length).toBe(1);
    // 5 MiB more: the stored 1 MiB tail + 4 MiB make part 0, the last 1 MiB is a new tail piece.
    const next = await engine.append(id, saved, (async function* () { yield data.subarray(MiB); })());
    // Not saved yet: the old tail must still be there (a crash now resumes from `saved`).
    const both = await keysUnder(driver, `${prefix}/uploads/${id}/tail.`);
    expect(both).toContain(tailKeys[0]);
    expect(both.length).toBe(2);
    await engine.settle(id, saved, next);
    expect(await keysUnder(driver, `${prefix}/uploads/${id}/tail.`)).toEqual(both.filter((k) => k !== tailKeys[0]));
    expect((await keysUnder(driver, `${prefix}/uploads/${id}/parts/`)).length).toBe(1);
    await engine.finish(id, next, sha256Of(data));
    expect(await driver.stat(sha256Of(data))).toEqual({ size: data.length });
  } finally {
    await driver.close();
  }
}, 60_000);

it('bounds the bytes all concurrent appends buffer (maxBufferedBytes): the second waits for the first', async () => {
  const prefix = `t-${randomUUID()}`;
  const driver = new S3Driver({ ...server, region: 'us-east-1', prefix, partSize: 5 * MiB, maxBufferedBytes: 5 * MiB, maxAttempts: 2 });
  try {
    const ids = [randomUUID(), randomUUID()];
    const states = await Promise.all(ids.map((id) => driver.createUpload(id)));
    let active = 0;
    let overlap = false;
    const run = async (i: number): Promise<void> => {
      const bytes = randomBytes(2 * MiB);
      let pulls = 0;
      const source = slowly(bytes, 8, 30, () => {
        // The driver reads one chunk, then waits for budget: from the second read on it buffers.
        if (++pulls === 2) active++;
        if (active > 1) overlap = true;
      });
      // Active from its second chunk (read only once budget is granted) to its end.
      async function* counted(): AsyncGenerator<Uint8Array> {
        try {
          yield* source;
        } finally {
          active--;
        }
      }
      await driver.append(ids[i]!, states[i]!, counted());
    };
    await Promise.all([run(0), run(1)]);
    expect(driver.buffers.peak).toBeLessThanOrEqual(5 * MiB);
    expect(driver.buffers.inUse).toBe(0);
    expect(overlap).toBe(false);
  } finally {
    await driver.close();
  }
}, 60_000);

it('an append that cannot get buffer budget in time fails with StorageUnavailableError and leaves the session as it was', async () => {
  const prefix = `t-${randomUUID()}`;
  const driver = new S3Driver({ ...server, region: 'us-east-1', prefix, partSize: 5 * MiB, maxBufferedBytes: 5 * MiB, bufferWaitMs: 200, maxAttempts: 2 });
  try {
    const hold = await driver.buffers.acquire(5 * MiB, 1_000);
    const id = randomUUID();
    const state = await driver.createUpload(id);
    await expect(driver.append(id, state, slowly(randomBytes(1000), 1, 0))).rejects.toBeInstanceOf(StorageUnavailableError);
    hold();
    const next = await driver.append(id, state, slowly(Buffer.from('hello'), 1, 0));
    expect(next.size).toBe(5);
  } finally {
    await driver.close();
  }
}, 30_000);

it('commits a multi-part blob server-side with UploadPartCopy when the server has it, else streams the parts', async () => {
  const driver = open(`t-${randomUUID()}`);
  try {
    const engine = new UploadEngine(driver);
    const data = randomBytes(11 * MiB);
    const id = randomUUID();
    const state = await engine.append(id, await engine.start(id), (async function* () { yield data; })());
    await engine.finish(id, state, sha256Of(data));
    expect(driver.serverPartCopy).toBe(server.partCopy);
    const back: Buffer[] = [];
    for await (const c of await driver.read(sha256Of(data))) back.push(Buffer.from(c));
    expect(Buffer.concat(back).equals(data)).toBe(true);
  } finally {
    await driver.close();
  }
}, 60_000);

/**
 * No S3 server available here implements ListMultipartUploads, so sweep() is checked against a
 * stub that speaks exactly the two calls it makes (ListMultipartUploads, AbortMultipartUpload),
 * with two pages: what is proven is our paging, cutoff and abort logic, not a server's behaviour.
 */
it('sweep pages through ListMultipartUploads and aborts only uploads older than the cutoff (stub server)', async () => {
  const old = '2020-01-01T00:00:00.000Z';
  const fresh = new Date().toISOString();
  const upload = (key: string, id: string, at: string): string => `<Upload><Key>${key}</Key><UploadId>${id}</UploadId><Initiated>${at}</Initiated></Upload>`;
  const pages = [
    `<IsTruncated>true</IsTruncated><NextKeyMarker>reg/blobs/a</NextKeyMarker><NextUploadIdMarker>A</NextUploadIdMarker>${upload('reg/blobs/a', 'A', old)}`,
    `<IsTruncated>false</IsTruncated>${upload('reg/blobs/b', 'B', fresh)}${upload('reg/blobs/c', 'C', old)}`,
  ];
  const listed: string[] = [];
  const aborted: string[] = [];
  const http = (await import('node:http')).createServer((req, res) => {
    const url = new URL(req.url!, 'http://stub');
    if (req.method === 'GET' && url.searchParams.has('uploads')) {
      listed.push(`${url.searchParams.get('prefix')}|${url.searchParams.get('key-marker') ?? ''}|${url.searchParams.get('upload-id-marker') ?? ''}`);
      const page = url.searchParams.get('key-marker') ? pages[1] : pages[0];
      res.writeHead(200, { 'Content-Type': 'application/xml' });
      return res.end(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><MaxUploads>1000</MaxUploads>${page}</ListMultipartUploadsResult>`);
    }
    if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
      aborted.push(`${decodeURIComponent(url.pathname)}#${url.searchParams.get('uploadId')}`);
      res.writeHead(204);
      return res.end();
    }
    res.writeHead(501);
    res.end();
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as { port: number }).port;
  const driver = new S3Driver({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', bucket: 'b', prefix: 'reg', accessKeyId: 'x', secretAccessKey: 'y', maxAttempts: 1 });
  try {
    expect(await driver.sweep(3_600_000)).toBe(2);
    expect(listed).toEqual(['reg/||', 'reg/|reg/blobs/a|A']);
    expect(aborted).toEqual(['/b/reg/blobs/a#A', '/b/reg/blobs/c#C']);
  } finally {
    await driver.close();
    await new Promise((r) => http.close(r));
  }
});
