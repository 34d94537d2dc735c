/** Manifests, tags, referrers, blobs pull/delete and catalog, over real HTTP. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, imageManifest, pushBlob, pushImage, randomBlob, rawRequest, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry({ maxManifestSize: 64 * 1024 });
});
afterAll(async () => {
  await reg.stop();
});
const u = (path: string): string => `${reg.url}${path}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

const put = (repo: string, ref: string, body: Buffer | string, type = OCI_MANIFEST): Promise<Response> =>
  fetch(u(`/v2/${repo}/manifests/${ref}`), { method: 'PUT', body, headers: { 'Content-Type': type } });

describe('manifests', () => {
  it('round-trips exact bytes by tag and digest with the pushed media type', async () => {
    const img = await pushImage(reg.url, 'm/app', 'v1');
    for (const ref of ['v1', img.digest]) {
      const res = await fetch(u(`/v2/m/app/manifests/${ref}`));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
      expect(res.headers.get('docker-content-digest')).toBe(img.digest);
      expect(res.headers.get('content-length')).toBe(String(img.bytes.length));
      expect(Buffer.from(await res.arrayBuffer()).equals(img.bytes)).toBe(true);
      const head = await fetch(u(`/v2/m/app/manifests/${ref}`), { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(img.bytes.length));
      expect(head.headers.get('docker-content-digest')).toBe(img.digest);
    }
  });

  it('keeps whitespace and key order (digest of the stored bytes is the pushed digest)', async () => {
    const layer = await pushBlob(reg.url, 'm/ws', randomBlob(10));
    const cfg = Buffer.from('{}');
    const cfgDigest = await pushBlob(reg.url, 'm/ws', cfg);
    const text = `{\n  "schemaVersion": 2,\n  "mediaType": "${OCI_MANIFEST}",\n  "layers": [{"size": 10, "digest": "${layer}", "mediaType": "application/octet-stream"}],\n  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "${cfgDigest}", "size": 2}\n}\n`;
    const res = await put('m/ws', 'pretty', text);
    expect(res.status).toBe(201);
    expect(res.headers.get('docker-content-digest')).toBe(sha256(text));
    expect(await (await fetch(u('/v2/m/ws/manifests/pretty'))).text()).toBe(text);
  });

  it('rejects manifests referencing unknown blobs, with MANIFEST_BLOB_UNKNOWN', async () => {
    const missing = sha256('not pushed');
    await expectError(await put('m/missing', 'x', imageManifest({ digest: missing, size: 10 }, [])), 400, 'MANIFEST_BLOB_UNKNOWN');
    await expectError(await fetch(u('/v2/m/missing/manifests/x')), 404, 'NAME_UNKNOWN');
  });

  it('a blob of another repository does not satisfy a manifest', async () => {
    const other = await pushBlob(reg.url, 'm/elsewhere', randomBlob(20));
    await expectError(await put('m/nolink', 'x', imageManifest({ digest: other, size: 20 }, [])), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('rejects invalid JSON, wrong media types, mismatched Content-Type and bad descriptors', async () => {
    const cfg = await pushBlob(reg.url, 'm/bad', Buffer.from('{}'));
    const good = imageManifest({ digest: cfg, size: 2 }, []);
    await expectError(await put('m/bad', 'x', '{not json'), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'x', '[]'), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'x', good, OCI_INDEX), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'x', good, 'application/vnd.unknown+json'), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'x', JSON.stringify({ schemaVersion: 1, name: 'x' }), 'application/json'), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'x', imageManifest({ digest: 'sha256:zz', size: 2 }, [])), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'x', imageManifest({ digest: cfg, size: 3 }, [])), 400, 'MANIFEST_INVALID');
    await expectError(await put('m/bad', 'bad tag!', good), 400, 'MANIFEST_INVALID');
    expect((await put('m/bad', 'ok', good)).status).toBe(201);
  });

  it('refuses a manifest over the size cap with 413 and stores nothing', async () => {
    const cfg = await pushBlob(reg.url, 'm/huge', Buffer.from('{}'));
    const huge = imageManifest({ digest: cfg, size: 2 }, [], { annotations: { pad: 'x'.repeat(70 * 1024) } });
    const res = await put('m/huge', 'big', huge);
    await expectError(res, 413, 'SIZE_INVALID');
    await expectError(await fetch(u('/v2/m/huge/manifests/big')), 404, 'MANIFEST_UNKNOWN');
  });

  it('PUT by digest checks the digest; several ?tag= are all set and echoed', async () => {
    const cfg = await pushBlob(reg.url, 'm/tags', Buffer.from('{}'));
    const body = imageManifest({ digest: cfg, size: 2 }, []);
    await expectError(await put('m/tags', sha256('other'), body), 400, 'DIGEST_INVALID');
    const res = await fetch(u(`/v2/m/tags/manifests/${sha256(body)}?tag=a&tag=b`), { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
    expect(res.status).toBe(201);
    expect(res.headers.get('oci-tag')).toBe('a, b');
    for (const t of ['a', 'b']) expect((await fetch(u(`/v2/m/tags/manifests/${t}`))).headers.get('docker-content-digest')).toBe(sha256(body));
  });

  it('an index needs its child manifests; docker schema2 list works too', async () => {
    const a = await pushImage(reg.url, 'm/multi', 'amd64');
    const missing = sha256('nope');
    const idx = (children: { digest: string; size: number }[], mt = OCI_INDEX, childType = OCI_MANIFEST) =>
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mt, manifests: children.map((c) => ({ mediaType: childType, ...c, platform: { os: 'linux', architecture: 'amd64' } })) }));
    await expectError(await put('m/multi', 'all', idx([{ digest: missing, size: 10 }]), OCI_INDEX), 400, 'MANIFEST_BLOB_UNKNOWN');
    expect((await put('m/multi', 'all', idx([{ digest: a.digest, size: a.bytes.length }]), OCI_INDEX)).status).toBe(201);
    const list = 'application/vnd.docker.distribution.manifest.list.v2+json';
    const res = await put('m/multi', 'dlist', idx([{ digest: a.digest, size: a.bytes.length }], list), list);
    expect(res.status).toBe(201);
    expect((await fetch(u('/v2/m/multi/manifests/dlist'))).headers.get('content-type')).toBe(list);
  });

  it('docker schema2 manifests keep their media type', async () => {
    const cfg = Buffer.from('{"os":"linux"}');
    const cfgDigest = await pushBlob(reg.url, 'm/docker', cfg);
    const layer = randomBlob(100);
    const layerDigest = await pushBlob(reg.url, 'm/docker', layer);
    const mt = 'application/vnd.docker.distribution.manifest.v2+json';
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: mt,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: cfg.length, digest: cfgDigest },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 100, digest: layerDigest }],
    });
    expect((await put('m/docker', 'latest', body, mt)).status).toBe(201);
    expect((await fetch(u('/v2/m/docker/manifests/latest'))).headers.get('content-type')).toBe(mt);
  });

  it('delete by tag keeps the manifest; delete by digest removes it and its tags', async () => {
    const img = await pushImage(reg.url, 'm/del', 'one');
    await put('m/del', 'two', img.bytes);
    expect((await fetch(u('/v2/m/del/manifests/one'), { method: 'DELETE' })).status).toBe(202);
    await expectError(await fetch(u('/v2/m/del/manifests/one')), 404, 'MANIFEST_UNKNOWN');
    expect((await fetch(u(`/v2/m/del/manifests/${img.digest}`))).status).toBe(200);
    expect((await fetch(u(`/v2/m/del/manifests/${img.digest}`), { method: 'DELETE' })).status).toBe(202);
    await expectError(await fetch(u('/v2/m/del/manifests/two')), 404, 'MANIFEST_UNKNOWN');
    await expectError(await fetch(u(`/v2/m/del/manifests/${img.digest}`), { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    await expectError(await fetch(u('/v2/m/nowhere/manifests/x'), { method: 'DELETE' }), 404, 'NAME_UNKNOWN');
  });
});

describe('blobs', () => {
  it('serves ranges: a-b, a-, suffix; 416 past the end', async () => {
    const blob = randomBlob(1000);
    const d = await pushBlob(reg.url, 'b/range', blob);
    const get = (range: string) => fetch(u(`/v2/b/range/blobs/${d}`), { headers: { Range: range } });
    let res = await get('bytes=10-19');
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 10-19/1000');
    expect(Buffer.from(await res.arrayBuffer()).equals(blob.subarray(10, 20))).toBe(true);
    res = await get('bytes=900-');
    expect(res.status).toBe(206);
    expect(Buffer.from(await res.arrayBuffer()).equals(blob.subarray(900))).toBe(true);
    res = await get('bytes=-100');
    expect(Buffer.from(await res.arrayBuffer()).equals(blob.subarray(900))).toBe(true);
    res = await get('bytes=1000-');
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */1000');
  });

  it('never compresses blobs, even when asked', async () => {
    const blob = Buffer.alloc(50_000, 'a');
    const d = await pushBlob(reg.url, 'b/gzip', blob);
    const res = await fetch(u(`/v2/b/gzip/blobs/${d}`), { headers: { 'Accept-Encoding': 'gzip' } });
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(res.headers.get('content-length')).toBe('50000');
  });

  it('404 BLOB_UNKNOWN for unknown blobs and 400 DIGEST_INVALID for bad digests', async () => {
    await expectError(await fetch(u(`/v2/b/none/blobs/${sha256('x')}`)), 404, 'BLOB_UNKNOWN');
    await expectError(await fetch(u('/v2/b/none/blobs/sha256:123')), 400, 'DIGEST_INVALID');
    const head = await fetch(u(`/v2/b/none/blobs/${sha256('x')}`), { method: 'HEAD' });
    expect(head.status).toBe(404);
  });

  it('bytes missing behind metadata are a clear 404, not a hang or a 500', async () => {
    const blob = randomBlob(500);
    const d = await pushBlob(reg.url, 'b/lost', blob);
    const { rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    rmSync(join(reg.dataDir, 'blobs', 'sha256', d.slice(7, 9), d.slice(7)));
    const res = await fetch(u(`/v2/b/lost/blobs/${d}`));
    await expectError(res, 404, 'BLOB_UNKNOWN');
  });

  it('refuses to delete a blob a manifest still needs; deletes it once the manifest is gone', async () => {
    const img = await pushImage(reg.url, 'b/del', 'v');
    await expectError(await fetch(u(`/v2/b/del/blobs/${img.layer}`), { method: 'DELETE' }), 409, 'DENIED');
    expect((await fetch(u(`/v2/b/del/manifests/${img.digest}`), { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(u(`/v2/b/del/blobs/${img.layer}`), { method: 'DELETE' })).status).toBe(202);
    await expectError(await fetch(u(`/v2/b/del/blobs/${img.layer}`)), 404, 'BLOB_UNKNOWN');
  });
});

describe('names', () => {
  it('path tricks never reach another repository', async () => {
    await pushImage(reg.url, 'n/target', 'v');
    for (const path of ['/v2/n/x/../target/manifests/v', '/v2/n//target/manifests/v', '/v2/n%2ftarget/manifests/v', '/v2/n/./target/manifests/v', '/v2/N/target/manifests/v']) {
      const res = await rawRequest(reg.url, 'GET', path);
      expect(res.status, path).toBe(400);
      expect(JSON.parse(res.body).errors[0].code).toBe('NAME_INVALID');
    }
    await expectError(await fetch(u(`/v2/${'a'.repeat(256)}/tags/list`)), 400, 'NAME_INVALID');
  });
});

describe('tags and catalog', () => {
  it('lists tags sorted, paginates with n/last and Link, n=0 is empty', async () => {
    const img = await pushImage(reg.url, 't/app', 'b');
    for (const t of ['a', 'c', 'B', '1.0']) await put('t/app', t, img.bytes);
    const all = await (await fetch(u('/v2/t/app/tags/list'))).json();
    expect(all).toEqual({ name: 't/app', tags: ['1.0', 'B', 'a', 'b', 'c'] });
    const p1 = await fetch(u('/v2/t/app/tags/list?n=2'));
    expect((await p1.json()).tags).toEqual(['1.0', 'B']);
    expect(p1.headers.get('link')).toBe('</v2/t/app/tags/list?n=2&last=B>; rel="next"');
    const p2 = await fetch(u('/v2/t/app/tags/list?n=2&last=B'));
    expect((await p2.json()).tags).toEqual(['a', 'b']);
    const p3 = await fetch(u('/v2/t/app/tags/list?n=2&last=b'));
    expect((await p3.json()).tags).toEqual(['c']);
    expect(p3.headers.get('link')).toBeNull();
    const zero = await fetch(u('/v2/t/app/tags/list?n=0'));
    expect((await zero.json()).tags).toEqual([]);
    expect(zero.headers.get('link')).toBeNull();
    await expectError(await fetch(u('/v2/t/none/tags/list')), 404, 'NAME_UNKNOWN');
  });

  it('lists repositories with pagination', async () => {
    const first = await fetch(u('/v2/_catalog?n=1'));
    const body = (await first.json()) as { repositories: string[] };
    expect(body.repositories.length).toBe(1);
    expect(first.headers.get('link')).toMatch(/^<\/v2\/_catalog\?n=1&last=[^>]+>; rel="next"$/);
    const all = (await (await fetch(u('/v2/_catalog'))).json()) as { repositories: string[] };
    expect(all.repositories).toContain('t/app');
    expect([...all.repositories].sort()).toEqual(all.repositories);
  });
});

describe('referrers', () => {
  it('lists referrers with artifactType and annotations, filters, and sends OCI-Subject', async () => {
    const subject = await pushImage(reg.url, 'r/app', 'v1');
    const empty = await pushBlob(reg.url, 'r/app', Buffer.from('{}'));
    const sig = imageManifest({ digest: empty, size: 2 }, [], {
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length },
      annotations: { 'org.example.k': 'v' },
    });
    const res = await put('r/app', sha256(sig), sig);
    expect(res.status).toBe(201);
    expect(res.headers.get('oci-subject')).toBe(subject.digest);
    // no artifactType: the config media type stands in
    const sbom = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.example.sbom.config', digest: empty, size: 2 },
        layers: [],
        subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length },
      }),
    );
    expect((await put('r/app', sha256(sbom), sbom)).status).toBe(201);

    const list = await fetch(u(`/v2/r/app/referrers/${subject.digest}`));
    expect(list.status).toBe(200);
    expect(list.headers.get('content-type')).toBe(OCI_INDEX);
    const idx = (await list.json()) as { manifests: { digest: string; artifactType?: string; annotations?: Record<string, string>; size: number }[] };
    const byDigest = new Map(idx.manifests.map((m) => [m.digest, m]));
    expect(byDigest.get(sha256(sig))).toMatchObject({ artifactType: 'application/vnd.example.signature', annotations: { 'org.example.k': 'v' }, size: sig.length });
    expect(byDigest.get(sha256(sbom))?.artifactType).toBe('application/vnd.example.sbom.config');

    const filtered = await fetch(u(`/v2/r/app/referrers/${subject.digest}?artifactType=application/vnd.example.signature`));
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(((await filtered.json()) as { manifests: unknown[] }).manifests.length).toBe(1);

    const none = await fetch(u(`/v2/r/app/referrers/${sha256('nothing')}`));
    expect(none.status).toBe(200);
    expect(await none.json()).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    await expectError(await fetch(u('/v2/r/app/referrers/sha256:bad')), 400, 'DIGEST_INVALID');
  });

  it('accepts a referrer whose subject does not exist yet', async () => {
    const empty = await pushBlob(reg.url, 'r/early', Buffer.from('{}'));
    const ghost = sha256('ghost');
    const m = imageManifest({ digest: empty, size: 2 }, [], { artifactType: 'x/y', subject: { mediaType: OCI_MANIFEST, digest: ghost, size: 1 } });
    expect((await put('r/early', sha256(m), m)).status).toBe(201);
    const idx = (await (await fetch(u(`/v2/r/early/referrers/${ghost}`))).json()) as { manifests: unknown[] };
    expect(idx.manifests.length).toBe(1);
  });
});

describe('deleting what an index needs (issue 18 item 11)', () => {
  const index = (children: { digest: string; size: number }[]): Buffer =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: OCI_MANIFEST, ...c })) }));

  it('refuses to delete a child manifest an index of the repository references (409 DENIED), allows it once the index is gone', async () => {
    const amd = await pushImage(reg.url, 'del/multi', 'amd64');
    const arm = await pushImage(reg.url, 'del/multi', 'arm64');
    const idx = index([{ digest: amd.digest, size: amd.bytes.length }, { digest: arm.digest, size: arm.bytes.length }]);
    expect((await put('del/multi', 'latest', idx, OCI_INDEX)).status).toBe(201);

    const refused = await fetch(u(`/v2/del/multi/manifests/${amd.digest}`), { method: 'DELETE' });
    const body = (await refused.clone().json()) as { errors: { detail: { manifests: string[] } }[] };
    await expectError(refused, 409, 'DENIED');
    expect(body.errors[0]!.detail.manifests).toEqual([sha256(idx)]);
    // Nothing was half-deleted: the child and its tag still resolve, the index still pulls.
    expect((await fetch(u('/v2/del/multi/manifests/amd64'))).status).toBe(200);
    expect((await fetch(u(`/v2/del/multi/manifests/${amd.digest}`))).status).toBe(200);

    // The same child in another repository is not held by this index.
    const other = await pushImage(reg.url, 'del/other', 'x');
    expect((await fetch(u(`/v2/del/other/manifests/${other.digest}`), { method: 'DELETE' })).status).toBe(202);

    expect((await fetch(u(`/v2/del/multi/manifests/${sha256(idx)}`), { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(u(`/v2/del/multi/manifests/${amd.digest}`), { method: 'DELETE' })).status).toBe(202);
  });

  it('parallel index pushes and child deletes never leave an index pointing at a deleted child', async () => {
    const repo = 'del/race';
    let bothWon = 0;
    for (let round = 0; round < 12; round++) {
      const child = await pushImage(reg.url, repo, `c${round}`);
      const idx = index([{ digest: child.digest, size: child.bytes.length }]);
      const [pushed, deleted] = await Promise.all([
        put(repo, `i${round}`, idx, OCI_INDEX),
        fetch(u(`/v2/${repo}/manifests/${child.digest}`), { method: 'DELETE' }),
      ]);
      expect([201, 400]).toContain(pushed.status);
      expect([202, 409]).toContain(deleted.status);
      if (pushed.status === 201 && deleted.status === 202) bothWon++;
      if (pushed.status === 201) {
        // Whatever won, a stored index's child must still be there.
        expect((await fetch(u(`/v2/${repo}/manifests/${child.digest}`), { method: 'HEAD' })).status).toBe(200);
      }
    }
    expect(bothWon).toBe(0);
  });
});

describe('event log', () => {
  it('records pushes, tag moves and deletes with a verifiable hash chain', async () => {
    const img = await pushImage(reg.url, 'e/app', 'v1');
    const img2 = await pushImage(reg.url, 'e/app', 'v2');
    await put('e/app', 'v1', img2.bytes); // tag move
    await fetch(u('/v2/e/app/manifests/v2'), { method: 'DELETE' });
    const { events } = (await (await fetch(u('/api/v1/events?limit=1000'))).json()) as { events: { seq: number; action: string; repository: string; tag: string | null; digest: string | null; prevHash: string; hash: string; actor: string }[] };
    const mine = events.filter((e) => e.repository === 'e/app').map((e) => [e.action, e.tag ?? e.digest]);
    expect(mine).toContainEqual(['oci.manifest.push', img.digest]);
    expect(mine).toContainEqual(['oci.tag.move', 'v1']);
    expect(mine).toContainEqual(['oci.tag.delete', 'v2']);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.seq).toBeGreaterThan(events[i - 1]!.seq);
      expect(events[i]!.prevHash).toBe(events[i - 1]!.hash);
    }
    // Other modules log their own seeding (actor `system`); every OCI event here is the caller's.
    expect(events.filter((e) => e.repository === 'e/app').every((e) => e.actor === 'anonymous')).toBe(true);
  });
});
