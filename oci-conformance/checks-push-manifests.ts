// Push workflow, manifests: by tag, by digest, ?tag= parameters, validation errors, indexes,
// Docker schema2 manifests and manifest lists.

import { equal, expectBody, expectDigestHeader, expectError, expectHeader, expectStatus, sha256, skip } from './assert.js';
import type { HttpResponse } from './client.js';
import { MT, descriptorOf, encodeManifest, type Check, type Context, type Image } from './context.js';

function manifestVariant(img: Image, note: string, layers = img.layers.map((l) => descriptorOf(l))): Uint8Array {
  return encodeManifest({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: descriptorOf(img.config),
    layers,
    annotations: { 'org.opencontainers.image.description': note },
  });
}

function checkCreated(res: HttpResponse, bytes: Uint8Array, what: string): void {
  expectStatus(res, 201, what);
  expectHeader(res, 'Location', what);
  expectDigestHeader(res, sha256(bytes), what);
}

/** GET by reference must serve exactly `bytes` with Content-Type `mediaType`. */
async function roundTrip(ctx: Context, ref: string, bytes: Uint8Array, mediaType: string, what: string) {
  const res = await ctx.getManifest(ctx.repo, ref);
  expectStatus(res, 200, `${what}: GET ${ref}`);
  equal(res.headers.get('content-type'), mediaType, `${what}: Content-Type`);
  expectDigestHeader(res, sha256(bytes), `${what}: GET`);
  expectBody(res, bytes, `${what}: GET`);
}

/** Pushes an index over the base image and a by-digest variant (memoized; used by other checks). */
export function pushIndex(ctx: Context): Promise<{ bytes: Uint8Array; digest: string; tag: string; res: HttpResponse }> {
  return ctx.once('image index', async () => {
    const img = await ctx.image();
    const variant = manifestVariant(img, 'index child');
    expectStatus(await ctx.putManifest(ctx.repo, sha256(variant), variant, MT.ociManifest), 201, 'PUT index child');
    const platform = { architecture: 'amd64', os: 'linux' };
    const bytes = encodeManifest({
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: [
        { mediaType: MT.ociManifest, digest: img.digest, size: img.manifest.length, platform },
        { mediaType: MT.ociManifest, digest: sha256(variant), size: variant.length, platform: { ...platform, variant: 'v2' } },
      ],
    });
    const tag = ctx.tag('index');
    const res = await ctx.putManifest(ctx.repo, tag, bytes, MT.ociIndex);
    return { bytes, digest: sha256(bytes), tag, res };
  });
}

export const pushManifestChecks: Check[] = [
  {
    name: 'PUT image manifest by tag: 201, Location, Docker-Content-Digest = sha256 of the exact bytes',
    workflow: 'push',
    async run(ctx) {
      const img = await ctx.image();
      checkCreated(img.putRes, img.manifest, `PUT ${img.repo}:${img.tags[0]}`);
    },
  },
  {
    name: 'PUT image manifest by digest: 201, Location, Docker-Content-Digest; served back byte for byte',
    workflow: 'push',
    async run(ctx) {
      const img = await ctx.image();
      const bytes = manifestVariant(img, 'pushed by digest');
      const digest = sha256(bytes);
      checkCreated(await ctx.putManifest(ctx.repo, digest, bytes, MT.ociManifest), bytes, 'PUT manifest by digest');
      await roundTrip(ctx, digest, bytes, MT.ociManifest, 'manifest pushed by digest');
    },
  },
  {
    name: 'PUT manifest by digest with ?tag=a&tag=b applies both tags',
    workflow: 'push',
    optional: true,
    async run(ctx) {
      const img = await ctx.image();
      const bytes = manifestVariant(img, 'pushed with tag parameters');
      const digest = sha256(bytes);
      const [a, b] = [ctx.tag('qa'), ctx.tag('qb')];
      const res = await ctx.request('PUT', `/v2/${ctx.repo}/manifests/${digest}?tag=${a}&tag=${b}`, {
        body: bytes,
        headers: { 'content-type': MT.ociManifest },
      });
      if (res.status === 201) ctx.noteManifest(ctx.repo, digest);
      checkCreated(res, bytes, 'PUT by digest with ?tag=');
      const ra = await ctx.getManifest(ctx.repo, a, 'HEAD');
      const rb = await ctx.getManifest(ctx.repo, b, 'HEAD');
      if (ra.status === 404 && rb.status === 404) skip('registry ignores the tag query parameter (newer spec feature)');
      expectStatus(ra, 200, `HEAD tag ${a}`);
      expectStatus(rb, 200, `HEAD tag ${b}`);
      expectDigestHeader(ra, digest, `HEAD tag ${a}`);
      expectDigestHeader(rb, digest, `HEAD tag ${b}`);
    },
  },
  {
    name: 'PUT manifest referencing a missing blob: 400 MANIFEST_BLOB_UNKNOWN',
    workflow: 'push',
    optional: true,
    async run(ctx) {
      const img = await ctx.image();
      const missing = ctx.freshBlob('missing-layer', 300);
      const bytes = manifestVariant(img, 'missing layer', [descriptorOf(missing)]);
      const res = await ctx.putManifest(ctx.repo, ctx.tag('missing-blob'), bytes, MT.ociManifest);
      if (res.status === 201) skip('registry accepted a manifest whose layer is missing (the spec allows it: MAY reject)');
      expectError(res, 400, ['MANIFEST_BLOB_UNKNOWN'], 'PUT manifest with a missing layer');
    },
  },
  {
    name: 'PUT invalid JSON as a manifest: 400 MANIFEST_INVALID',
    workflow: 'push',
    async run(ctx) {
      await ctx.image();
      const bytes = new TextEncoder().encode('{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", ');
      const res = await ctx.putManifest(ctx.repo, ctx.tag('invalid'), bytes, MT.ociManifest);
      expectError(res, 400, ['MANIFEST_INVALID'], 'PUT truncated JSON manifest');
    },
  },
  {
    name: 'PUT image index referencing pushed manifests: 201; GET serves it with the index Content-Type',
    workflow: 'push',
    async run(ctx) {
      const idx = await pushIndex(ctx);
      checkCreated(idx.res, idx.bytes, `PUT index ${idx.tag}`);
      await roundTrip(ctx, idx.tag, idx.bytes, MT.ociIndex, 'image index by tag');
      await roundTrip(ctx, idx.digest, idx.bytes, MT.ociIndex, 'image index by digest');
    },
  },
  {
    name: 'Docker schema2 manifest and manifest list: 201, served back with their media types',
    workflow: 'push',
    async run(ctx) {
      const img = await ctx.image();
      const manifest = encodeManifest({
        schemaVersion: 2,
        mediaType: MT.dockerManifest,
        config: { mediaType: MT.dockerConfig, digest: img.config.digest, size: img.config.data.length },
        layers: img.layers.map((l) => ({ mediaType: MT.dockerLayer, digest: l.digest, size: l.data.length })),
      });
      const mtag = ctx.tag('docker');
      checkCreated(await ctx.putManifest(ctx.repo, mtag, manifest, MT.dockerManifest), manifest, 'PUT Docker schema2');
      await roundTrip(ctx, mtag, manifest, MT.dockerManifest, 'Docker schema2 manifest');
      const list = encodeManifest({
        schemaVersion: 2,
        mediaType: MT.dockerList,
        manifests: [{
          mediaType: MT.dockerManifest, digest: sha256(manifest), size: manifest.length,
          platform: { architecture: 'amd64', os: 'linux' },
        }],
      });
      const ltag = ctx.tag('docker-list');
      checkCreated(await ctx.putManifest(ctx.repo, ltag, list, MT.dockerList), list, 'PUT Docker manifest list');
      await roundTrip(ctx, ltag, list, MT.dockerList, 'Docker manifest list');
    },
  },
];
