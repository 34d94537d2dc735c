/** Refusals that must say the right thing: a held, referenced blob names its hold; GC never runs on an empty body. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pushImage } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

it('names the hold when a held, referenced blob is deleted; after release the reference rule answers', async () => {
  const img = await pushImage(reg.url, 'court/app', 'v1');
  const hold = (await (await fetch(`${reg.url}/api/v1/holds`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ repository: 'court/app', reason: 'case 42' }) })).json()) as { id: string };
  const held = await fetch(`${reg.url}/v2/court/app/blobs/${img.layer}`, { method: 'DELETE' });
  expect(held.status).toBe(403);
  const e = ((await held.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
  expect(e.code).toBe('DENIED');
  expect(e.message).toContain(hold.id);
  expect((await fetch(`${reg.url}/api/v1/holds/${hold.id}`, { method: 'DELETE' })).status).toBe(200);
  expect((await fetch(`${reg.url}/v2/court/app/blobs/${img.layer}`, { method: 'DELETE' })).status).toBe(409);
});

it('POST /api/v1/gc needs an explicit dryRun: an empty body is 400 and deletes nothing', async () => {
  const res = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  expect(res.status).toBe(400);
  expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('INVALID_PAYLOAD');
});
