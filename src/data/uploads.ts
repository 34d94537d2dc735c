/**
 * Upload sessions over a BlobDriver: streams bytes into the driver while hashing them, and
 * verifies the digest before the bytes become visible.
 *
 * The running SHA-256 of each session lives in memory (node:crypto, the fast path). A session
 * continued by a process that does not hold it (after a restart, or another server sharing the
 * store) rebuilds it by re-hashing the stored partial bytes once; later appends are incremental
 * again. Re-hashing reads at disk/network speed, and node:crypto hashes ~10x faster than a WASM
 * hash whose state could be saved, so this is the cheaper way to resume.
 *
 * A cached hash is used only for the exact state it belongs to (`UploadState.epoch`), so a
 * same-sized state written by another process is re-hashed, never trusted. At commit, blobs up
 * to VERIFY_FROM_STORE_BYTES are re-hashed from the stored bytes (cheap, and it catches bytes
 * that changed on disk); larger ones rely on the running hash of this exact state.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobDriver, UploadState } from './driver.js';
import { DigestMismatchError, SizeMismatchError } from './errors.js';
import { createSha256, hashStream, type CopyableHasher, type HashAlgorithm } from './hashing.js';

interface RunningHash {
  size: number;
  epoch: string | undefined;
  hasher: CopyableHasher;
}

export interface AppendOptions {
  /** When the client declared a length, anything else is rejected and rolled back. */
  expectedLength?: number;
  /** Hard cap on the session's total size. */
  maxSize?: number;
  /** False when `finish` follows in the same request: the commit makes the bytes durable (BlobDriver.append). */
  durable?: boolean;
}

export interface FinishOptions {
  /**
   * Every byte of the session arrived in the append that returned `state`, in this request:
   * its running hash saw exactly what was written, so a small blob is not re-read to verify
   * it. (A session filled by earlier requests is still re-read: its file could have changed.)
   */
  justWritten?: boolean;
}

export class UploadTooLargeError extends Error {}

/** Bounded so abandoned sessions cannot pin memory; evicted hashes are rebuilt on demand. */
const MAX_CACHED_HASHES = 1024;
/** Commits up to this size re-read the stored bytes to verify the digest. */
export const VERIFY_FROM_STORE_BYTES = 8 * 1024 * 1024;

/** Random per process, then a counter: unique across processes and restarts without a CSPRNG call per append. */
const EPOCH_PREFIX = randomBytes(8).toString('hex');
let epochCounter = 0;
const newEpoch = (): string => `${EPOCH_PREFIX}.${(epochCounter++).toString(36)}`;

export class UploadEngine {
  private readonly running = new Map<string, RunningHash>();

  constructor(readonly driver: BlobDriver) {}

  async start(id: string): Promise<UploadState> {
    const state = { ...(await this.driver.createUpload(id)), epoch: newEpoch() };
    this.remember(id, { size: 0, epoch: state.epoch, hasher: createSha256() });
    return state;
  }

  /** The state trimmed to what the store really holds (see BlobDriver.verifyUpload); `state` itself when nothing changed. */
  async verify(id: string, state: UploadState): Promise<UploadState> {
    const checked = await this.driver.verifyUpload(id, state);
    return checked === state ? state : { ...checked, epoch: newEpoch() };
  }

  /** After taking the session over from an expired lease: see BlobDriver.fenceUpload. */
  async fence(id: string, state: UploadState): Promise<UploadState> {
    if (!this.driver.fenceUpload) return state;
    return { ...(await this.driver.fenceUpload(id, state)), epoch: newEpoch() };
  }

  /** After `current` is saved: lets the driver drop what only `previous` needed. Best effort. */
  async settle(id: string, previous: UploadState, current: UploadState): Promise<void> {
    await this.driver.releaseSuperseded(id, previous, current).catch(() => undefined);
  }

  async append(id: string, state: UploadState, source: Readable | AsyncIterable<Uint8Array>, opts: AppendOptions = {}): Promise<UploadState> {
    const current = await this.hashAt(id, state);
    const hasher = current.hasher.copy();
    let received = 0;
    const { expectedLength, maxSize } = opts;
    const hashing = async function* (): AsyncGenerator<Uint8Array> {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        received += chunk.length;
        if (maxSize !== undefined && state.size + received > maxSize) throw new UploadTooLargeError(`upload exceeds ${maxSize} bytes`);
        if (expectedLength !== undefined && received > expectedLength) throw new SizeMismatchError(expectedLength, received);
        hasher.update(chunk);
        yield chunk;
      }
      // Throwing inside the source makes the driver roll the append back.
      if (expectedLength !== undefined && received !== expectedLength) throw new SizeMismatchError(expectedLength, received);
    };
    const appended = await this.driver.append(id, state, hashing(), opts.durable === false ? { durable: false } : undefined);
    if (appended === state) return state; // nothing received
    const next = { ...appended, epoch: newEpoch() };
    this.remember(id, { size: next.size, epoch: next.epoch, hasher });
    return next;
  }

  /** Verifies `digest` against the session's bytes, then commits them under it. */
  async finish(id: string, state: UploadState, digest: string, opts: FinishOptions = {}): Promise<{ size: number }> {
    const algo = digest.slice(0, digest.indexOf(':')) as HashAlgorithm;
    let actual: string;
    const cached = this.running.get(id);
    if (algo === 'sha256' && opts.justWritten && cached && cached.size === state.size && cached.epoch === state.epoch) {
      actual = cached.hasher.copy().digest();
    } else if (algo === 'sha256' && state.size > VERIFY_FROM_STORE_BYTES) {
      actual = (await this.hashAt(id, state)).hasher.copy().digest();
    } else {
      // Small blobs, and the rare other algorithms: hash the stored bytes, at commit.
      const stored = await hashStream(algo, await this.driver.readUpload(id, state));
      if (stored.size !== state.size) throw new SizeMismatchError(state.size, stored.size);
      actual = stored.digest;
    }
    if (actual !== digest) throw new DigestMismatchError(digest, actual);
    await this.driver.commit(id, state, digest);
    this.running.delete(id);
    return { size: state.size };
  }

  async abort(id: string, state: UploadState): Promise<void> {
    this.running.delete(id);
    await this.driver.abort(id, state);
  }

  private async hashAt(id: string, state: UploadState): Promise<RunningHash> {
    const cached = this.running.get(id);
    if (cached && cached.size === state.size && cached.epoch === state.epoch) return cached;
    const hasher = createSha256();
    let size = 0;
    for await (const chunk of (await this.driver.readUpload(id, state)) as AsyncIterable<Uint8Array>) {
      // Only the acknowledged prefix counts: a store may hold bytes of a failed append.
      const take = Math.min(chunk.length, state.size - size);
      if (take <= 0) break;
      hasher.update(take === chunk.length ? chunk : chunk.subarray(0, take));
      size += take;
    }
    if (size !== state.size) throw new SizeMismatchError(state.size, size);
    const rebuilt = { size, epoch: state.epoch, hasher };
    this.remember(id, rebuilt);
    return rebuilt;
  }

  private remember(id: string, value: RunningHash): void {
    this.running.delete(id);
    this.running.set(id, value);
    if (this.running.size > MAX_CACHED_HASHES) {
      const oldest = this.running.keys().next().value;
      if (oldest !== undefined) this.running.delete(oldest);
    }
  }
}
