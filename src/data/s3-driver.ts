/**
 * S3-compatible driver (AWS S3, MinIO, Ceph RGW, R2, s3rver …). Layout in keys.ts, under `prefix`.
 *
 * An upload session never holds an S3 multipart upload open: bytes that can not be read back are
 * bytes a restarted process can not re-hash. Instead every append writes plain objects
 *
 *   uploads/<id>/session              marker written by createUpload (existence, listUploads)
 *   uploads/<id>/parts/<n>.<nonce>    full parts (>= 5 MiB), uploaded as they fill
 *   uploads/<id>/tail.<nonce>         what one append left over after its last full part
 *
 * and records their keys in `UploadState.driver`. Each append uses a fresh random nonce, so it
 * never overwrites an object the previous state points at: rolling back a failed append is just
 * not recording (and best-effort deleting) what it wrote. Tail pieces accumulate (at most
 * MAX_TAIL_PIECES, then they are compacted into one) and are read back only when a part fills,
 * so many small appends cost O(bytes), not O(appends × part size). Pieces a new state no longer
 * needs are deleted only by releaseSuperseded, after the caller saved that state.
 *
 * Memory: an append reserves one part from a budget shared by the whole driver
 * (`maxBufferedBytes`) before it buffers anything, so concurrent PATCHes wait instead of
 * pinning one part each without bound.
 *
 * commit builds the blob at its digest key server-side: CopyObject when the session is one
 * object, else CreateMultipartUpload at the digest key + UploadPartCopy per part + Complete.
 * Both are atomic on S3: nothing is visible under the digest before all bytes are. Servers
 * without UploadPartCopy (501, e.g. s3rver 3.x) fall back to GetObject + UploadPart per part.
 *
 * Transit integrity: the SDK signs every body's SHA-256 (x-amz-content-sha256) and S3 checks it,
 * or TLS does; so no Content-MD5 (MD5 runs at ~250 MB/s here, slower than the upload path).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand,
  ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand, UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobDriver, BlobSource, ByteRange, UploadState } from './driver.js';
import { ByteBudget } from './byte-budget.js';
import { BlobNotFoundError, DataError, StorageUnavailableError, UploadNotFoundError } from './errors.js';
import { isUploadId, keys } from './keys.js';

export interface S3DriverOptions {
  endpoint?: string;
  region: string;
  bucket: string;
  /** Key prefix for everything this driver stores ('' or ending in '/'; one is appended). */
  prefix?: string;
  /** Path-style URLs; defaults to true when an endpoint is given (MinIO, s3rver, Ceph). */
  forcePathStyle?: boolean;
  /** Static credentials; otherwise the default AWS credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Part size in bytes: default 8 MiB, at least 5 MiB. Held in memory once per append. */
  partSize?: number;
  /** Serve reads by presigned GetObject URLs. */
  redirect?: boolean;
  /** SDK attempts per request, with backoff (default 5). */
  maxAttempts?: number;
  connectionTimeoutMs?: number;
  /** Until response headers (default 120 s); the socket may also idle at most `idleTimeoutMs`. */
  requestTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Parts copied in parallel at commit (default 8). */
  copyConcurrency?: number;
  /** Bytes all concurrent appends may buffer together (default 32 parts, at least one part). */
  maxBufferedBytes?: number;
  /** How long an append waits for buffer budget before failing with 503 (default 30 s). */
  bufferWaitMs?: number;
}

/** What `UploadState.driver` holds for this driver. */
interface Session {
  partSize: number;
  /** Consecutive full parts, each run written by one append: [nonce, count]. */
  runs: [string, number][];
  /** The bytes after the last full part, one piece per append: [nonce, size]. */
  tail: [string, number][];
}
interface Source { key: string; size: number }

const MiB = 1024 * 1024;
const MIN_PART = 5 * MiB;
const MAX_PARTS = 9_999; // S3 allows 10 000 parts; the tail may need the last one.
const MAX_TAIL_PIECES = 16;
const NONCE_RE = /^[0-9a-f]{12}$/;

/** Parts grow by one base size every 1000 parts: 8 MiB parts reach ~430 GiB per blob. */
const partSizeAt = (base: number, index: number): number => base * (1 + Math.floor(index / 1000));

const isInt = (v: unknown, min: number): v is number => Number.isSafeInteger(v) && (v as number) >= min;
const validPairs = (v: unknown, min: number): v is [string, number][] =>
  Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && NONCE_RE.test(p[0]) && isInt(p[1], min));

interface SdkError { name?: string; code?: string; $metadata?: { httpStatusCode?: number } }
const statusOf = (err: unknown): number | undefined => (err as SdkError)?.$metadata?.httpStatusCode;
const nameOf = (err: unknown): string => (err as SdkError)?.name ?? '';
/** NoSuchBucket is a misconfiguration, never a missing blob. */
const isMissing = (err: unknown): boolean => nameOf(err) !== 'NoSuchBucket'
  && (['NoSuchKey', 'NotFound', 'NoSuchUpload'].includes(nameOf(err)) || statusOf(err) === 404);
const isNotImplemented = (err: unknown): boolean => nameOf(err) === 'NotImplemented' || statusOf(err) === 501;
const TRANSIENT = new Set(['TimeoutError', 'RequestTimeout', 'SlowDown', 'Throttling', 'ThrottlingException',
  'TooManyRequestsException', 'RequestLimitExceeded', 'InternalError', 'ServiceUnavailable',
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);
function isTransient(err: unknown): boolean {
  const status = statusOf(err) ?? 0;
  return status === 429 || (status >= 500 && status !== 501) || TRANSIENT.has(nameOf(err)) || TRANSIENT.has((err as SdkError)?.code ?? '');
}

/** Retries are the SDK's; what still fails transiently becomes StorageUnavailableError. */
function mapError(err: unknown, missing?: () => Error): unknown {
  if (err instanceof DataError) return err;
  if (missing && isMissing(err)) return missing();
  if (!isTransient(err)) return err;
  const e = new StorageUnavailableError(`S3 unavailable: ${nameOf(err) || 'error'}: ${(err as Error)?.message}`);
  return Object.assign(e, { cause: err });
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export class S3Driver implements BlobDriver {
  readonly name = 's3';
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly redirect: boolean;
  private readonly copyConcurrency: number;
  /** Learnt from the server: undefined until the first UploadPartCopy. */
  private partCopy: boolean | undefined;
  /** Shared by every append of this driver (one per process). */
  readonly buffers: ByteBudget;
  private readonly bufferWaitMs: number;

  constructor(opts: S3DriverOptions) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ? opts.prefix.replace(/\/*$/, '/') : '';
    this.partSize = opts.partSize ?? 8 * MiB;
    if (!isInt(this.partSize, MIN_PART)) throw new Error(`S3 part size must be an integer >= ${MIN_PART}`);
    this.redirect = opts.redirect ?? false;
    this.copyConcurrency = opts.copyConcurrency ?? 8;
    this.buffers = new ByteBudget(Math.max(opts.maxBufferedBytes ?? 32 * this.partSize, this.partSize));
    this.bufferWaitMs = opts.bufferWaitMs ?? 30_000;
    const creds = opts.accessKeyId && opts.secretAccessKey
      ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, sessionToken: opts.sessionToken }
      : undefined;
    this.client = new S3Client({
      region: opts.region, endpoint: opts.endpoint, credentials: creds,
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      maxAttempts: opts.maxAttempts ?? 5, retryMode: 'standard',
      // S3-compatible servers without the newest flexible-checksum headers keep working.
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connectionTimeoutMs ?? 5_000,
        requestTimeout: opts.requestTimeoutMs ?? 120_000,
        throwOnRequestTimeout: true,
        socketTimeout: opts.idleTimeoutMs ?? 30_000,
      },
    });
  }

  private async run<T>(p: Promise<T>, missing?: () => Error): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw mapError(err, missing);
    }
  }

  /** Whether the server answered UploadPartCopy (undefined until a multipart commit tried it). */
  get serverPartCopy(): boolean | undefined {
    return this.partCopy;
  }

  private k = (key: string): string => this.prefix + key;
  private marker = (id: string): string => this.k(keys.uploadMarker(id));
  private partKey = (id: string, i: number, nonce: string): string => this.k(keys.uploadPart(id, i, nonce));
  private tailKey = (id: string, nonce: string): string => this.k(keys.uploadTailPiece(id, nonce));
  private copySource = (key: string): string => `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

  private parse(id: string, state: UploadState): Session {
    const d = state.driver as Partial<Session>;
    if (!isUploadId(id) || !isInt(d.partSize, MIN_PART) || !validPairs(d.runs, 1) || !validPairs(d.tail, 1)) {
      throw new DataError(`upload ${id}: not an S3 driver upload state`);
    }
    const s = d as Session;
    const total = this.parts(id, s).reduce((n, p) => n + p.size, 0) + s.tail.reduce((n, [, size]) => n + size, 0);
    if (total !== state.size) throw new DataError(`upload ${id}: state holds ${total} bytes, not ${state.size}`);
    return s;
  }

  private parts(id: string, s: Session): Source[] {
    const out: Source[] = [];
    for (const [nonce, count] of s.runs) {
      for (let j = 0; j < count; j++) out.push({ key: this.partKey(id, out.length, nonce), size: partSizeAt(s.partSize, out.length) });
    }
    return out;
  }
  private tails(id: string, s: Session): Source[] {
    return s.tail.map(([nonce, size]) => ({ key: this.tailKey(id, nonce), size }));
  }

  /** Size of an object, or null when absent. */
  private async head(key: string): Promise<number | null> {
    try {
      return (await this.run(this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })))).ContentLength ?? 0;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }
  private async requireSession(id: string): Promise<void> {
    if ((await this.head(this.marker(id))) === null) throw new UploadNotFoundError(id);
  }
  private async open(key: string, missing: () => Error): Promise<Readable> {
    const res = await this.run(this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })), missing);
    return res.Body as Readable;
  }
  private async readBytes(sources: Source[], missing: () => Error): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const src of sources) {
      const chunks: Buffer[] = [];
      for await (const c of await this.open(src.key, missing)) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      if (bytes.length !== src.size) throw new DataError(`${src.key}: ${bytes.length} bytes stored, ${src.size} recorded`);
      out.push(bytes);
    }
    return out;
  }
  private async put(key: string, body: Buffer): Promise<void> {
    await this.run(this.client.send(new PutObjectCommand({
      Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length,
    })));
  }
  private async deleteKeys(list: string[]): Promise<void> {
    for (let i = 0; i < list.length; i += 1000) {
      const batch = list.slice(i, i + 1000);
      try {
        const res = await this.run(this.client.send(new DeleteObjectsCommand({
          Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        })));
        if (res.Errors?.length) throw new DataError(`S3 DeleteObjects failed for ${res.Errors.length} keys: ${res.Errors[0]?.Code}`);
      } catch (err) {
        if (err instanceof DataError) throw err;
        // Some S3-compatible servers reject batch deletes (e.g. they insist on Content-MD5).
        await mapLimit(batch, 8, (Key) => this.run(this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))));
      }
    }
  }
  /** Keys under `prefix`, or with a delimiter the next path segments (without the prefix). */
  private async list(prefix: string, delimiter?: '/'): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.run(this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token,
      })));
      for (const o of res.Contents ?? []) if (o.Key && !delimiter) out.push(o.Key);
      for (const p of res.CommonPrefixes ?? []) if (p.Prefix) out.push(p.Prefix.slice(prefix.length).replace(/\/$/, ''));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }
  /** Deletes every object of the session, the marker last (so an interrupted removal stays listed). */
  private async removeSession(id: string): Promise<void> {
    const marker = this.marker(id);
    const all = await this.list(`${this.k(keys.uploadDir(id))}/`);
    await this.deleteKeys(all.filter((key) => key !== marker));
    await this.deleteKeys([marker]);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const size = await this.head(this.k(keys.blob(digest)));
    return size === null ? null : { size };
  }

  async read(digest: string, range?: ByteRange): Promise<BlobSource> {
    const cmd = new GetObjectCommand({
      Bucket: this.bucket, Key: this.k(keys.blob(digest)), Range: range ? `bytes=${range.start}-${range.end}` : undefined,
    });
    let body: Readable;
    try {
      body = (await this.run(this.client.send(cmd), () => new BlobNotFoundError(digest))).Body as Readable;
    } catch (err) {
      // As the fs driver: a range past the end reads nothing (the HTTP edge validates ranges).
      if (nameOf(err) !== 'InvalidRange' && statusOf(err) !== 416) throw err;
      body = Readable.from([]);
    }
    return { pipeTo: (dest) => pipeline(body, dest), [Symbol.asyncIterator]: () => (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]() };
  }

  async redirectUrl(digest: string, ttlSeconds: number): Promise<string | null> {
    if (!this.redirect) return null;
    const cmd = new GetObjectCommand({ Bucket: this.bucket, Key: this.k(keys.blob(digest)) });
    return getSignedUrl(this.client, cmd, { expiresIn: ttlSeconds });
  }

  async delete(digest: string): Promise<void> {
    await this.run(this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.k(keys.blob(digest)) })));
  }

  async deleteMany(digests: string[]): Promise<string[]> {
    const failed: string[] = [];
    for (let i = 0; i < digests.length; i += 1000) {
      const batch = digests.slice(i, i + 1000);
      const digestOf = new Map(batch.map((d) => [this.k(keys.blob(d)), d]));
      try {
        const res = await this.run(this.client.send(new DeleteObjectsCommand({
          Bucket: this.bucket, Delete: { Objects: [...digestOf.keys()].map((Key) => ({ Key })), Quiet: true },
        })));
        // Quiet mode lists only failures; a failure without a known key fails the whole batch (retried next run).
        for (const e of res.Errors ?? []) {
          const d = e.Key === undefined ? undefined : digestOf.get(e.Key);
          if (d === undefined) return [...failed, ...batch];
          failed.push(d);
        }
      } catch {
        // The request itself failed or the server rejects batch deletes: one request per key.
        await mapLimit(batch, 8, async (d) => {
          try {
            await this.delete(d);
          } catch {
            failed.push(d);
          }
        });
      }
    }
    return [...new Set(failed)];
  }

  async createUpload(id: string): Promise<UploadState> {
    await this.put(this.marker(id), Buffer.from(JSON.stringify({ created: new Date().toISOString() })));
    const driver: Session = { partSize: this.partSize, runs: [], tail: [] };
    return { size: 0, driver: driver as unknown as Record<string, unknown> };
  }

  async append(id: string, state: UploadState, source: AsyncIterable<Uint8Array>): Promise<UploadState> {
    const s = this.parse(id, state);
    const missing = (): Error => new UploadNotFoundError(id);
    const nonce = randomBytes(6).toString('hex');
    const written: string[] = [];
    const first = this.parts(id, s).length;
    let next = first; // index of the next part to cut
    let stored = s.tail.reduce((n, [, size]) => n + size, 0); // stored tail bytes not yet in a part
    let pending: Uint8Array[] = [];
    let pendingLen = 0;
    let received = 0;
    let tail = s.tail;
    let release: (() => void) | undefined;
    try {
      await this.requireSession(id);
      for await (const chunk of source) {
        // About one part is held at a time; reserve it before holding any byte.
        release ??= await this.buffers.acquire(partSizeAt(s.partSize, next), this.bufferWaitMs);
        received += chunk.length;
        let rest = chunk;
        while (rest.length > 0) {
          const room = partSizeAt(s.partSize, next) - stored - pendingLen;
          if (rest.length < room) {
            pending.push(rest);
            pendingLen += rest.length;
            break;
          }
          pending.push(rest.subarray(0, room));
          rest = rest.subarray(room);
          if (next >= MAX_PARTS) throw new DataError(`upload ${id}: too large for ${MAX_PARTS} parts`);
          // The stored tail is read back once, when it becomes the head of a part.
          const head = stored > 0 ? await this.readBytes(this.tails(id, s), missing) : [];
          const body = Buffer.concat([...head, ...pending]);
          stored = 0;
          pending = [];
          pendingLen = 0;
          const key = this.partKey(id, next, nonce);
          written.push(key);
          await this.put(key, body);
          next++;
        }
      }
      if (received === 0) return state;
      if (next > first) tail = []; // the stored tail went into the first new part
      if (pendingLen > 0) {
        let body = Buffer.concat(pending);
        if (tail.length >= MAX_TAIL_PIECES) {
          body = Buffer.concat([...(await this.readBytes(this.tails(id, s), missing)), body]);
          tail = [];
        }
        const key = this.tailKey(id, nonce);
        written.push(key);
        await this.put(key, body);
        tail = [...tail, [nonce, body.length]];
      }
    } catch (err) {
      // Nothing the previous state points at was touched; forget what this call wrote.
      await this.deleteKeys(written).catch(() => undefined);
      throw mapError(err);
    } finally {
      release?.();
    }
    // The previous tail pieces may now be superseded; they stay until releaseSuperseded.
    const runs: [string, number][] = next > first ? [...s.runs, [nonce, next - first]] : s.runs;
    const driver: Session = { partSize: s.partSize, runs, tail };
    return { size: state.size + received, driver: driver as unknown as Record<string, unknown> };
  }

  async releaseSuperseded(id: string, previous: UploadState, current: UploadState): Promise<void> {
    const before = this.parse(id, previous);
    const after = this.parse(id, current);
    const kept = new Set([...this.parts(id, after), ...this.tails(id, after)].map((o) => o.key));
    const gone = [...this.parts(id, before), ...this.tails(id, before)].map((o) => o.key).filter((k) => !kept.has(k));
    if (gone.length > 0) await this.deleteKeys(gone);
  }

  /** Objects are written whole (PutObject) before the state naming them is saved: nothing to trim. */
  async verifyUpload(_id: string, state: UploadState): Promise<UploadState> {
    return state;
  }

  async uploadTouchedAt(id: string): Promise<number | null> {
    try {
      const res = await this.run(this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.marker(id) })));
      return res.LastModified?.getTime() ?? Date.now();
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async readUpload(id: string, state: UploadState): Promise<Readable> {
    const s = this.parse(id, state);
    const missing = (): Error => new UploadNotFoundError(id);
    const sources = [...this.parts(id, s), ...this.tails(id, s)];
    if (sources.length === 0) {
      await this.requireSession(id);
      return Readable.from([]);
    }
    // Open the first object now, so a missing session is an error here rather than mid-stream.
    const firstBody = await this.open(sources[0]!.key, missing);
    const open = (key: string): Promise<Readable> => this.open(key, missing);
    async function* all(): AsyncGenerator<Uint8Array> {
      yield* firstBody;
      for (const src of sources.slice(1)) yield* await open(src.key);
    }
    return Readable.from(all(), { objectMode: false });
  }

  async commit(id: string, state: UploadState, digest: string): Promise<void> {
    const s = this.parse(id, state);
    const missing = (): Error => new UploadNotFoundError(id);
    const target = this.k(keys.blob(digest));
    if ((await this.head(target)) === null) {
      const parts = this.parts(id, s);
      const tails = this.tails(id, s);
      // Several tail pieces are at most one part: joined here, uploaded as the last part.
      const last: Source | Buffer | undefined = tails.length > 1 ? Buffer.concat(await this.readBytes(tails, missing)) : tails[0];
      const sources: (Source | Buffer)[] = last === undefined ? parts : [...parts, last];
      const only = sources[0];
      if (only === undefined) {
        await this.requireSession(id);
        await this.put(target, Buffer.alloc(0));
      } else if (sources.length > 1) {
        await this.assemble(target, sources, missing);
      } else if (Buffer.isBuffer(only)) {
        await this.put(target, only);
      } else {
        const copy = new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: this.copySource(only.key) });
        await this.run(this.client.send(copy), missing);
      }
    }
    // The blob is committed; leftovers are found again through listUploads.
    await this.removeSession(id).catch(() => undefined);
  }

  /** Multipart upload at the digest key from the session's objects; visible only on Complete. */
  private async assemble(target: string, sources: (Source | Buffer)[], missing: () => Error): Promise<void> {
    const { UploadId } = await this.run(this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target })));
    if (!UploadId) throw new DataError('S3 CreateMultipartUpload returned no UploadId');
    const where = { Bucket: this.bucket, Key: target, UploadId };
    try {
      const etags = await mapLimit(sources, this.copyConcurrency, async (src, i) => {
        const PartNumber = i + 1;
        let body = Buffer.isBuffer(src) ? src : undefined;
        if (!body && this.partCopy !== false) {
          try {
            const res = await this.run(this.client.send(new UploadPartCopyCommand({
              ...where, PartNumber, CopySource: this.copySource((src as Source).key),
            })), missing);
            this.partCopy = true;
            return res.CopyPartResult?.ETag;
          } catch (err) {
            if (!isNotImplemented(err)) throw err;
            this.partCopy = false;
          }
        }
        // Streamed through this process (no UploadPartCopy): each part read counts against the
        // shared buffer budget, so parallel commits cannot hold copyConcurrency parts each unbounded.
        const release = body ? undefined : await this.buffers.acquire((src as Source).size, this.bufferWaitMs);
        try {
          body ??= (await this.readBytes([src as Source], missing))[0]!;
          const res = await this.run(this.client.send(new UploadPartCommand({
            ...where, PartNumber, Body: body, ContentLength: body.length,
          })));
          return res.ETag;
        } finally {
          release?.();
        }
      });
      if (etags.some((e) => !e)) throw new DataError('S3 returned a part without an ETag');
      await this.run(this.client.send(new CompleteMultipartUploadCommand({
        ...where, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      })));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand(where)).catch(() => undefined);
      throw err;
    }
  }

  async abort(id: string, _state: UploadState): Promise<void> {
    keys.uploadDir(id);
    await this.removeSession(id);
  }

  async listUploads(): Promise<string[]> {
    return (await this.list(this.k('uploads/'), '/')).filter(isUploadId);
  }

  /**
   * Aborts multipart uploads under the prefix started more than `olderThanMs` ago. Sessions
   * never hold one; only a commit that died between Create and Complete leaves one behind.
   */
  async sweep(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const cmd = new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker, UploadIdMarker });
      const res = await this.run(this.client.send(cmd)).catch((err: unknown) => {
        throw isNotImplemented(err) ? new DataError('this S3 server does not implement ListMultipartUploads') : err;
      });
      for (const u of res.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || u.Initiated.getTime() >= cutoff) continue;
        await this.run(this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })))
          .then(() => aborted++, (err: unknown) => { if (!isMissing(err)) throw err; });
      }
      if (!res.IsTruncated) return aborted;
      KeyMarker = res.NextKeyMarker;
      UploadIdMarker = res.NextUploadIdMarker;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
