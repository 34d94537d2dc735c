/**
 * Garbage collection and retention policies ask the evidence module too: held and retained
 * content is kept (with the reason in the GC report), and goes once the hold is lifted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pushBlob, pushImage, randomBlob } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { json, postHold, pushEvidence } from '../unit/evidence-push.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry({ gcGraceSeconds: 0 });
  expect((await fetch(`${reg.url}/api/v1/families`)).status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

const gc = async () => {
  const res = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ dryRun: false }) });
  expect(res.status).toBe(200);
  return (await json(res)) as { items: { kind: string; action: string; digest?: string; tag?: string; reason: string }[] };
};

it('GC keeps an unreferenced blob of a held repository, naming the hold, and collects it after release', async () => {
  const repo = 'gcev/held';
  await pushImage(reg.url, repo, 'v1');
  const loose = await pushBlob(reg.url, repo, randomBlob(300));
  const hold = await json(await postHold(reg.url, { repository: repo, reason: 'subpoena' }));
  const kept = await gc();
  expect(kept.items.find((i) => i.digest === loose)).toMatchObject({ action: 'keep', reason: expect.stringContaining(hold.id) });
  expect((await fetch(`${reg.url}/v2/${repo}/blobs/${loose}`, { method: 'HEAD' })).status).toBe(200);
  expect((await fetch(`${reg.url}/api/v1/holds/${hold.id}`, { method: 'DELETE' })).status).toBe(200);
  const swept = await gc();
  expect(swept.items.find((i) => i.digest === loose)).toMatchObject({ action: 'delete' });
  expect((await fetch(`${reg.url}/v2/${repo}/blobs/${loose}`, { method: 'HEAD' })).status).toBe(404);
});

it('a retention policy does not remove an image whose evidence is retained', async () => {
  const repo = 'gcev/policy';
  const old = await pushImage(reg.url, repo, 'old');
  await pushEvidence(reg.url, repo, { digest: old.digest, size: old.bytes.length }, 'sbom');
  await pushImage(reg.url, repo, 'new');
  const policy = await fetch(`${reg.url}/api/v1/namespaces/gcev/policies`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ immutableTags: [], retention: [{ repositories: 'gcev/policy', keepMostRecent: 1 }] }),
  });
  expect(policy.status, await policy.text()).toBe(200);
  const report = await gc();
  const item = report.items.find((i) => i.digest === old.digest && i.action === 'keep');
  expect(item?.reason).toMatch(/retained until/);
  expect((await fetch(`${reg.url}/v2/${repo}/manifests/${old.digest}`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(200);
});
