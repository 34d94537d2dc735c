/** Blob pull (GET/HEAD, with ranges) and delete. Spec: "Pulling blobs", "Deleting blobs". */
import type { Context } from 'hono';
import { parseDigest } from '../core/digest.js';
import { parseRange } from '../core/range.js';
import { ociError } from '../errors/catalogue.js';
import { bytesResponse, sendBlob } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import type { Tx } from '../meta/registry-store.js';
import type { RouteParams } from './routes.js';

const REDIRECT_TTL_SECONDS = 300;

export function blobRoutes({ store, driver, config, log, governance }: OciDeps) {
  return {
    async get(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      const digest = parseDigest(ref).value;
      const size = await store.pull.repositoryBlobSize(name, digest);
      if (size === undefined) {
        // Manifests are content too: serve their bytes when asked for as a blob.
        const m = await store.pull.manifestByDigest(name, digest);
        if (!m) throw ociError('BLOB_UNKNOWN', undefined, { detail: { digest } });
        return bytesResponse(c, 200, contentHeaders(digest, m.size), m.payload);
      }
      const range = parseRange(c.req.header('range'), size);
      // RFC 9110 §15.5.17; the spec's error table has no code for it, so no JSON body either.
      if (range.kind === 'unsatisfiable') return c.body(null, 416, { 'Content-Range': `bytes */${size}`, 'Docker-Content-Digest': digest });
      const headers = contentHeaders(digest, size);
      let status = 200;
      if (range.kind === 'range') {
        status = 206;
        headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
        headers['Content-Length'] = String(range.end - range.start + 1);
      }
      // A plain header object (c.body would build a Headers): @hono/node-server's fast path.
      if (c.req.method === 'HEAD') return new Response(null, { status, headers });
      if (config.storage === 's3' && config.s3Redirect) {
        const url = await driver.redirectUrl(digest, REDIRECT_TTL_SECONDS);
        if (url) return c.body(null, 307, { Location: url, 'Docker-Content-Digest': digest });
      }
      if (size === 0) return c.body(null, 200, headers);
      const source = await driver.read(digest, range.kind === 'range' ? range : undefined).catch((err: unknown) => {
        log.error({ err, digest, repository: name }, 'blob in metadata but missing from storage');
        throw err;
      });
      return sendBlob(c, status, headers, source);
    },

    /**
     * Unlinks the blob from the repository. Refused (409 DENIED) while a manifest of the
     * repository still references it, so a delete can never break a pullable image. The bytes
     * stay in the store until garbage collection finds them unreferenced everywhere.
     */
    async delete(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      const digest = parseDigest(ref).value;
      const repoId = store.repositoryId(name);
      if (repoId === undefined) throw ociError('NAME_UNKNOWN', undefined, { detail: { name } });
      // The "still referenced" check (409 DENIED) runs inside unlinkBlob's transaction.
      const actor = c.get('actor');
      const guard = (tx: Tx): void => governance.guardDelete({ repository: name, kind: 'blob', digest, actor, origin: 'api' }, tx);
      if (!store.unlinkBlob(name, repoId, digest, actor, { guard })) throw ociError('BLOB_UNKNOWN', undefined, { detail: { digest } });
      return c.body(null, 202, { 'Content-Length': '0' });
    },
  };
}

function contentHeaders(digest: string, size: number): Record<string, string> {
  return {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(size),
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    // Content addressed: the bytes behind this URL can never change.
    'Cache-Control': 'max-age=31536000, immutable',
  };
}
