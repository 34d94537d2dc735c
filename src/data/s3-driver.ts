/**
 * S3-compatible driver (AWS S3, MinIO, Ceph RGW, R2, s3rver …). Layout in keys.ts, under `prefix`.
 * Blobs are plain objects at their digest key; upload sessions (plain objects per append, built
 * into the blob server-side at commit) are s3-uploads.ts; object operations s3-objects.ts.
 *
 * Transit integrity: the SDK signs every body's SHA-256 (x-amz-content-sha256) and S3 checks it,
 * or TLS does; so no Content-MD5 (MD5 runs at ~250 MB/s here, slower than the upload path).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand,
  ListMultipartUploadsCommand, S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobDriver, BlobSource, ByteRange, UploadState } from './driver.js';
import { ByteBudget } from './byte-budget.js';
import { BlobNotFoundError, DataError } from './errors.js';
import { isUploadId, keys } from './keys.js';
import { S3Objects } from './s3-objects.js';
import { isInt, isMissing, isNotImplemented, mapLimit, MiB, MIN_PART, nameOf, statusOf } from './s3-support.js';
import { S3Uploads } from './s3-uploads.js';

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

export class S3Driver implements BlobDriver {
  readonly name = 's3';
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly redirect: boolean;
  /** Shared by every append of this driver (one per process). */
  readonly buffers: ByteBudget;
  private readonly o: S3Objects;
  private readonly uploads: S3Uploads;

  constructor(opts: S3DriverOptions) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ? opts.prefix.replace(/\/*$/, '/') : '';
    const partSize = opts.partSize ?? 8 * MiB;
    if (!isInt(partSize, MIN_PART)) throw new Error(`S3 part size must be an integer >= ${MIN_PART}`);
    this.redirect = opts.redirect ?? false;
    this.buffers = new ByteBudget(Math.max(opts.maxBufferedBytes ?? 32 * partSize, partSize));
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
    this.o = new S3Objects(this.client, this.bucket, this.prefix);
    this.uploads = new S3Uploads(this.o, {
      partSize, buffers: this.buffers, bufferWaitMs: opts.bufferWaitMs ?? 30_000, copyConcurrency: opts.copyConcurrency ?? 8,
    });
  }

  private run<T>(p: Promise<T>, missing?: () => Error): Promise<T> {
    return this.o.run(p, missing);
  }
  private k = (key: string): string => this.o.k(key);

  /** Whether the server answered UploadPartCopy (undefined until a multipart commit tried it). */
  get serverPartCopy(): boolean | undefined {
    return this.uploads.partCopy;
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const size = await this.o.head(this.k(keys.blob(digest)));
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
    return this.uploads.create(id);
  }

  async append(id: string, state: UploadState, source: AsyncIterable<Uint8Array>): Promise<UploadState> {
    return this.uploads.append(id, state, source);
  }

  async releaseSuperseded(id: string, previous: UploadState, current: UploadState): Promise<void> {
    return this.uploads.releaseSuperseded(id, previous, current);
  }

  /** Objects are written whole (PutObject) before the state naming them is saved: nothing to trim. */
  async verifyUpload(_id: string, state: UploadState): Promise<UploadState> {
    return state;
  }

  async uploadTouchedAt(id: string): Promise<number | null> {
    try {
      const res = await this.run(this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.uploads.marker(id) })));
      return res.LastModified?.getTime() ?? Date.now();
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async readUpload(id: string, state: UploadState): Promise<Readable> {
    return this.uploads.read(id, state);
  }

  async commit(id: string, state: UploadState, digest: string): Promise<void> {
    return this.uploads.commit(id, state, digest);
  }

  async abort(id: string, _state: UploadState): Promise<void> {
    keys.uploadDir(id);
    await this.uploads.removeSession(id);
  }

  async listUploads(): Promise<string[]> {
    return (await this.o.list(this.k('uploads/'), '/')).filter(isUploadId);
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
