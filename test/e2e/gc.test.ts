/**
 * Garbage collection over HTTP: what goes (blobs no manifest references, referrers whose subject
 * is gone), what stays (referenced, shared, within the grace window, held), dry run, events,
 * bytes removed from storage only after the metadata, and a sweep interrupted by a crash resumed
 * at the next start.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageManifest, pushBlob, pushImage, randomBlob, sha256 } from '../helpers/http.js';
import { openMetadata } from '../helpers/metadata.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MT = 'application/vnd.oci.image.manifest.v1+json';
const json = { 'Content-Type': 'application/json' };

interface Report {
  blobs: number;
  bytes: number;
  manifests: number;
  items: { kind: string; action: string; digest?: string; repository?: string; reason: string }[];
}

async function gc(url: string, dryRun: boolean): Promise<Report> {
  const res = await fetch(`${url}/api/v1/gc`, { method: 'POST', body: JSON.stringify({ dryRun }), headers: json });
  expect(res.status).toBe(200);
  return (await res.json()) as Report;
}
const blobPath = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const deleted = (r: Report) => r.items.filter((i) => i.kind === 'blob' && i.action === 'delete').map((i) => i.digest);

describe('GC with grace 0', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ gcGraceSeconds: 0, gcIntervalSeconds: 0 });
  });
  afterAll(async () => reg?.stop());

  it('dry run lists unreferenced blobs and changes nothing; the run deletes metadata, then bytes, with an event each', async () => {
    const img = await pushImage(reg.url, 'g/app', 'v1');
    const orphan = await pushBlob(reg.url, 'g/app', randomBlob(2048));
    await sleep(5);
    const preview = await gc(reg.url, true);
    expect(deleted(preview)).toEqual([orphan]);
    expect(preview).toMatchObject({ blobs: 1, bytes: 2048, manifests: 0 });
    expect(preview.items[0]!.reason).toContain('referenced by no manifest');
    expect(existsSync(blobPath(reg.dataDir, orphan))).toBe(true);
    expect((await fetch(`${reg.url}/v2/g/app/blobs/${orphan}`, { method: 'HEAD' })).status).toBe(200);

    const run = await gc(reg.url, false);
    expect(deleted(run)).toEqual([orphan]);
    expect((await fetch(`${reg.url}/v2/g/app/blobs/${orphan}`, { method: 'HEAD' })).status).toBe(404);
    expect(existsSync(blobPath(reg.dataDir, orphan))).toBe(false);
    // The image is untouched.
    for (const b of [img.layer, img.config]) expect(existsSync(blobPath(reg.dataDir, b))).toBe(true);
    expect((await fetch(`${reg.url}/v2/g/app/manifests/v1`, { headers: { Accept: MT } })).status).toBe(200);

    const db = openMetadata(reg.dataDir, { readonly: true });
    const ev = db.prepare("SELECT action, digest, before FROM events WHERE action LIKE 'gc.%' ORDER BY seq").all() as { action: string; digest: string | null; before: string }[];
    db.close();
    const blobEvents = ev.filter((e) => e.action === 'gc.blob.delete');
    expect(blobEvents.map((e) => e.digest)).toEqual([orphan]);
    expect(JSON.parse(blobEvents[0]!.before)).toEqual({ blobs: [{ digest: orphan, size: 2048, repositories: ['g/app'] }] });
    expect(ev.some((e) => e.action === 'gc.run')).toBe(true);
    // Nothing left: a second run finds nothing.
    expect((await gc(reg.url, false)).blobs).toBe(0);
  });

  it('a blob shared by two images stays until neither references it; an untagged manifest is kept', async () => {
    const layer = randomBlob(1500);
    const cfg = Buffer.from('{"os":"linux","architecture":"arm64"}');
    const refs = async (repo: string) => ({ l: await pushBlob(reg.url, repo, layer), c: await pushBlob(reg.url, repo, cfg) });
    const a = await refs('g/one');
    await refs('g/two');
    const ma = imageManifest({ digest: a.c, size: cfg.length }, [{ digest: a.l, size: layer.length }]);
    const mb = imageManifest({ digest: a.c, size: cfg.length }, [{ digest: a.l, size: layer.length }], { annotations: { b: '1' } });
    for (const [repo, m] of [['g/one', ma], ['g/two', mb]] as const) {
      expect((await fetch(`${reg.url}/v2/${repo}/manifests/${sha256(m)}`, { method: 'PUT', body: m, headers: { 'Content-Type': MT } })).status).toBe(201);
    }
    await sleep(5);
    expect(deleted(await gc(reg.url, false))).not.toContain(a.l); // referenced by untagged manifests: kept
    expect((await fetch(`${reg.url}/v2/g/one/manifests/${sha256(ma)}`, { method: 'DELETE' })).status).toBe(202);
    expect(deleted(await gc(reg.url, false))).not.toContain(a.l); // g/two still needs it
    const still = await fetch(`${reg.url}/v2/g/two/blobs/${a.l}`);
    expect(sha256(Buffer.from(await still.arrayBuffer()))).toBe(a.l);
    expect((await fetch(`${reg.url}/v2/g/two/manifests/${sha256(mb)}`, { method: 'DELETE' })).status).toBe(202);
    const last = await gc(reg.url, false);
    expect(deleted(last)).toEqual(expect.arrayContaining([a.l, a.c]));
    expect(existsSync(blobPath(reg.dataDir, a.l))).toBe(false);
    // Pushing the same bytes again brings the blob back.
    expect(await pushBlob(reg.url, 'g/two', layer)).toBe(a.l);
    const back = await fetch(`${reg.url}/v2/g/two/blobs/${a.l}`);
    expect(sha256(Buffer.from(await back.arrayBuffer()))).toBe(a.l);
  });

  it('a referrer goes with its deleted subject, and its blobs after it', async () => {
    const img = await pushImage(reg.url, 'g/sig', 'v1');
    const sigLayer = await pushBlob(reg.url, 'g/sig', Buffer.from('signature bytes'));
    const emptyCfg = await pushBlob(reg.url, 'g/sig', Buffer.from('{}'));
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT,
        artifactType: 'application/vnd.example.signature',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyCfg, size: 2 },
        layers: [{ mediaType: 'application/octet-stream', digest: sigLayer, size: 15 }],
        subject: { mediaType: MT, digest: img.digest, size: img.bytes.length },
      }),
    );
    expect((await fetch(`${reg.url}/v2/g/sig/manifests/${sha256(sig)}`, { method: 'PUT', body: sig, headers: { 'Content-Type': MT } })).status).toBe(201);
    await sleep(5);
    expect((await gc(reg.url, false)).manifests).toBe(0); // subject present: the referrer stays
    expect((await fetch(`${reg.url}/v2/g/sig/manifests/${img.digest}`, { method: 'DELETE' })).status).toBe(202);
    const run = await gc(reg.url, false);
    expect(run.items.filter((i) => i.kind === 'manifest' && i.action === 'delete').map((i) => i.digest)).toEqual([sha256(sig)]);
    expect(deleted(run)).toEqual(expect.arrayContaining([sigLayer, img.layer]));
    expect((await fetch(`${reg.url}/v2/g/sig/manifests/${sha256(sig)}`, { method: 'HEAD', headers: { Accept: MT } })).status).toBe(404);
  });

  it('held content is kept and the dry run says why', async () => {
    const orphan = await pushBlob(reg.url, 'g/held', randomBlob(999));
    const hold = await fetch(`${reg.url}/api/v1/holds`, { method: 'POST', body: JSON.stringify({ repository: 'g/held', reason: 'litigation 42' }), headers: json });
    expect(hold.status, await hold.clone().text()).toBe(201);
    await sleep(5);
    const preview = await gc(reg.url, true);
    const item = preview.items.find((i) => i.digest === orphan);
    expect(item).toMatchObject({ action: 'keep' });
    expect(item!.reason).toContain('hold');
    await gc(reg.url, false);
    expect((await fetch(`${reg.url}/v2/g/held/blobs/${orphan}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('refuses a malformed body', async () => {
    const res = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', body: '{"dryRun":"yes"}', headers: json });
    expect(res.status).toBe(400);
  });
});

describe('scheduled GC', () => {
  it('runs every gcIntervalSeconds', async () => {
    const reg = await startTestRegistry({ gcGraceSeconds: 0, gcIntervalSeconds: 1 });
    try {
      const orphan = await pushBlob(reg.url, 'g/timer', randomBlob(64));
      for (let i = 0; (await fetch(`${reg.url}/v2/g/timer/blobs/${orphan}`, { method: 'HEAD' })).status === 200; i++) {
        expect(i).toBeLessThan(100);
        await sleep(100);
      }
      // The metadata goes first (T1), the bytes right after: wait for them rather than race them.
      for (let i = 0; existsSync(blobPath(reg.dataDir, orphan)); i++) {
        expect(i).toBeLessThan(100);
        await sleep(50);
      }
    } finally {
      await reg.stop();
    }
  });
});

describe('GC with the default grace window', () => {
  it('keeps fresh uploads; a sweep interrupted after its metadata commit is resumed at the next start', async () => {
    let reg = await startTestRegistry({ gcIntervalSeconds: 0 });
    try {
      const orphan = await pushBlob(reg.url, 'g/fresh', randomBlob(100));
      const r = await gc(reg.url, false);
      expect(r.blobs).toBe(0);
      expect((await fetch(`${reg.url}/v2/g/fresh/blobs/${orphan}`, { method: 'HEAD' })).status).toBe(200);

      // What a kill -9 between T1 and the byte deletion leaves: metadata gone, tombstone `deleting`, bytes present.
      const db = openMetadata(reg.dataDir);
      db.transaction(() => {
        db.prepare('DELETE FROM repository_blobs WHERE digest = ?').run(orphan);
        db.prepare('DELETE FROM blobs WHERE digest = ?').run(orphan);
        db.prepare("INSERT INTO gc_tombstones (digest, generation, state, size) VALUES (?, 99, 'deleting', 100)").run(orphan);
      })();
      db.close();
      expect(existsSync(blobPath(reg.dataDir, orphan))).toBe(true);
      reg = await reg.restart();
      for (let i = 0; existsSync(blobPath(reg.dataDir, orphan)); i++) {
        expect(i).toBeLessThan(200);
        await sleep(25);
      }
      const check = openMetadata(reg.dataDir, { readonly: true });
      for (let i = 0; (check.prepare('SELECT state FROM gc_tombstones WHERE digest = ?').get(orphan) as { state: string }).state !== 'deleted'; i++) {
        expect(i).toBeLessThan(200);
        await sleep(25);
      }
      check.close();
    } finally {
      await reg.stop();
    }
  });
});
