import { randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DataError, StorageUnavailableError } from '../../src/data/errors.js';
import { sha256Of } from '../../src/data/hashing.js';
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
