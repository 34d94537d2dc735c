/**
 * Upload sessions of the S3 driver. A session never holds an S3 multipart upload open: bytes
 * that can not be read back are bytes a restarted process can not re-hash. Instead every append
 * writes plain objects
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
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand,
  UploadPartCommand, UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { UploadState } from './driver.js';
import type { ByteBudget } from './byte-budget.js';
import { DataError, UploadNotFoundError } from './errors.js';
import { isUploadId, keys } from './keys.js';
import type { S3Objects } from './s3-objects.js';
import {
  isInt, isNotImplemented, mapError, mapLimit, MAX_PARTS, MAX_TAIL_PIECES, MIN_PART, partSizeAt, validPairs,
  type Session, type Source,
} from './s3-support.js';

export interface S3UploadsOptions {
  partSize: number;
  /** Shared by every append and streamed commit part of the driver (one per process). */
  buffers: ByteBudget;
  bufferWaitMs: number;
  copyConcurrency: number;
}

export class S3Uploads {
  /** Learnt from the server: undefined until the first UploadPartCopy. */
  partCopy: boolean | undefined;

  constructor(private readonly o: S3Objects, private readonly opts: S3UploadsOptions) {}

  marker = (id: string): string => this.o.k(keys.uploadMarker(id));
  private partKey = (id: string, i: number, nonce: string): string => this.o.k(keys.uploadPart(id, i, nonce));
  private tailKey = (id: string, nonce: string): string => this.o.k(keys.uploadTailPiece(id, nonce));

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

  private async requireSession(id: string): Promise<void> {
    if ((await this.o.head(this.marker(id))) === null) throw new UploadNotFoundError(id);
  }
  /** Deletes every object of the session, the marker last (so an interrupted removal stays listed). */
  async removeSession(id: string): Promise<void> {
    const marker = this.marker(id);
    const all = await this.o.list(`${this.o.k(keys.uploadDir(id))}/`);
    await this.o.deleteKeys(all.filter((key) => key !== marker));
    await this.o.deleteKeys([marker]);
  }

  async create(id: string): Promise<UploadState> {
    await this.o.put(this.marker(id), Buffer.from(JSON.stringify({ created: new Date().toISOString() })));
    const driver: Session = { partSize: this.opts.partSize, runs: [], tail: [] };
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
        release ??= await this.opts.buffers.acquire(partSizeAt(s.partSize, next), this.opts.bufferWaitMs);
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
          const head = stored > 0 ? await this.o.readBytes(this.tails(id, s), missing) : [];
          const body = Buffer.concat([...head, ...pending]);
          stored = 0;
          pending = [];
          pendingLen = 0;
          const key = this.partKey(id, next, nonce);
          written.push(key);
          await this.o.put(key, body);
          next++;
        }
      }
      if (received === 0) return state;
      if (next > first) tail = []; // the stored tail went into the first new part
      if (pendingLen > 0) {
        let body = Buffer.concat(pending);
        if (tail.length >= MAX_TAIL_PIECES) {
          body = Buffer.concat([...(await this.o.readBytes(this.tails(id, s), missing)), body]);
          tail = [];
        }
        const key = this.tailKey(id, nonce);
        written.push(key);
        await this.o.put(key, body);
        tail = [...tail, [nonce, body.length]];
      }
    } catch (err) {
      // Nothing the previous state points at was touched; forget what this call wrote.
      await this.o.deleteKeys(written).catch(() => undefined);
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
    if (gone.length > 0) await this.o.deleteKeys(gone);
  }

  async read(id: string, state: UploadState): Promise<Readable> {
    const s = this.parse(id, state);
    const missing = (): Error => new UploadNotFoundError(id);
    const sources = [...this.parts(id, s), ...this.tails(id, s)];
    if (sources.length === 0) {
      await this.requireSession(id);
      return Readable.from([]);
    }
    // Open the first object now, so a missing session is an error here rather than mid-stream.
    const firstBody = await this.o.open(sources[0]!.key, missing);
    const open = (key: string): Promise<Readable> => this.o.open(key, missing);
    async function* all(): AsyncGenerator<Uint8Array> {
      yield* firstBody;
      for (const src of sources.slice(1)) yield* await open(src.key);
    }
    return Readable.from(all(), { objectMode: false });
  }

  async commit(id: string, state: UploadState, digest: string): Promise<void> {
    const s = this.parse(id, state);
    const missing = (): Error => new UploadNotFoundError(id);
    const target = this.o.k(keys.blob(digest));
    if ((await this.o.head(target)) === null) {
      const parts = this.parts(id, s);
      const tails = this.tails(id, s);
      // Several tail pieces are at most one part: joined here, uploaded as the last part.
      const last: Source | Buffer | undefined = tails.length > 1 ? Buffer.concat(await this.o.readBytes(tails, missing)) : tails[0];
      const sources: (Source | Buffer)[] = last === undefined ? parts : [...parts, last];
      const only = sources[0];
      if (only === undefined) {
        await this.requireSession(id);
        await this.o.put(target, Buffer.alloc(0));
      } else if (sources.length > 1) {
        await this.assemble(target, sources, missing);
      } else if (Buffer.isBuffer(only)) {
        await this.o.put(target, only);
      } else {
        const copy = new CopyObjectCommand({ Bucket: this.o.bucket, Key: target, CopySource: this.o.copySource(only.key) });
        await this.o.run(this.o.client.send(copy), missing);
      }
    }
    // The blob is committed; leftovers are found again through listUploads.
    await this.removeSession(id).catch(() => undefined);
  }

  /** Multipart upload at the digest key from the session's objects; visible only on Complete. */
  private async assemble(target: string, sources: (Source | Buffer)[], missing: () => Error): Promise<void> {
    const { client, bucket } = this.o;
    const { UploadId } = await this.o.run(client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: target })));
    if (!UploadId) throw new DataError('S3 CreateMultipartUpload returned no UploadId');
    const where = { Bucket: bucket, Key: target, UploadId };
    try {
      const etags = await mapLimit(sources, this.opts.copyConcurrency, async (src, i) => {
        const PartNumber = i + 1;
        let body = Buffer.isBuffer(src) ? src : undefined;
        if (!body && this.partCopy !== false) {
          try {
            const res = await this.o.run(client.send(new UploadPartCopyCommand({
              ...where, PartNumber, CopySource: this.o.copySource((src as Source).key),
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
        const release = body ? undefined : await this.opts.buffers.acquire((src as Source).size, this.opts.bufferWaitMs);
        try {
          body ??= (await this.o.readBytes([src as Source], missing))[0]!;
          const res = await this.o.run(client.send(new UploadPartCommand({
            ...where, PartNumber, Body: body, ContentLength: body.length,
          })));
          return res.ETag;
        } finally {
          release?.();
        }
      });
      if (etags.some((e) => !e)) throw new DataError('S3 returned a part without an ETag');
      await this.o.run(client.send(new CompleteMultipartUploadCommand({
        ...where, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      })));
    } catch (err) {
      await client.send(new AbortMultipartUploadCommand(where)).catch(() => undefined);
      throw err;
    }
  }
}
