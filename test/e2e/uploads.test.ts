/** Blob upload workflows and their nasty cases, over real HTTP. */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, randomBlob, rawRequest, sha256 } from '../helpers/http.js';
import { openMetadata } from '../helpers/metadata.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

const u = (path: string): string => `${reg.url}${path}`;

async function startSession(repo: string): Promise<string> {
  const res = await fetch(u(`/v2/${repo}/blobs/uploads/`), { method: 'POST' });
  expect(res.status).toBe(202);
  expect(res.headers.get('range')).toBe('0-0');
  expect(res.headers.get('oci-chunk-min-length')).toMatch(/^\d+$/);
  expect(res.headers.get('docker-upload-uuid')).toMatch(/^[0-9a-f-]{36}$/);
  return res.headers.get('location')!;
}

async function patch(location: string, body: Buffer, start: number): Promise<Response> {
  return fetch(u(location), {
    method: 'PATCH',
    body,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + body.length - 1}`, 'Content-Length': String(body.length) },
  });
}

describe('uploads', () => {
  it('monolithic POST with digest stores the exact bytes', async () => {
    const blob = randomBlob(70_000);
    const digest = sha256(blob);
    const res = await fetch(u(`/v2/up/mono/blobs/uploads/?digest=${digest}`), { method: 'POST', body: blob });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v2/up/mono/blobs/${digest}`);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    const get = await fetch(u(`/v2/up/mono/blobs/${digest}`));
    expect(Buffer.from(await get.arrayBuffer()).equals(blob)).toBe(true);
  });

  it('chunked PATCHes in order, then PUT without body', async () => {
    const blob = randomBlob(300_001);
    const loc = await startSession('up/chunked');
    let offset = 0;
    for (const size of [100_000, 100_000, 100_001]) {
      const res = await patch(loc, blob.subarray(offset, offset + size), offset);
      expect(res.status).toBe(202);
      offset += size;
      expect(res.headers.get('range')).toBe(`0-${offset - 1}`);
    }
    const status = await fetch(u(loc));
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${blob.length - 1}`);
    const put = await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT' });
    expect(put.status).toBe(201);
    const head = await fetch(u(`/v2/up/chunked/blobs/${sha256(blob)}`), { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(blob.length));
  });

  it('out-of-order and overlapping chunks get 416 with the current Range, and the session survives', async () => {
    const blob = randomBlob(2000);
    const loc = await startSession('up/ooo');
    expect((await patch(loc, blob.subarray(0, 1000), 0)).status).toBe(202);
    const gap = await patch(loc, blob.subarray(1500), 1500);
    expect(gap.status).toBe(416);
    expect(gap.headers.get('range')).toBe('0-999');
    await expectError(gap, 416, 'BLOB_UPLOAD_INVALID');
    const overlap = await patch(loc, blob.subarray(500), 500);
    expect(overlap.status).toBe(416);
    expect((await patch(loc, blob.subarray(1000), 1000)).status).toBe(202);
    expect((await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT' })).status).toBe(201);
  });

  it('a wrong digest is refused and nothing becomes visible', async () => {
    const blob = randomBlob(5000);
    const wrong = sha256('something else');
    const res = await fetch(u(`/v2/up/wrong/blobs/uploads/?digest=${wrong}`), { method: 'POST', body: blob });
    await expectError(res, 400, 'DIGEST_INVALID');
    expect((await fetch(u(`/v2/up/wrong/blobs/${wrong}`), { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(u(`/v2/up/wrong/blobs/${sha256(blob)}`), { method: 'HEAD' })).status).toBe(404);
  });

  it('a PUT pins its digest against GC with its lease and leaves no pin behind, committed or refused', async () => {
    const pins = (): number => {
      const db = openMetadata(reg.dataDir);
      try {
        return Number((db.prepare('SELECT COUNT(*) AS n FROM gc_pins').get() as { n: number }).n);
      } finally {
        db.close();
      }
    };
    const before = pins();
    const blob = randomBlob(3000);
    // Refused: a wrong digest (the session is discarded), a Content-Range that does not match the body (the session stays).
    let loc = await startSession('up/pins');
    await expectError(await fetch(u(`${loc}?digest=${sha256('other')}`), { method: 'PUT', body: blob }), 400, 'DIGEST_INVALID');
    loc = await startSession('up/pins');
    const mismatch = await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT', body: blob, headers: { 'Content-Range': '0-99' } });
    expect(mismatch.status).toBe(416);
    expect(pins()).toBe(before);
    // Committed: the link's transaction took the pin away.
    const res = await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT', body: blob });
    expect(res.status).toBe(201);
    expect(pins()).toBe(before);
  });

  it('a malformed or unsupported digest is DIGEST_INVALID', async () => {
    for (const d of ['sha256:xyz', 'md5:d41d8cd98f00b204e9800998ecf8427e', 'sha256:' + 'A'.repeat(64), 'nonsense']) {
      await expectError(await fetch(u(`/v2/up/bad/blobs/uploads/?digest=${encodeURIComponent(d)}`), { method: 'POST', body: 'x' }), 400, 'DIGEST_INVALID');
    }
  });

  it('sha512 and blake3 digests are accepted', async () => {
    const { createHash } = await import('node:crypto');
    const { blake3 } = await import('hash-wasm');
    const blob = randomBlob(4096);
    for (const digest of [`sha512:${createHash('sha512').update(blob).digest('hex')}`, `blake3:${await blake3(blob)}`]) {
      const res = await fetch(u(`/v2/up/algos/blobs/uploads/?digest=${digest}`), { method: 'POST', body: blob });
      expect(res.status, await res.text()).toBe(201);
      const get = await fetch(u(`/v2/up/algos/blobs/${digest}`));
      expect(get.headers.get('docker-content-digest')).toBe(digest);
      expect(Buffer.from(await get.arrayBuffer()).equals(blob)).toBe(true);
    }
  });

  it('a body shorter than its Content-Range is rejected and the session is rolled back', async () => {
    const loc = await startSession('up/trunc');
    const res = await fetch(u(loc), { method: 'PATCH', body: randomBlob(100), headers: { 'Content-Range': '0-199' } });
    expect(res.status).toBe(416);
    const status = await fetch(u(loc));
    expect(status.headers.get('range')).toBe('0-0');
  });

  it('a client that disconnects mid-body leaves the session at its last good offset', async () => {
    const loc = await startSession('up/abort');
    const first = randomBlob(1000);
    expect((await patch(loc, first, 0)).status).toBe(202);
    await new Promise<void>((resolve) => {
      const url = new URL(u(loc));
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PATCH', headers: { 'Content-Length': '100000', 'Content-Range': '1000-100999' } });
      req.on('error', () => resolve());
      req.write(randomBlob(5000));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    await new Promise((r) => setTimeout(r, 200));
    const status = await fetch(u(loc));
    expect(status.headers.get('range')).toBe('0-999');
    const rest = randomBlob(500);
    expect((await patch(loc, rest, 1000)).status).toBe(202);
    const whole = Buffer.concat([first, rest]);
    expect((await fetch(u(`${loc}?digest=${sha256(whole)}`), { method: 'PUT' })).status).toBe(201);
  });

  it('streamed PATCH without Content-Range or Content-Length (docker style), then PUT with a final chunk', async () => {
    const blob = randomBlob(250_000);
    const loc = await startSession('up/stream');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(blob.subarray(0, 100_000));
        controller.enqueue(blob.subarray(100_000, 200_000));
        controller.close();
      },
    });
    const res = await fetch(u(loc), { method: 'PATCH', body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(202);
    expect(res.headers.get('range')).toBe('0-199999');
    const put = await fetch(u(`${res.headers.get('location')}?digest=${sha256(blob)}`), { method: 'PUT', body: blob.subarray(200_000) });
    expect(put.status).toBe(201);
  });

  it('cancel removes the session', async () => {
    const loc = await startSession('up/cancel');
    expect((await fetch(u(loc), { method: 'DELETE' })).status).toBe(204);
    await expectError(await fetch(u(loc)), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await patch(loc, randomBlob(10), 0), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('commit checks the bytes on disk, not only the running hash (a session file changed behind its back is refused)', async () => {
    const blob = randomBlob(50_000);
    const res = await fetch(u('/v2/up/tamper/blobs/uploads/'), { method: 'POST' });
    const loc = res.headers.get('location')!;
    const id = res.headers.get('docker-upload-uuid')!;
    expect((await patch(loc, blob, 0)).status).toBe(202);
    const file = join(reg.dataDir, 'uploads', id);
    const onDisk = readFileSync(file);
    onDisk[1234] = onDisk[1234]! ^ 0xff; // same size, one byte flipped
    writeFileSync(file, onDisk);
    const put = await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT' });
    await expectError(put, 400, 'DIGEST_INVALID');
    expect((await fetch(u(`/v2/up/tamper/blobs/${sha256(blob)}`), { method: 'HEAD' })).status).toBe(404);
  });

  it('a session cannot be used through another repository, nor with a bogus id', async () => {
    const loc = await startSession('up/owner');
    await expectError(await fetch(u(loc.replace('up/owner', 'up/other'))), 404, 'BLOB_UPLOAD_UNKNOWN');
    const traversal = await rawRequest(reg.url, 'GET', loc.replace('up/owner', 'up/x/../owner'));
    expect(traversal.status).toBe(400);
    expect(JSON.parse(traversal.body).errors[0].code).toBe('NAME_INVALID');
    // Dot segments are refused outright (400 NAME_INVALID) before any route sees them.
    expect((await rawRequest(reg.url, 'GET', '/v2/up/owner/blobs/uploads/../../../../etc')).status).toBe(400);
    await expectError(await fetch(u('/v2/up/owner/blobs/uploads/not-a-uuid')), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('concurrent pushes of the same content both succeed and store one copy', async () => {
    const blob = randomBlob(2_000_000);
    const digest = sha256(blob);
    const results = await Promise.all(
      ['up/c1', 'up/c2', 'up/c1', 'up/c2'].map((repo) => fetch(u(`/v2/${repo}/blobs/uploads/?digest=${digest}`), { method: 'POST', body: blob })),
    );
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    for (const repo of ['up/c1', 'up/c2']) {
      const get = await fetch(u(`/v2/${repo}/blobs/${digest}`));
      expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(digest);
    }
  });

  it('cross-repository mount: 201 from a source that has it, 202 session otherwise', async () => {
    const blob = randomBlob(3000);
    const digest = sha256(blob);
    await fetch(u(`/v2/up/src/blobs/uploads/?digest=${digest}`), { method: 'POST', body: blob });
    const ok = await fetch(u(`/v2/up/dst/blobs/uploads/?mount=${digest}&from=up/src`), { method: 'POST' });
    expect(ok.status).toBe(201);
    expect(ok.headers.get('location')).toBe(`/v2/up/dst/blobs/${digest}`);
    expect((await fetch(u(`/v2/up/dst/blobs/${digest}`), { method: 'HEAD' })).status).toBe(200);
    const miss = await fetch(u(`/v2/up/dst2/blobs/uploads/?mount=${digest}&from=up/nothing`), { method: 'POST' });
    expect(miss.status).toBe(202);
    expect(miss.headers.get('location')).toMatch(/^\/v2\/up\/dst2\/blobs\/uploads\//);
    const noFrom = await fetch(u(`/v2/up/dst3/blobs/uploads/?mount=${digest}`), { method: 'POST' });
    expect(noFrom.status).toBe(201);
  });

  it('a session whose lease ran out is taken over: its bytes move to a new file (fenced), the upload continues', async () => {
    const blob = randomBlob(300_000);
    const loc = await startSession('up/takeover');
    expect((await patch(loc, blob.subarray(0, 100_000), 0)).status).toBe(202);
    const id = loc.split('/').pop()!;
    const row = (db: ReturnType<typeof openMetadata>) => db.prepare('SELECT state FROM uploads WHERE id = ?').get(id) as { state: string };
    const db = openMetadata(reg.dataDir);
    let before: string;
    try {
      before = (JSON.parse(row(db).state) as { driver: { inode: string } }).driver.inode;
      // A request of another process held it and stalled past its lease.
      db.prepare("UPDATE uploads SET lease_holder = 'stalled-request', lease_until = ? WHERE id = ?").run(Date.now() - 1, id);
    } finally {
      db.close();
    }
    expect((await patch(loc, blob.subarray(100_000, 200_000), 100_000)).status).toBe(202);
    const after = openMetadata(reg.dataDir);
    try {
      expect(typeof before).toBe('string');
      expect((JSON.parse(row(after).state) as { driver: { inode: string } }).driver.inode).not.toBe(before);
    } finally {
      after.close();
    }
    expect((await patch(loc, blob.subarray(200_000), 200_000)).status).toBe(202);
    expect((await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT' })).status).toBe(201);
    expect(sha256(Buffer.from(await (await fetch(u(`/v2/up/takeover/blobs/${sha256(blob)}`))).arrayBuffer()))).toBe(sha256(blob));
  });

  it('an upload interrupted by a restart can be continued', async () => {
    const blob = randomBlob(1_000_000);
    const loc = await startSession('up/restart');
    expect((await patch(loc, blob.subarray(0, 600_000), 0)).status).toBe(202);
    reg = await reg.restart();
    expect((await fetch(u(loc))).headers.get('range')).toBe('0-599999');
    expect((await patch(loc, blob.subarray(600_000), 600_000)).status).toBe(202);
    expect((await fetch(u(`${loc}?digest=${sha256(blob)}`), { method: 'PUT' })).status).toBe(201);
  });
});
