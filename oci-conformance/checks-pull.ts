// Pull workflow: API version check, manifests and blobs by tag/digest, ranges, errors.

import {
  equal, expectBody, expectDigestHeader, expectError, expectHeader, expectStatus, fail, sha256, skip, show,
} from './assert.js';
import type { HttpResponse } from './client.js';
import { MT, type Check, type Context, type Image } from './context.js';

function checkManifestResponse(res: HttpResponse, img: Image, method: 'GET' | 'HEAD', what: string): void {
  expectStatus(res, 200, what);
  // Exactly the media type the manifest was pushed with (registries should not add parameters).
  expectHeader(res, 'Content-Type', what, MT.ociManifest);
  expectDigestHeader(res, img.digest, what);
  const len = res.headers.get('content-length');
  if (len !== null) equal(len, String(img.manifest.length), `${what}: Content-Length`);
  else if (method === 'HEAD') fail(`${what}: missing Content-Length header`);
  if (method === 'HEAD') equal(res.body.length, 0, `${what}: HEAD body length`);
  else expectBody(res, img.manifest, what);
}

function checkBlobResponse(res: HttpResponse, digest: string, data: Uint8Array, method: 'GET' | 'HEAD', what: string) {
  expectStatus(res, 200, what);
  const len = res.headers.get('content-length');
  if (len === null) fail(`${what}: missing Content-Length header`);
  equal(len, String(data.length), `${what}: Content-Length`);
  expectDigestHeader(res, digest, what);
  if (method === 'HEAD') {
    equal(res.body.length, 0, `${what}: HEAD body length`);
  } else {
    const got = sha256(res.body);
    const via = res.hops.length ? ` (after redirect ${res.hops.map((h) => h.status).join(',')})` : '';
    if (got !== digest) fail(`${what}: body digest expected ${digest}, got ${got}${via}`);
  }
  return res.hops.length ? `served via ${res.hops[0]!.status} redirect; final body verified` : undefined;
}

const unknownDigest = (ctx: Context) => sha256(ctx.bytes('never-pushed', 64));

export const pullChecks: Check[] = [
  {
    name: 'GET /v2/ answers 200 (or 401 with a WWW-Authenticate challenge before auth)',
    workflow: 'pull',
    async run(ctx) {
      const anon = await ctx.request('GET', '/v2/', { auth: false });
      expectStatus(anon, [200, 401], 'GET /v2/ without credentials');
      if (anon.status === 401) {
        expectHeader(anon, 'WWW-Authenticate', 'GET /v2/ 401');
        expectError(anon, 401, undefined, 'GET /v2/ 401');
      }
      const res = await ctx.request('GET', '/v2/');
      expectStatus(res, 200, 'GET /v2/ (authenticated)');
      return anon.status === 401 ? 'authentication required and answered' : undefined;
    },
  },
  {
    name: 'HEAD manifest by tag: 200, Content-Type, Docker-Content-Digest, Content-Length, no body',
    workflow: 'pull',
    async run(ctx) {
      const img = await ctx.image();
      checkManifestResponse(await ctx.getManifest(img.repo, img.tags[0]!, 'HEAD'), img, 'HEAD', 'HEAD manifest by tag');
    },
  },
  {
    name: 'GET manifest by tag: 200, exact pushed bytes, Content-Type, Docker-Content-Digest',
    workflow: 'pull',
    async run(ctx) {
      const img = await ctx.image();
      checkManifestResponse(await ctx.getManifest(img.repo, img.tags[0]!), img, 'GET', 'GET manifest by tag');
    },
  },
  {
    name: 'HEAD manifest by digest: 200, Content-Type, Docker-Content-Digest, Content-Length',
    workflow: 'pull',
    async run(ctx) {
      const img = await ctx.image();
      checkManifestResponse(await ctx.getManifest(img.repo, img.digest, 'HEAD'), img, 'HEAD', 'HEAD manifest by digest');
    },
  },
  {
    name: 'GET manifest by digest: 200, exact pushed bytes, Content-Type, Docker-Content-Digest',
    workflow: 'pull',
    async run(ctx) {
      const img = await ctx.image();
      checkManifestResponse(await ctx.getManifest(img.repo, img.digest), img, 'GET', 'GET manifest by digest');
    },
  },
  {
    name: 'GET blob: 200, Content-Length, Docker-Content-Digest, body matches digest',
    workflow: 'pull',
    async run(ctx) {
      const img = await ctx.image();
      let detail: string | undefined;
      for (const b of [img.config, ...img.layers]) {
        detail = checkBlobResponse(await ctx.getBlob(img.repo, b.digest), b.digest, b.data, 'GET', `GET blob ${b.digest}`);
      }
      return detail;
    },
  },
  {
    name: 'HEAD blob: 200, Content-Length, Docker-Content-Digest, no body',
    workflow: 'pull',
    async run(ctx) {
      const img = await ctx.image();
      const b = img.layers[0]!;
      return checkBlobResponse(await ctx.getBlob(img.repo, b.digest, 'HEAD'), b.digest, b.data, 'HEAD', 'HEAD blob');
    },
  },
  {
    name: 'GET blob with Range: bytes=0-9 answers 206 with Content-Range',
    workflow: 'pull',
    optional: true,
    async run(ctx) {
      const img = await ctx.image();
      const b = img.layers[0]!;
      const res = await ctx.getBlob(img.repo, b.digest, 'GET', { range: 'bytes=0-9' });
      if (res.status === 200) skip('registry ignores Range (answered 200 with the whole blob)');
      expectStatus(res, 206, 'GET blob Range bytes=0-9');
      expectHeader(res, 'Content-Range', 'GET blob Range bytes=0-9', `bytes 0-9/${b.data.length}`);
      expectBody(res, b.data.subarray(0, 10), 'GET blob Range bytes=0-9');
    },
  },
  {
    name: 'GET blob with Range: bytes=N- answers 206 with the tail',
    workflow: 'pull',
    optional: true,
    async run(ctx) {
      const img = await ctx.image();
      const b = img.layers[0]!;
      const start = 100;
      const res = await ctx.getBlob(img.repo, b.digest, 'GET', { range: `bytes=${start}-` });
      if (res.status === 200) skip('registry ignores Range (answered 200 with the whole blob)');
      expectStatus(res, 206, `GET blob Range bytes=${start}-`);
      expectHeader(res, 'Content-Range', `GET blob Range bytes=${start}-`,
        `bytes ${start}-${b.data.length - 1}/${b.data.length}`);
      expectBody(res, b.data.subarray(start), `GET blob Range bytes=${start}-`);
    },
  },
  {
    name: 'GET/HEAD unknown blob: 404 BLOB_UNKNOWN',
    workflow: 'pull',
    async run(ctx) {
      const d = unknownDigest(ctx);
      expectError(await ctx.getBlob(ctx.repo, d), 404, ['BLOB_UNKNOWN'], 'GET unknown blob');
      expectError(await ctx.getBlob(ctx.repo, d, 'HEAD'), 404, undefined, 'HEAD unknown blob', 'HEAD');
    },
  },
  {
    name: 'GET/HEAD unknown tag: 404 MANIFEST_UNKNOWN',
    workflow: 'pull',
    async run(ctx) {
      await ctx.image(); // make sure the repository exists
      const tag = ctx.tag('no-such-tag');
      expectError(await ctx.getManifest(ctx.repo, tag), 404, ['MANIFEST_UNKNOWN'], 'GET unknown tag');
      expectError(await ctx.getManifest(ctx.repo, tag, 'HEAD'), 404, undefined, 'HEAD unknown tag', 'HEAD');
    },
  },
  {
    name: 'GET unknown manifest digest: 404 MANIFEST_UNKNOWN',
    workflow: 'pull',
    async run(ctx) {
      await ctx.image();
      expectError(await ctx.getManifest(ctx.repo, unknownDigest(ctx)), 404, ['MANIFEST_UNKNOWN'], 'GET unknown digest');
    },
  },
  {
    name: 'GET manifest in an unknown repository: 404 NAME_UNKNOWN or MANIFEST_UNKNOWN',
    workflow: 'pull',
    async run(ctx) {
      const repo = `${ctx.repo}/absent-${ctx.run}`;
      const res = await ctx.getManifest(repo, 'latest');
      expectError(res, 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN'], `GET ${repo}:latest`);
    },
  },
  {
    name: 'invalid repository name: 400 NAME_INVALID or 404',
    workflow: 'pull',
    async run(ctx) {
      const bad = `${ctx.repo}/Invalid--Name_`;
      const res = await ctx.getManifest(bad, 'latest');
      expectStatus(res, [400, 404], `GET /v2/${bad}/manifests/latest`);
      const errors = expectError(res, [400, 404], res.status === 400 ? ['NAME_INVALID'] : undefined, 'invalid name');
      const codes = errors.map((e) => e.code);
      return codes.length ? `answered ${res.status} ${codes.join(',')}` : `answered ${res.status} ${show(res.text().slice(0, 40))}`;
    },
  },
];
