/**
 * Several processes on one data directory (issue 18, item 10): the CLI writing while the
 * server runs, two servers sharing the metadata DB and the blob store. Write transactions must
 * not fail with SQLITE_BUSY, and an upload session is locked across processes.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { pushBlob, randomBlob, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MiB = 1024 * 1024;
const DB_MODULE = fileURLToPath(new URL('../../src/meta/db.ts', import.meta.url));
const STORE_MODULE = fileURLToPath(new URL('../../src/meta/registry-store.ts', import.meta.url));

/**
 * A second OS process (as the CLI is) that writes through RegistryStore for `ms` milliseconds:
 * read-then-write transactions, as linkBlob's (repository lookup, then inserts and an event).
 */
function writerProcess(dbFile: string, ms: number): Promise<{ writes: number; errors: string[] }> {
  const script = `
    const { openDatabase } = await import(${JSON.stringify(DB_MODULE)});
    const { RegistryStore } = await import(${JSON.stringify(STORE_MODULE)});
    const store = new RegistryStore(openDatabase(${JSON.stringify(dbFile)}));
    const errors = [];
    let writes = 0;
    console.log('ready');
    const end = Date.now() + ${ms};
    for (let i = 0; Date.now() < end; i++) {
      const digest = 'sha256:' + (process.pid.toString(16) + '-' + i).padStart(64, '0').replace(/[^0-9a-f]/g, 'f');
      try {
        store.linkBlob('mp/cli-' + (i % 5), digest, 1, 'cli', 'oci.blob.push');
        writes++;
      } catch (err) {
        errors.push(String(err && err.code || err));
      }
      await new Promise((r) => setTimeout(r, 4));
    }
    console.log(JSON.stringify({ writes, errors: errors.slice(0, 20), errorCount: errors.length }));
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) return reject(new Error(`writer exited ${code}: ${err}${out}`));
      const r = JSON.parse(last) as { writes: number; errors: string[]; errorCount: number };
      resolve({ writes: r.writes, errors: r.errorCount > 0 ? r.errors : [] });
    });
  });
}

describe('the CLI writing while the server runs', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry();
  });
  afterAll(async () => reg.stop());

  it('neither side gets SQLITE_BUSY: no 500s, no failed CLI writes', async () => {
    const writer = writerProcess(join(reg.dataDir, 'metadata.db'), 6_000);
    // Give the writer time to start (tsx compiles on the way up), then push beside it.
    await new Promise((r) => setTimeout(r, 1_500));
    const statuses: number[] = [];
    const deadline = Date.now() + 4_000;
    let n = 0;
    while (Date.now() < deadline) {
      const batch = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const blob = randomBlob(64 + (n++ % 100));
          const res = await fetch(`${reg.url}/v2/mp/server-${n % 3}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
          await res.arrayBuffer();
          return res.status;
        }),
      );
      statuses.push(...batch);
    }
    const { writes, errors } = await writer;
    console.log(`writer: ${writes} writes; server: ${statuses.length} pushes`);
    expect(errors).toEqual([]);
    expect(writes).toBeGreaterThan(50);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 201)).toEqual([]);
  }, 30_000);
});

/** A request body that trickles in, so two requests overlap on the server. */
function slowBody(bytes: Buffer, pieces = 16, delayMs = 25): ReadableStream<Uint8Array> {
  let i = 0;
  const size = Math.ceil(bytes.length / pieces);
  return new ReadableStream({
    async pull(controller) {
      if (i * size >= bytes.length) return controller.close();
      await new Promise((r) => setTimeout(r, delayMs));
      controller.enqueue(bytes.subarray(i * size, (i + 1) * size));
      i++;
    },
  });
}

function slowPatch(url: string, location: string, bytes: Buffer, start: number): Promise<Response> {
  return fetch(`${url}${location}`, {
    method: 'PATCH',
    body: slowBody(bytes),
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + bytes.length - 1}`, 'Content-Length': String(bytes.length) },
    duplex: 'half',
  } as RequestInit);
}

describe('two servers on one data directory', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  let db: Db;
  let store: RegistryStore;
  beforeAll(async () => {
    a = await startTestRegistry({ fsync: true });
    b = await startTestRegistry({ fsync: true }, a.dataDir);
    db = openDatabase(join(a.dataDir, 'metadata.db'));
    store = new RegistryStore(db);
  });
  afterAll(async () => {
    db.$client.close();
    await b.stop();
    await a.stop();
  });

  it('locks an upload session across processes: two PATCHes at the same offset, one wins, the other gets 416', async () => {
    for (let round = 0; round < 3; round++) {
      const open = await fetch(`${a.url}/v2/mp/lease/blobs/uploads/`, { method: 'POST' });
      const loc = open.headers.get('location')!;
      const bodies = [randomBlob(4 * MiB), randomBlob(4 * MiB)];
      const [ra, rb] = await Promise.all([slowPatch(a.url, loc, bodies[0]!, 0), slowPatch(b.url, loc, bodies[1]!, 0)]);
      expect([ra.status, rb.status].sort()).toEqual([202, 416]);
      const winner = ra.status === 202 ? bodies[0]! : bodies[1]!;
      const loser = ra.status === 202 ? rb : ra;
      expect(loser.headers.get('range')).toBe(`0-${4 * MiB - 1}`);
      // The session holds exactly the winner's bytes, whichever server commits it.
      const put = await fetch(`${(round % 2 ? a : b).url}${loc}?digest=${sha256(winner)}`, { method: 'PUT' });
      expect(put.status, await put.text()).toBe(201);
      const got = Buffer.from(await (await fetch(`${a.url}/v2/mp/lease/blobs/${sha256(winner)}`)).arrayBuffer());
      expect(got.equals(winner)).toBe(true);
    }
  }, 60_000);

  it('waits for a live lease held elsewhere, and takes over one whose holder died', async () => {
    const open = await fetch(`${a.url}/v2/mp/held/blobs/uploads/`, { method: 'POST' });
    const loc = open.headers.get('location')!;
    const id = open.headers.get('docker-upload-uuid')!;
    const blob = randomBlob(1000);

    expect(store.acquireUploadLease(id, 'other-process', 600)).toBe('acquired');
    const started = Date.now();
    const res = await fetch(`${b.url}${loc}`, { method: 'PATCH', body: blob.subarray(0, 500), headers: { 'Content-Range': '0-499', 'Content-Length': '500' } });
    expect(res.status).toBe(202);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);

    // A holder that died leaves a lease that ran out: the next request just takes it.
    expect(store.acquireUploadLease(id, 'dead-process', 1)).toBe('acquired');
    await new Promise((r) => setTimeout(r, 10));
    const next = await fetch(`${a.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT', body: blob.subarray(500), headers: { 'Content-Range': '500-999', 'Content-Length': '500' } });
    expect(next.status).toBe(201);
  });

  it('a holder whose lease was taken over cannot save its state (fencing)', () => {
    const id = crypto.randomUUID();
    store.createUpload(id, 'mp/fence', JSON.stringify({ size: 0, driver: {} }), 'tester');
    expect(store.acquireUploadLease(id, 'first', 1)).toBe('acquired');
    const until = Date.now() + 5;
    while (Date.now() < until) { /* let the 1 ms lease run out */ }
    expect(store.acquireUploadLease(id, 'second', 10_000)).toBe('acquired');
    expect(store.acquireUploadLease(id, 'third', 10_000)).toBe('busy');
    expect(store.updateUpload(id, JSON.stringify({ size: 5, driver: {} }), 'first')).toBe(false);
    expect(store.updateUpload(id, JSON.stringify({ size: 7, driver: {} }), 'second')).toBe(true);
    expect(JSON.parse(store.getUpload(id)!.state)).toEqual({ size: 7, driver: {} });
    store.deleteUpload(id);
    expect(store.acquireUploadLease(id, 'first', 10)).toBe('missing');
  });

  it('both servers push and delete in the same repositories concurrently without a 500', async () => {
    const statuses = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const reg = i % 2 ? a : b;
        const d = await pushBlob(reg.url, `mp/both-${i % 4}`, randomBlob(200 + i));
        const del = await fetch(`${(i % 2 ? b : a).url}/v2/mp/both-${i % 4}/blobs/${d}`, { method: 'DELETE' });
        return del.status;
      }),
    );
    expect(statuses.filter((s) => s !== 202)).toEqual([]);
  }, 30_000);
});
