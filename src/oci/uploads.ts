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
import { StorageUnavailableError } from '../data/errors.js';
import { isUploadId } from '../data/keys.js';
import { ociError } from '../errors/catalogue.js';
import { requestBody } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import { BlobCollectedError, MOUNT_FENCE, PIN_TTL_MS, pinForUpload, unpin, type LinkFence } from '../operations/fence.js';
import type { OciDeps } from './deps.js';
import type { RouteParams } from './routes.js';

interface Session {
  id: string;
  state: UploadState;
  /** The row is gone (committed or cancelled): there is no lease left to release. */
  closed?: boolean;
  /** State appended but not saved yet (the request commits next); saved only if the commit must be retried. */
  unsaved?: boolean;
  /** The digest pinned with the lease (a PUT with a small body), and when. */
  pinned?: { fence: LinkFence; at: number };
}

/**
 * The cross-process session lock is a lease on the session's row: held while a request works on
 * the session, renewed while it streams, taken over only once it has run out (a holder that
 * died). Saving a new state requires still holding it, so a holder that lost it cannot overwrite
 * the newer state.
 */
const LEASE_TTL_MS = 30_000;
const LEASE_WAIT_MS = 15_000;
const LEASE_POLL_MS = 25;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A PUT whose body is at most this (or none) pins its digest together with taking the lease. */
const PIN_WITH_LEASE_BYTES = 8 * 1024 * 1024;
/** A pin taken with the lease is used only this long: a trickling body gets a fresh one (PIN_TTL_MS). */
const PIN_REUSE_MS = PIN_TTL_MS / 4;

export function uploadRoutes({ store, uploads, config, access }: OciDeps) {
  const locks = new KeyedLock();
  const maxSize = config.maxBlobSize > 0 ? config.maxBlobSize : undefined;
  const cap = config.maxUploadsPerCaller;

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

  const dropPin = (fence: LinkFence): void => {
    try {
      unpin(store.db, fence);
    } catch {
      /* a busy database: the pin expires (PIN_TTL_MS) */
    }
  };

  const unknown = (id: string): Error => ociError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { uuid: id } });

  function load(name: string, id: string): Session {
    const row = isUploadId(id) ? store.getUpload(id) : undefined;
    return session(name, id, row);
  }

  function session(name: string, id: string, row: { repository: string; state: string } | undefined): Session {
    if (!row || row.repository !== name) throw unknown(id);
    return { id, state: JSON.parse(row.state) as UploadState };
  }

  const tooMany = (): Error =>
    ociError('TOOMANYREQUESTS', `too many open upload sessions (at most ${cap} per caller); finish or cancel some`, { detail: { limit: cap } });

  async function open(c: Context<AppEnv>, name: string): Promise<Session> {
    const owner = c.get('actor');
    // The cap is checked once, atomically, by the row insert: creating storage is cheap (no
    // fsync until the first bytes), so a refused session just removes it again.
    const id = randomUUID();
    const state = await uploads.start(id);
    if (!(await store.createUploadGrouped(id, name, JSON.stringify(state), owner, cap))) {
      await uploads.abort(id, state).catch(() => undefined);
      throw tooMany();
    }
    return { id, state };
  }

  /** Takes the lease and reads the session's row in one statement (with `pin`, pins it too: one transaction). */
  async function acquireLease(id: string, holder: string, pin: string | undefined): Promise<{ row: { repository: string; state: string }; fence?: LinkFence; takenOver: boolean }> {
    const deadline = Date.now() + LEASE_WAIT_MS;
    for (;;) {
      // With a pin (a PUT that closes the session) the lease is a transaction: group-committed
      // with the other writes of this turn. Without one (PATCH) it is one UPDATE, cheaper alone.
      const got = pin === undefined ? store.leaseUpload(id, holder, LEASE_TTL_MS) : await store.leaseUploadGrouped(id, holder, LEASE_TTL_MS, pin);
      if (typeof got === 'object') return got;
      if (got === 'missing') throw unknown(id);
      if (Date.now() > deadline) throw ociError('UNAVAILABLE', 'the upload session is in use by another request; retry', { headers: { 'Retry-After': '1' } });
      await sleep(LEASE_POLL_MS);
    }
  }

  /**
   * Runs `fn` holding the session: queued behind this process's other requests for it, then
   * the lease (other processes). `trimmed` says the store held fewer bytes than the saved state
   * (lost in a crash); the state is then corrected before `fn` sees it. `pin`: a digest to pin
   * against GC with the lease (Session.pinned).
   */
  function withSession<T>(name: string, id: string, fn: (s: Session, holder: string, trimmed: boolean) => Promise<T>, pin?: string): Promise<T> {
    return locks.run(id, async () => {
      if (!isUploadId(id)) throw unknown(id);
      const holder = randomUUID();
      const leased = await acquireLease(id, holder, pin);
      const renew = setInterval(() => {
        try {
          store.renewUploadLease(id, holder, LEASE_TTL_MS);
        } catch {
          /* a busy database: the next tick retries, the save checks the lease anyway */
        }
      }, LEASE_TTL_MS / 3);
      renew.unref();
      let s: Session | undefined;
      try {
        s = session(name, id, leased.row);
        if (leased.fence) s.pinned = { fence: leased.fence, at: Date.now() };
        if (leased.takenOver) {
          // Its last holder's lease ran out: that request may wake up and write (BlobDriver.fenceUpload).
          s.state = await uploads.fence(s.id, s.state);
          store.updateUpload(id, JSON.stringify(s.state), holder);
        }
        const checked = await uploads.verify(s.id, s.state);
        const trimmed = checked.size < s.state.size;
        if (checked !== s.state) {
          s.state = checked;
          store.updateUpload(id, JSON.stringify(checked), holder);
        }
        return await fn(s, holder, trimmed);
      } finally {
        clearInterval(renew);
        if (!s?.closed) store.releaseUploadLease(id, holder);
        // A pin the commit did not use (it failed before, or took a fresh one).
        const leftover = s ? s.pinned?.fence : leased.fence;
        if (leftover) dropPin(leftover);
      }
    });
  }

  /** A client that does not say where its bytes go cannot continue a session that lost bytes. */
  function refuseBlindAppend(c: Context<AppEnv>, name: string, s: Session, trimmed: boolean): void {
    if (trimmed && c.req.header('content-range') === undefined) {
      throw ociError('BLOB_UPLOAD_INVALID', 'the upload lost bytes in a crash; resume from the Range given', { status: 416, headers: sessionHeaders(name, s) });
    }
  }

  function declaredLength(c: Context<AppEnv>): number | undefined {
    const v = c.req.header('content-length');
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw ociError('SIZE_INVALID', 'invalid Content-Length');
    if (maxSize !== undefined && n > maxSize) throw ociError('SIZE_INVALID', `blob exceeds this registry's maxBlobSize of ${maxSize} bytes (ARTIFACT_STORE_MAX_BLOB_SIZE)`, { status: 413, detail: { maxBlobSize: maxSize, size: n } });
    return n;
  }

  /**
   * Appends the request body (if any) to the session, honouring Content-Range. The new state is
   * saved (under the lease, when `holder` is given) before superseded storage is released.
   * `finishing`: the request commits next, which makes the bytes durable and ends the session,
   * so neither the append's own flush nor the save is needed (the save happens only if the
   * commit fails with a retryable error). Returns true when the body was the session's first bytes.
   */
  async function appendBody(c: Context<AppEnv>, name: string, s: Session, holder?: string, finishing = false): Promise<boolean> {
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
    if (length === 0) return false;
    const hasBody = length !== undefined || c.req.header('transfer-encoding') !== undefined;
    if (!hasBody) return false;
    const previous = s.state;
    const next = await uploads.append(s.id, previous, requestBody(c), { expectedLength: length, maxSize, ...(finishing ? { durable: false } : {}) });
    if (next === previous) return false;
    if (finishing) {
      s.state = next;
      s.unsaved = true;
      return previous.size === 0;
    }
    if (!store.updateUpload(s.id, JSON.stringify(next), holder)) {
      throw ociError('UNAVAILABLE', 'the upload session was taken over by another request; check its status and resume', { headers: { 'Retry-After': '1' } });
    }
    s.state = next;
    await uploads.settle(s.id, previous, next);
    return false;
  }

  /**
   * Verifies and commits the session under `digest`, links the blob; a failed check discards the
   * session. `justWritten`: this request's body was all of the session's bytes (FinishOptions).
   */
  async function complete(c: Context<AppEnv>, name: string, s: Session, digest: string, holder?: string, justWritten = false): Promise<Response> {
    let fence: LinkFence | undefined;
    try {
      // Pin the digest before the commit, which may keep already-stored bytes: GC leaves it alone (operations/fence.ts).
      const early = s.pinned;
      s.pinned = undefined;
      if (early && Date.now() - early.at < PIN_REUSE_MS) fence = early.fence;
      else {
        if (early) dropPin(early.fence);
        fence = await pinForUpload(store.db, digest);
      }
      const { size } = await uploads.finish(s.id, s.state, digest, { justWritten });
      // Group-committed with the other links and manifest writes of this event-loop turn (the
      // session's row goes in the same transaction); the 201 waits for its COMMIT.
      await store.commitBlobLink(name, digest, size, c.get('actor'), 'oci.blob.push', undefined, fence, s.id);
    } catch (err) {
      // The link did not commit: its pin would only hold GC back until it expires.
      if (fence) dropPin(fence);
      // A storage outage (503, retryable) keeps the session so the client can retry the PUT.
      if (!(err instanceof StorageUnavailableError)) {
        await uploads.abort(s.id, s.state).catch(() => undefined);
        store.deleteUpload(s.id);
        s.closed = true;
      } else if (s.unsaved) {
        // The bytes this request appended stay in the session: record them for the retry (best effort: a failed save leaves the older state, which verify trims to).
        try {
          store.updateUpload(s.id, JSON.stringify(s.state), holder);
        } catch {
          /* the retry re-sends from the saved state */
        }
      }
      throw err;
    }
    s.closed = true;
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
          try {
            store.linkBlob(name, digest, sourceSize, c.get('actor'), 'oci.blob.mount', from, MOUNT_FENCE);
            return c.body(null, 201, committedHeaders(name, digest));
          } catch (err) {
            // GC removed the source meanwhile: fall back to a new session, as for any unmountable source.
            if (!(err instanceof BlobCollectedError)) throw err;
          }
        }
      }
      const digestParam = c.req.query('digest');
      if (digestParam !== undefined) {
        const digest = parseDigest(digestParam).value;
        // The id is known to this request only: no other request can hold the session.
        const s = await open(c, name);
        let first: boolean;
        try {
          first = await appendBody(c, name, s, undefined, true);
        } catch (err) {
          await uploads.abort(s.id, s.state).catch(() => undefined);
          store.deleteUpload(s.id);
          throw err;
        }
        return complete(c, name, s, digest, undefined, first);
      }
      const s = await open(c, name);
      return c.body(null, 202, { ...sessionHeaders(name, s), 'OCI-Chunk-Min-Length': String(config.chunkMinLength) });
    },

    async status(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      const s = load(name, ref);
      // Report what the store really holds (bytes lost in a crash are not claimed).
      s.state = await uploads.verify(s.id, s.state);
      return c.body(null, 204, sessionHeaders(name, s));
    },

    patch(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      return withSession(name, ref, async (s, holder, trimmed) => {
        refuseBlindAppend(c, name, s, trimmed);
        await appendBody(c, name, s, holder);
        return c.body(null, 202, sessionHeaders(name, s));
      });
    },

    finish(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      // A short PUT pins its digest with the lease (one transaction less); a long body pins just before its commit.
      const length = Number(c.req.header('content-length') ?? (c.req.header('transfer-encoding') === undefined ? 0 : NaN));
      const pin = length <= PIN_WITH_LEASE_BYTES ? tryParseDigest(c.req.query('digest') ?? '')?.value : undefined;
      return withSession(
        name,
        ref,
        async (s, holder, trimmed) => {
          const digest = parseDigest(c.req.query('digest')).value;
          refuseBlindAppend(c, name, s, trimmed);
          const first = await appendBody(c, name, s, holder, true);
          return complete(c, name, s, digest, holder, first);
        },
        pin,
      );
    },

    cancel(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      return withSession(name, ref, async (s) => {
        await uploads.abort(s.id, s.state);
        store.deleteUpload(s.id);
        s.closed = true;
        return c.body(null, 204);
      });
    },
  };
}

/** Serialises work per key (one upload session) inside this process; the lease covers the others. */
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
