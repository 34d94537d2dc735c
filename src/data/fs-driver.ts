/** Local-filesystem driver: the embedded default. Layout in keys.ts. */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import type { BlobDriver, BlobSource, ByteRange, UploadState } from './driver.js';
import { BlobNotFoundError, SizeMismatchError, UploadNotFoundError } from './errors.js';
import { keys } from './keys.js';
import { sendFileRange } from './file-sender.js';
import { writeAt } from './file-writer.js';

export interface FsDriverOptions {
  root: string;
  /**
   * Durability (default true): PATCH bytes are fdatasync'ed before they are acknowledged, blob
   * bytes before they become visible, and the directories whose entries a session start or a
   * commit creates or renames are fsync'ed too (a rename is durable only once its directory is).
   */
  fsync?: boolean;
}

const READ_CHUNK = 1 << 20;

const isNotFound = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

export class FsDriver implements BlobDriver {
  readonly name = 'fs';
  private readonly root: string;
  private readonly fsync: boolean;

  constructor(opts: FsDriverOptions) {
    this.root = resolve(opts.root);
    this.fsync = opts.fsync ?? true;
  }

  private path(key: string): string {
    return join(this.root, key);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    try {
      const st = await stat(this.path(keys.blob(digest)));
      return { size: st.size };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async read(digest: string, range?: ByteRange): Promise<BlobSource> {
    const path = this.path(keys.blob(digest));
    // Open first so a missing blob is an error here, not a stream error mid-response.
    const fh = await open(path, 'r').catch((err) => {
      throw isNotFound(err) ? new BlobNotFoundError(digest) : err;
    });
    const start = range?.start ?? 0;
    const end = range?.end ?? (await fh.stat()).size - 1;
    return {
      async pipeTo(dest: Writable): Promise<void> {
        try {
          await sendFileRange(fh, start, end, dest);
        } finally {
          await fh.close().catch(() => undefined);
        }
      },
      [Symbol.asyncIterator]: () => {
        // An empty range (the empty blob) reads nothing; createReadStream cannot express it.
        const stream = end < start ? (void fh.close(), Readable.from([])) : fh.createReadStream({ start, end, highWaterMark: READ_CHUNK });
        return (stream as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
      },
    };
  }

  async redirectUrl(): Promise<string | null> {
    return null;
  }

  async delete(digest: string): Promise<void> {
    await rm(this.path(keys.blob(digest)), { force: true });
  }

  async deleteMany(digests: string[]): Promise<string[]> {
    const failed: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < digests.length) {
        const d = digests[next++]!;
        await this.delete(d).catch(() => failed.push(d));
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, digests.length) }, worker));
    return failed;
  }

  async createUpload(id: string): Promise<UploadState> {
    const file = this.path(keys.uploadData(id));
    const created = await mkdir(dirname(file), { recursive: true });
    await (await open(file, 'wx')).close();
    if (this.fsync) {
      await this.syncDirectory(dirname(file));
      await this.syncCreated(dirname(file), created);
    }
    return { size: 0, driver: {} };
  }

  /** fsync of a directory: makes the entries created or renamed in it durable. */
  protected async syncDirectory(dir: string): Promise<void> {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** After `mkdir -p dir` created `first` and everything below it: sync each new entry's parent. */
  private async syncCreated(dir: string, first: string | undefined): Promise<void> {
    if (first === undefined) return;
    const top = resolve(first);
    for (let d = dir; ; d = dirname(d)) {
      await this.syncDirectory(dirname(d));
      if (d === top || d === dirname(d)) break;
    }
  }

  /** Current size of the session file; UploadNotFoundError when the session does not exist. */
  private async uploadFileSize(id: string): Promise<number> {
    try {
      return (await stat(this.path(keys.uploadData(id)))).size;
    } catch (err) {
      if (isNotFound(err)) throw new UploadNotFoundError(id);
      throw err;
    }
  }

  async verifyUpload(id: string, state: UploadState): Promise<UploadState> {
    const onDisk = await this.uploadFileSize(id);
    return onDisk < state.size ? { ...state, size: onDisk } : state;
  }

  async releaseSuperseded(): Promise<void> {}

  async uploadTouchedAt(id: string): Promise<number | null> {
    for (const key of [keys.uploadData(id), keys.uploadDir(id)]) {
      try {
        return (await stat(this.path(key))).mtimeMs;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return null;
  }

  private async uploadFile(id: string): Promise<string> {
    const file = this.path(keys.uploadData(id));
    try {
      await stat(file);
    } catch (err) {
      if (isNotFound(err)) throw new UploadNotFoundError(id);
      throw err;
    }
    return file;
  }

  async append(id: string, state: UploadState, source: AsyncIterable<Uint8Array>): Promise<UploadState> {
    const file = this.path(keys.uploadData(id));
    // truncate() would extend a short file with zeros: bytes the session hashed but lost (a
    // crash without fsync) must be re-sent, not invented. Callers check with verifyUpload first.
    const onDisk = await this.uploadFileSize(id);
    if (onDisk < state.size) throw new SizeMismatchError(state.size, onDisk);
    const fh = await open(file, 'r+');
    let written = 0;
    try {
      // Bytes past the acknowledged size belong to an append that failed (or a process that died
      // mid-append): drop them so the file is exactly what the session state says.
      if (onDisk > state.size) await fh.truncate(state.size);
      written = await writeAt(fh, source, state.size, this.fsync);
      // Acknowledged means durable: the background syncs leave little for this one.
      if (this.fsync && written > 0) await fh.datasync();
    } catch (err) {
      // Roll back to the last acknowledged size so the session stays consistent with its hash.
      await fh.truncate(state.size).catch(() => undefined);
      throw err;
    } finally {
      await fh.close().catch(() => undefined);
    }
    return { size: state.size + written, driver: state.driver };
  }

  async readUpload(id: string, state: UploadState): Promise<Readable> {
    const file = await this.uploadFile(id);
    // Only the acknowledged prefix: later bytes are leftovers of a failed append.
    if (state.size === 0) return Readable.from([]);
    return createReadStream(file, { highWaterMark: READ_CHUNK, end: state.size - 1 });
  }

  async commit(id: string, state: UploadState, digest: string): Promise<void> {
    const file = await this.uploadFile(id);
    const onDisk = await this.uploadFileSize(id);
    if (onDisk < state.size) throw new SizeMismatchError(state.size, onDisk);
    await truncate(file, state.size);
    const target = this.path(keys.blob(digest));
    if ((await this.stat(digest)) === null) {
      if (this.fsync) {
        const fh = await open(file, 'r+');
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      const dir = dirname(target);
      const created = await mkdir(dir, { recursive: true });
      // rename is atomic: readers see either no blob or all of it. Two sessions committing the
      // same digest both rename identical bytes onto the same name, which is harmless.
      await rename(file, target);
      // The caller records the blob in metadata next: the rename must survive a power loss first.
      if (this.fsync) {
        await this.syncDirectory(dir);
        await this.syncCreated(dir, created);
      }
    }
    await rm(this.path(keys.uploadDir(id)), { recursive: true, force: true });
  }

  async abort(id: string): Promise<void> {
    await rm(this.path(keys.uploadDir(id)), { recursive: true, force: true });
  }

  async listUploads(): Promise<string[]> {
    try {
      return await readdir(this.path('uploads'));
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
  }

  /** Commits rename in one step, so the filesystem has no half-built objects to sweep. */
  async sweep(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}
