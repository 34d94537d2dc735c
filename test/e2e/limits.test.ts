/** Size limits answer 413 in the envelope and name the setting an operator would change. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBlob, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry({ maxBlobSize: 1000 });
});
afterAll(async () => {
  await reg.stop();
});

async function refusal(res: Response): Promise<{ code: string; message: string }> {
  expect(res.status).toBe(413);
  return ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
}

describe('maxBlobSize', () => {
  it('a monolithic push over the limit names maxBlobSize', async () => {
    const bytes = randomBlob(2000);
    const res = await fetch(`${reg.url}/v2/team/big/blobs/uploads/?digest=${sha256(bytes)}`, { method: 'POST', body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
    const e = await refusal(res);
    expect(e.code).toBe('SIZE_INVALID');
    expect(e.message).toContain('maxBlobSize');
    expect(e.message).toContain('1000');
  });

  it('a chunked push that grows over the limit names it too, and a blob at the limit is fine', async () => {
    const start = await fetch(`${reg.url}/v2/team/big/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const location = start.headers.get('location')!;
    const res = await fetch(new URL(location, reg.url), { method: 'PATCH', body: randomBlob(1500), headers: { 'Content-Type': 'application/octet-stream' } });
    const e = await refusal(res);
    expect(e.code).toBe('SIZE_INVALID');
    expect(e.message).toContain('ARTIFACT_STORE_MAX_BLOB_SIZE');
    const ok = randomBlob(1000);
    expect((await fetch(`${reg.url}/v2/team/big/blobs/uploads/?digest=${sha256(ok)}`, { method: 'POST', body: ok, headers: { 'Content-Type': 'application/octet-stream' } })).status).toBe(201);
  });
});
