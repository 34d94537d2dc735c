/**
 * The storage driver interface: the only thing the control plane knows about where bytes live.
 * It speaks digests, upload ids and streams; no HTTP or database types cross it, so the data
 * plane can later move into another process without the API changing.
 *
 * Upload sessions are stateless on the driver side: each call receives the session's
 * `UploadState` (persisted by the caller, e.g. in the metadata DB) and returns the new one,
 * so any process sharing the store and the database can continue a session.
 */
import type { Readable, Writable } from 'node:stream';

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface UploadState {
  /** Bytes durably accepted so far. */
  size: number;
  /** Driver-private, JSON-serialisable bookkeeping (e.g. multipart upload id and parts). */
  driver: Record<string, unknown>;
  /**
   * Random, new with every state the UploadEngine returns: a cached running hash is used only
   * for the exact state it was computed for, never for a same-sized state another process wrote.
   */
  epoch?: string;
}

/** Committed bytes being read: iterate them, or hand them to a Writable (the fast path). */
export interface BlobSource extends AsyncIterable<Uint8Array> {
  /** Writes every byte to `dest` and ends it; rejects (and stops reading) if `dest` fails. */
  pipeTo(dest: Writable): Promise<void>;
}

export interface BlobDriver {
  readonly name: string;
  /** Size of a committed blob, or null when absent. */
  stat(digest: string): Promise<{ size: number } | null>;
  /** Committed bytes, whole or a range. Throws BlobNotFoundError when absent (before any byte). */
  read(digest: string, range?: ByteRange): Promise<BlobSource>;
  /** A short-lived URL the client may download from directly, or null when the driver has none. */
  redirectUrl(digest: string, ttlSeconds: number): Promise<string | null>;
  /** Removes committed bytes; absent is not an error. */
  delete(digest: string): Promise<void>;
  /**
   * delete() for many blobs in few requests (S3: DeleteObjects, up to 1000 keys each). Returns the
   * digests whose bytes could not be removed (absent counts as removed); throws only when
   * nothing could be attempted. Optional: callers fall back to delete() per digest.
   */
  deleteMany?(digests: string[]): Promise<string[]>;

  createUpload(id: string): Promise<UploadState>;
  /**
   * Appends the source's bytes to the session. If the source or the store fails, the session
   * is left exactly as it was before the call (the caller may retry from `state.size`).
   * Resolves once the bytes are durable, unless `opts.durable` is false: the caller then
   * commits the session next (one request carrying the last bytes and the digest) and the
   * commit makes them durable, so a separate flush here would only be paid twice.
   */
  append(id: string, state: UploadState, source: AsyncIterable<Uint8Array>, opts?: { durable?: boolean }): Promise<UploadState>;
  /**
   * Called once the caller has durably saved `current` (the state `append` returned): removes
   * objects that only `previous` needed. Deleting them earlier would leave a crash between
   * append and save with a saved state that names deleted objects. Best effort: whatever stays
   * is removed with the session (commit, abort, sweep).
   */
  releaseSuperseded(id: string, previous: UploadState, current: UploadState): Promise<void>;
  /**
   * The state trimmed to the bytes the store really holds. A crash can lose acknowledged bytes
   * (fs without fsync); the session then resumes from what is there instead of failing forever.
   */
  verifyUpload(id: string, state: UploadState): Promise<UploadState>;
  /**
   * A request took the session over from one whose lease ran out (it died, or it stalled and may
   * still wake up and write): makes whatever that stale request still writes or commits unable
   * to reach the session's bytes, and returns the state to save. Drivers whose appends never
   * write where a saved state points (S3: new objects under a fresh nonce each) leave it out.
   */
  fenceUpload?(id: string, state: UploadState): Promise<UploadState>;
  /** When the session's storage was last written (ms), or null when it does not exist. */
  uploadTouchedAt(id: string): Promise<number | null>;
  /** The session's bytes so far (to re-hash a session that another process started). */
  readUpload(id: string, state: UploadState): Promise<Readable>;
  /**
   * Makes the session's bytes visible under `digest` (already verified by the caller) and
   * ends the session. When the digest is already stored the session is simply discarded.
   */
  commit(id: string, state: UploadState, digest: string): Promise<void>;
  abort(id: string, state: UploadState): Promise<void>;
  /** Ids of sessions that exist in the store (for sweeping abandoned ones). */
  listUploads(): Promise<string[]>;
  /**
   * Removes store-level leftovers older than `olderThanMs` that no live session can need (S3:
   * multipart uploads of a commit that died midway). Returns how many it removed.
   */
  sweep(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}
