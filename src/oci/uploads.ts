/**
 * Blob uploads: monolithic POST, POST+PUT, chunked and streamed PATCH, status, cancel and
 * cross-repository mount. Spec: "Pushing blobs", "Mounting a blob from another repository".
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import { parseDigest, tryParseDigest } from '../core/digest.js';
import { isValidName } from '../core/names.js';
import { parseContentRange } from '../core/range.js';
import type { UploadState } from '../data/driver.js';
import { isUploadId } from '../data/keys.js';
import { ociError } from '../errors/catalogue.js';
import { requestBody } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import type { RouteParams } from './routes.js';

interface Session {
  id: string;
  state: UploadState;
}

export function uploadRoutes({ store, uploads, config, access }: OciDeps) {
  const locks = new KeyedLock();
  const maxSize = config.maxBlobSize > 0 ? config.maxBlobSize : undefined;

  const sessionHeaders = (name: string, s: Session): Record<string, string> => ({
    Location: `/v2/${name}/blobs/uploads/${s.id}`,
    // The spec's Range has no `bytes=` prefix; an empty session reports 0-0 as clients expect.
    Range: `0-${Math.max(0, s.state.size - 1)}`,
    'Docker-Upload-UUID': s.id,
    'Content-Length': '0',
  });

  const committedHeaders = (name: string, digest: string): Record<string, string> => ({
    Location: `/v2/${name}/blobs/${digest}`,
    'Docker-Content-Digest': digest,
    'Content-Length': '0',
  });

  function load(name: string, id: string): Session {
    const row = isUploadId(id) ? store.getUpload(id) : undefined;
    if (!row || row.repository !== name) throw ociError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { uuid: id } });
    return { id, state: JSON.parse(row.state) as UploadState };
  }

  async function open(name: string): Promise<Session> {
    const id = randomUUID();
    const state = await uploads.start(id);
    store.createUpload(id, name, JSON.stringify(state));
    return { id, state };
  }

  function declaredLength(c: Context<AppEnv>): number | undefined {
    const v = c.req.header('content-length');
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw ociError('SIZE_INVALID', 'invalid Content-Length');
    if (maxSize !== undefined && n > maxSize) throw ociError('SIZE_INVALID', `blob exceeds ${maxSize} bytes`, { status: 413 });
    return n;
  }

  /** Appends the request body (if any) to the session, honouring Content-Range. */
  async function appendBody(c: Context<AppEnv>, name: string, s: Session): Promise<void> {
    let length = declaredLength(c);
    const rangeHeader = c.req.header('content-range');
    if (rangeHeader !== undefined) {
      const range = parseContentRange(rangeHeader);
      if (!range || range.start !== s.state.size) {
        // Out-of-order or overlapping chunk: tell the client where the session really is.
        throw ociError('BLOB_UPLOAD_INVALID', 'chunk does not start at the end of the upload', { status: 416, headers: sessionHeaders(name, s) });
      }
      const chunkLength = range.end - range.start + 1;
      if (length !== undefined && length !== chunkLength) throw ociError('BLOB_UPLOAD_INVALID', 'Content-Length does not match Content-Range', { status: 416, headers: sessionHeaders(name, s) });
      length = chunkLength;
    }
    if (length === 0) return;
    const hasBody = length !== undefined || c.req.header('transfer-encoding') !== undefined;
    if (!hasBody) return;
    s.state = await uploads.append(s.id, s.state, requestBody(c), { expectedLength: length, maxSize });
    store.updateUpload(s.id, JSON.stringify(s.state));
  }

  /** Verifies and commits the session under `digest`, links the blob; a failed check discards the session. */
  async function complete(c: Context<AppEnv>, name: string, s: Session, digest: string): Promise<Response> {
    try {
      const { size } = await uploads.finish(s.id, s.state, digest);
      store.linkBlob(name, digest, size, c.get('actor'), 'oci.blob.push');
    } catch (err) {
      await uploads.abort(s.id, s.state).catch(() => undefined);
      store.deleteUpload(s.id);
      throw err;
    }
    store.deleteUpload(s.id);
    return c.body(null, 201, committedHeaders(name, digest));
  }

  return {
    async start(c: Context<AppEnv>, { name }: RouteParams): Promise<Response> {
      const mount = c.req.query('mount');
      const from = c.req.query('from');
      if (mount !== undefined) {
        const digest = tryParseDigest(mount)?.value;
        // A source we cannot (or may not) mount from is not an error: the spec falls back to a
        // new session. Without `from`, any repository the caller may pull can be the source.
        const readable = (repo: string): boolean => isValidName(repo) && access.canPull(c, repo);
        let sourceSize: number | undefined;
        if (digest !== undefined && from !== undefined) sourceSize = readable(from) ? store.repositoryBlobSize(from, digest) : undefined;
        else if (digest !== undefined) sourceSize = store.repositoriesWithBlob(digest).some(readable) ? store.blobSize(digest) : undefined;
        if (digest !== undefined && sourceSize !== undefined) {
          store.linkBlob(name, digest, sourceSize, c.get('actor'), 'oci.blob.mount', from);
          return c.body(null, 201, committedHeaders(name, digest));
        }
      }
      const digestParam = c.req.query('digest');
      if (digestParam !== undefined) {
        const digest = parseDigest(digestParam).value;
        const s = await open(name);
        try {
          await appendBody(c, name, s);
        } catch (err) {
          await uploads.abort(s.id, s.state).catch(() => undefined);
          store.deleteUpload(s.id);
          throw err;
        }
        return complete(c, name, s, digest);
      }
      const s = await open(name);
      return c.body(null, 202, { ...sessionHeaders(name, s), 'OCI-Chunk-Min-Length': String(config.chunkMinLength) });
    },

    status(c: Context<AppEnv>, { name, ref }: RouteParams): Response {
      const s = load(name, ref);
      return c.body(null, 204, sessionHeaders(name, s));
    },

    patch(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      return locks.run(ref, async () => {
        const s = load(name, ref);
        await appendBody(c, name, s);
        return c.body(null, 202, sessionHeaders(name, s));
      });
    },

    finish(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      return locks.run(ref, async () => {
        const s = load(name, ref);
        const digest = parseDigest(c.req.query('digest')).value;
        await appendBody(c, name, s);
        return complete(c, name, s, digest);
      });
    },

    cancel(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      return locks.run(ref, async () => {
        const s = load(name, ref);
        await uploads.abort(s.id, s.state);
        store.deleteUpload(s.id);
        return c.body(null, 204);
      });
    },
  };
}

/** Serialises work per key (one upload session) inside this process. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.tails.set(key, next);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === next) this.tails.delete(key);
    }
  }
}
