// Push workflow, blobs: upload sessions, monolithic and chunked uploads, status, cancel,
// digest errors and cross-repository mounts.

import {
  ensure, equal, expectBody, expectDigestHeader, expectError, expectHeader, expectStatus, expectUploadRange, fail,
  sha256, show, skip,
} from './assert.js';
import type { HttpResponse } from './client.js';
import { blobPath, withQuery, type Blob, type Check, type Context } from './context.js';

const OCTET = { 'content-type': 'application/octet-stream' };

/** Starts an upload and returns its Location and the chunk size to use (honouring OCI-Chunk-Min-Length). */
async function begin(ctx: Context, repo: string = ctx.repo): Promise<{ location: string; chunk: number; res: HttpResponse }> {
  const { res, location } = await ctx.startUpload(repo);
  expectStatus(res, 202, `POST /v2/${repo}/blobs/uploads/`);
  if (!location) fail(`POST /v2/${repo}/blobs/uploads/: missing Location header`);
  const min = Number(res.headers.get('oci-chunk-min-length') ?? '0');
  return { location, chunk: Number.isFinite(min) && min > 1024 ? min : 1024, res };
}

async function patchChunk(ctx: Context, location: string, data: Uint8Array, start: number): Promise<HttpResponse> {
  return ctx.request('PATCH', location, {
    body: data,
    headers: { ...OCTET, 'content-range': `${start}-${start + data.length - 1}` },
  });
}

/** A PATCH that must be accepted: 202, Location, Range 0-<end>. Returns the next location. */
async function acceptedChunk(ctx: Context, location: string, data: Uint8Array, start: number): Promise<string> {
  const what = `PATCH chunk ${start}-${start + data.length - 1}`;
  const res = await patchChunk(ctx, location, data, start);
  expectStatus(res, 202, what);
  const next = expectHeader(res, 'Location', what);
  expectUploadRange(res, start + data.length - 1, what);
  return next;
}

/**
 * Closing PUT ?digest=, optionally carrying data (with a Content-Range when `start` is given,
 * i.e. a last chunk; without it, a monolithic body). Must answer 201 with Location.
 */
async function close(ctx: Context, repo: string, location: string, blob: Blob, last?: { data: Uint8Array; start?: number }) {
  const headers: Record<string, string> = { ...OCTET };
  if (last?.start !== undefined) headers['content-range'] = `${last.start}-${last.start + last.data.length - 1}`;
  const res = await ctx.request('PUT', withQuery(location, { digest: blob.digest }), {
    body: last ? last.data : new Uint8Array(0),
    headers,
  });
  ctx.forgetUpload(location);
  expectStatus(res, 201, `closing PUT ?digest=${blob.digest}`);
  ctx.noteBlob(repo, blob.digest);
  expectHeader(res, 'Location', 'closing PUT');
  expectDigestHeader(res, blob.digest, 'closing PUT');
  return res;
}

/** The blob must now be served with the exact bytes. */
async function verifyStored(ctx: Context, repo: string, blob: Blob): Promise<void> {
  const res = await ctx.getBlob(repo, blob.digest);
  expectStatus(res, 200, `GET ${blobPath(repo, blob.digest)} after upload`);
  expectBody(res, blob.data, 'uploaded blob');
}

async function cancel(ctx: Context, location: string): Promise<HttpResponse> {
  const res = await ctx.request('DELETE', location);
  ctx.forgetUpload(location);
  return res;
}

export const pushBlobChecks: Check[] = [
  {
    name: 'POST /v2/<name>/blobs/uploads/ opens a session: 202 with a Location, unique per session',
    workflow: 'push',
    async run(ctx) {
      const a = await begin(ctx);
      const b = await begin(ctx);
      ensure(a.location !== b.location, `two sessions got the same Location ${show(a.location)}`);
      await cancel(ctx, a.location);
      await cancel(ctx, b.location);
    },
  },
  {
    name: 'POST upload session advertises OCI-Chunk-Min-Length',
    workflow: 'push',
    optional: true,
    async run(ctx) {
      const { res, location } = await begin(ctx);
      await cancel(ctx, location);
      const v = res.headers.get('oci-chunk-min-length');
      if (v === null) skip('OCI-Chunk-Min-Length header absent (SHOULD when the registry has a minimum chunk size)');
      ensure(/^[0-9]+$/.test(v) && Number(v) > 0, `OCI-Chunk-Min-Length must be a positive integer, got ${show(v)}`);
      return `minimum chunk ${v} bytes`;
    },
  },
  {
    name: 'single-request monolithic POST ?digest= with body: 201, Location, Docker-Content-Digest',
    workflow: 'push',
    optional: true,
    async run(ctx) {
      const blob = ctx.freshBlob('single-post', 2000);
      const res = await ctx.request('POST', `/v2/${ctx.repo}/blobs/uploads/?digest=${blob.digest}`, {
        body: blob.data,
        headers: OCTET,
      });
      if (res.status === 202) {
        const loc = res.headers.get('location');
        if (!loc) fail('POST ?digest= answered 202 without Location');
        await close(ctx, ctx.repo, loc, blob, { data: blob.data });
        skip('registry answered 202 (single-request upload unsupported, allowed); finished it with PUT');
      }
      expectStatus(res, 201, 'POST ?digest=');
      ctx.noteBlob(ctx.repo, blob.digest);
      expectHeader(res, 'Location', 'POST ?digest=');
      expectDigestHeader(res, blob.digest, 'POST ?digest=');
      await verifyStored(ctx, ctx.repo, blob);
    },
  },
  {
    name: 'POST then PUT ?digest= with the whole body: 201, Location (pullable), Docker-Content-Digest',
    workflow: 'push',
    async run(ctx) {
      const blob = ctx.freshBlob('post-put', 3000);
      const { location } = await begin(ctx);
      const res = await close(ctx, ctx.repo, location, blob, { data: blob.data });
      const pull = await ctx.request('GET', res.headers.get('location')!, { follow: true });
      expectStatus(pull, 200, 'GET on the Location returned by the closing PUT');
      expectBody(pull, blob.data, 'GET on the returned Location');
      await verifyStored(ctx, ctx.repo, blob);
    },
  },
  {
    name: 'POST, one PATCH with the whole blob, then PUT ?digest= without body: 201',
    workflow: 'push',
    async run(ctx) {
      const blob = ctx.freshBlob('post-patch-put', 2500);
      const { location } = await begin(ctx);
      const next = await acceptedChunk(ctx, location, blob.data, 0);
      await close(ctx, ctx.repo, next, blob);
      await verifyStored(ctx, ctx.repo, blob);
    },
  },
  {
    name: 'chunked upload: each PATCH with Content-Range answers 202, Location, Range 0-<end>; PUT closes with 201',
    workflow: 'push',
    async run(ctx) {
      let { location, chunk } = await begin(ctx);
      const blob = ctx.freshBlob('chunked', chunk * 2 + 321);
      for (let start = 0; start < blob.data.length; start += chunk) {
        location = await acceptedChunk(ctx, location, blob.data.subarray(start, start + chunk), start);
      }
      await close(ctx, ctx.repo, location, blob);
      await verifyStored(ctx, ctx.repo, blob);
      return `3 chunks of up to ${chunk} bytes`;
    },
  },
  {
    name: 'chunked upload: last chunk carried by the closing PUT (Content-Range): 201',
    workflow: 'push',
    async run(ctx) {
      let { location, chunk } = await begin(ctx);
      const blob = ctx.freshBlob('chunked-put-last', chunk + 500);
      location = await acceptedChunk(ctx, location, blob.data.subarray(0, chunk), 0);
      await close(ctx, ctx.repo, location, blob, { data: blob.data.subarray(chunk), start: chunk });
      await verifyStored(ctx, ctx.repo, blob);
    },
  },
  {
    name: 'streamed PATCH without Content-Range (chunked transfer encoding), then PUT: 202 then 201',
    workflow: 'push',
    async run(ctx) {
      const blob = ctx.freshBlob('streamed', 4096);
      const { location } = await begin(ctx);
      const res = await ctx.request('PATCH', location, { body: blob.data, stream: true, headers: OCTET });
      expectStatus(res, 202, 'streamed PATCH');
      const next = expectHeader(res, 'Location', 'streamed PATCH');
      expectUploadRange(res, blob.data.length - 1, 'streamed PATCH');
      await close(ctx, ctx.repo, next, blob);
      await verifyStored(ctx, ctx.repo, blob);
    },
  },
  {
    name: 'GET upload status: 204 with Location and Range 0-<end>',
    workflow: 'push',
    async run(ctx) {
      const { location, chunk } = await begin(ctx);
      const data = ctx.freshBlob('status', chunk).data;
      const next = await acceptedChunk(ctx, location, data, 0);
      const res = await ctx.request('GET', next);
      expectStatus(res, 204, 'GET upload status');
      expectHeader(res, 'Location', 'GET upload status');
      expectUploadRange(res, data.length - 1, 'GET upload status');
      await cancel(ctx, next);
    },
  },
  {
    name: 'upload status carries Docker-Upload-UUID (legacy header)',
    workflow: 'push',
    optional: true,
    async run(ctx) {
      const { location } = await begin(ctx);
      const res = await ctx.request('GET', location);
      await cancel(ctx, location);
      expectStatus(res, 204, 'GET upload status');
      const v = res.headers.get('docker-upload-uuid');
      if (v === null) skip('Docker-Upload-UUID absent (legacy Docker header, optional)');
      ensure(v.length > 0, 'Docker-Upload-UUID is empty');
    },
  },
  {
    name: 'out-of-order chunk: 416; upload stays usable (status gives Range, resume, PUT 201)',
    workflow: 'push',
    async run(ctx) {
      let { location, chunk } = await begin(ctx);
      const blob = ctx.freshBlob('out-of-order', chunk * 3);
      const part = (i: number) => blob.data.subarray(i * chunk, (i + 1) * chunk);
      location = await acceptedChunk(ctx, location, part(0), 0);
      const bad = await patchChunk(ctx, location, part(2), 2 * chunk);
      expectError(bad, 416, undefined, 'PATCH skipping a chunk');
      const status = await ctx.request('GET', location);
      expectStatus(status, 204, 'GET upload status after 416');
      expectUploadRange(status, chunk - 1, 'GET upload status after 416');
      location = status.headers.get('location') ?? location;
      location = await acceptedChunk(ctx, location, part(1), chunk);
      location = await acceptedChunk(ctx, location, part(2), 2 * chunk);
      await close(ctx, ctx.repo, location, blob);
      await verifyStored(ctx, ctx.repo, blob);
    },
  },
  {
    name: 'DELETE upload session: 204; its status is then 404 BLOB_UPLOAD_UNKNOWN',
    workflow: 'push',
    async run(ctx) {
      const { location, chunk } = await begin(ctx);
      const next = await acceptedChunk(ctx, location, ctx.freshBlob('cancel', chunk).data, 0);
      expectStatus(await cancel(ctx, next), 204, 'DELETE upload');
      expectError(await ctx.request('GET', next), 404, ['BLOB_UPLOAD_UNKNOWN'], 'GET status of cancelled upload');
    },
  },
  {
    name: 'closing PUT with a digest that does not match the content: 400 DIGEST_INVALID, nothing stored',
    workflow: 'push',
    async run(ctx) {
      const blob = ctx.freshBlob('wrong-digest', 1000);
      const claimed = sha256(ctx.bytes('wrong-digest-claim', 32));
      const { location } = await begin(ctx);
      const res = await ctx.request('PUT', withQuery(location, { digest: claimed }), { body: blob.data, headers: OCTET });
      await cancel(ctx, location);
      expectError(res, 400, ['DIGEST_INVALID'], 'PUT with mismatching digest');
      expectError(await ctx.getBlob(ctx.repo, claimed, 'HEAD'), 404, undefined, 'HEAD claimed digest afterwards', 'HEAD');
    },
  },
  {
    name: 'closing PUT with a malformed digest: 400 DIGEST_INVALID',
    workflow: 'push',
    async run(ctx) {
      const blob = ctx.freshBlob('bad-digest', 100);
      const { location } = await begin(ctx);
      const res = await ctx.request('PUT', withQuery(location, { digest: 'sha256:not-a-hex-digest' }), {
        body: blob.data,
        headers: OCTET,
      });
      await cancel(ctx, location);
      expectError(res, 400, ['DIGEST_INVALID'], 'PUT ?digest=sha256:not-a-hex-digest');
    },
  },
  {
    name: 'cross-repository mount ?mount=&from=: 201, Location, blob present in the target',
    workflow: 'push',
    async run(ctx) {
      const img = await ctx.image();
      const b = img.layers[0]!;
      const { res } = await ctx.startUpload(ctx.mountRepo, `?mount=${b.digest}&from=${ctx.repo}`);
      expectStatus(res, 201, `POST /v2/${ctx.mountRepo}/blobs/uploads/?mount=&from=${ctx.repo}`);
      ctx.noteBlob(ctx.mountRepo, b.digest);
      expectHeader(res, 'Location', 'mount');
      const dcd = res.headers.get('docker-content-digest');
      if (dcd !== null) equal(dcd, b.digest, 'mount: Docker-Content-Digest');
      const head = await ctx.getBlob(ctx.mountRepo, b.digest, 'HEAD');
      expectStatus(head, 200, `HEAD mounted blob in ${ctx.mountRepo}`);
    },
  },
  {
    name: 'mount from a repository that lacks the blob: 202 upload session with Location',
    workflow: 'push',
    async run(ctx) {
      await ctx.image();
      const missing = sha256(ctx.bytes('mount-missing', 48));
      const { res, location } = await ctx.startUpload(ctx.mountRepo, `?mount=${missing}&from=${ctx.repo}`);
      expectStatus(res, 202, 'mount of an absent blob');
      if (!location) fail('mount of an absent blob: 202 without Location');
      await cancel(ctx, location);
    },
  },
  {
    name: 'mount without from: 201 (mounted) or 202 (upload session), both legal',
    workflow: 'push',
    async run(ctx) {
      const blob = ctx.freshBlob('mount-no-from', 600);
      await ctx.pushBlob(ctx.repo, blob);
      const { res, location } = await ctx.startUpload(ctx.mountRepo, `?mount=${blob.digest}`);
      expectStatus(res, [201, 202], 'mount without from');
      if (!location) fail(`mount without from: ${res.status} without Location`);
      if (res.status === 202) {
        await cancel(ctx, location);
        return 'answered 202 (no automatic mount)';
      }
      ctx.noteBlob(ctx.mountRepo, blob.digest);
      expectStatus(await ctx.getBlob(ctx.mountRepo, blob.digest, 'HEAD'), 200, 'HEAD blob mounted without from');
      return 'answered 201 (mounted)';
    },
  },
];
