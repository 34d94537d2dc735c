/** Local-filesystem driver: the embedded default. Layout in keys.ts. */
import { randomUUID } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, ftruncateSync, open as openCb, openSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import type { BlobDriver, BlobSource, ByteRange, UploadState } from './driver.js';
import { BlobNotFoundError, SizeMismatchError, UploadNotFoundError } from './errors.js';
import { keys } from './keys.js';
import { sendFileRange } from './file-sender.js';
import { datasyncFd, fsyncFd, writeAt } from './file-writer.js';
import type { DirectTarget } from './direct-writer.js';
import { DirSyncer } from './dir-sync.js';
import { INODE, assertSessionInode, inodeOf, moveToNewInode } from './upload-fence.js';
import { retainFreedBufferMemory } from './heap.js';

export interface FsDriverOptions {
  root: string;
  /**
   * Durability (default true): PATCH bytes are fdatasync'ed before they are acknowledged, blob
   * bytes before they become visible, and the directories whose entries a session start or a
   * commit creates or renames are fsync'ed too (a rename is durable only once its directory is).
   */
  fsync?: boolean;
  /**
   * Large appends bypass the page cache with O_DIRECT (default: on where the platform has it, and
   * only with fsync on: those bytes must reach the disk before the answer anyway). Why: direct-writer.ts.
   */
  directIo?: boolean;
}

const READ_CHUNK = 1 << 20;

/*
 * Read-only metadata calls on the upload path (stat, fstat, open of an existing file, close) are
 * synchronous: a few microseconds on cached inodes, while the promise version costs a thread-pool
 * round trip (~20-80 us of CPU under load, measured). Calls that change directories (mkdir,
 * create, rename, rmdir, unlink) stay on the thread pool with the writes and syncs: profiled,
 * they wait for the journal commit of concurrent fsyncs and would block the event loop.
 */

/** open(O_CREAT|O_EXCL) on the thread pool: creating an entry can wait for the journal. */
const createFd = (file: string): Promise<number> => new Promise((done, fail) => openCb(file, 'wx', (err, fd) => (err ? fail(err) : done(fd))));

const isNotFound = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';
/**
 * A session path that does not exist, ENOTDIR included: uploads/<id>/data asked of a session
 * that is the file uploads/<id> (keys.ts). Only for session paths: elsewhere ENOTDIR is a
 * broken store (a file where a directory belongs), which the readiness probe must report.
 */
const isMissingSession = (err: unknown): boolean => isNotFound(err) || (err as NodeJS.ErrnoException)?.code === 'ENOTDIR';

/** UploadState.driver flag: the session is the file uploads/<id> (keys.ts), not uploads/<id>/data. */
const FLAT = 'file';

export class FsDriver implements BlobDriver {
  readonly name = 'fs';
  private readonly root: string;
  private readonly fsync: boolean;
  /** Blob directories this process created or found (with their parents synced): no mkdir per commit. */
  private readonly knownDirs = new Set<string>();
  private readonly dirSyncer = new DirSyncer((dir) => this.syncDirectory(dir));
  /** Off for good once the filesystem refused O_DIRECT (EINVAL). */
  private directIo: boolean;

  constructor(opts: FsDriverOptions) {
    this.root = resolve(opts.root);
    this.fsync = opts.fsync ?? true;
    this.directIo = this.fsync && (opts.directIo ?? true) && constants.O_DIRECT !== undefined;
    retainFreedBufferMemory(); // request bodies stream through here: see heap.ts
  }

  private path(key: string): string {
    return join(this.root, key);
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    const st = statSync(this.path(keys.blob(digest)), { throwIfNoEntry: false });
    return st ? { size: st.size } : null;
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
    const file = this.path(keys.uploadFile(id));
    const dir = dirname(file);
    if (!this.knownDirs.has(dir)) {
      // Only a new uploads/ itself (once per store) is synced here, since append syncs the session's entry in it.
      const created = await mkdir(dir, { recursive: true });
      if (this.fsync) await this.syncCreated(dir, created);
      this.knownDirs.add(dir);
    }
    // A plain fd, not a FileHandle (whose creation and close cost 5% of a small-blob push). The
    // new entry is synced with the session's first bytes (append): an empty session lost in a
    // crash is only a 404 the client recovers from, and a session that is committed in the
    // request that fills it never needs it durable at all. One file, no directory per session:
    // a directory cost an inode allocated and freed per blob, and ext4 without a journal scans
    // past every inode freed in the last ~30 s on each allocation (profiled: 17% of a
    // small-blob push's CPU).
    let fd: number;
    try {
      fd = await createFd(file);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.knownDirs.delete(dir); // uploads/ removed behind our back (an operator cleaning up)
      return this.createUpload(id);
    }
    let ino: string;
    try {
      ino = inodeOf(fd);
    } finally {
      closeSync(fd);
    }
    return { size: 0, driver: { [FLAT]: true, [INODE]: ino } };
  }

  /** The session's file: uploads/<id>, or uploads/<id>/data for a session started before #17 (keys.ts). */
  private sessionFile(id: string, state: UploadState): string {
    return this.path(state.driver[FLAT] === true ? keys.uploadFile(id) : keys.uploadData(id));
  }

  /** fsync of a directory: makes the entries created or renamed in it durable. */
  protected async syncDirectory(dir: string): Promise<void> {
    const fd = openSync(dir, 'r');
    try {
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
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

  /** Size and inode of the session file; UploadNotFoundError when the session does not exist. */
  private uploadFileStat(id: string, state: UploadState): { size: number; ino: string } {
    const st = statSync(this.sessionFile(id, state), { throwIfNoEntry: false, bigint: true });
    // A directory: a session of the old layout found with a new-layout state (it cannot be ours).
    if (!st || !st.isFile()) throw new UploadNotFoundError(id);
    return { size: Number(st.size), ino: st.ino.toString() };
  }

  /** Opens the session file for writing; UploadNotFoundError when the session does not exist. */
  private openUpload(id: string, state: UploadState): number {
    try {
      return openSync(this.sessionFile(id, state), 'r+');
    } catch (err) {
      throw isMissingSession(err) || (err as NodeJS.ErrnoException)?.code === 'EISDIR' ? new UploadNotFoundError(id) : err;
    }
  }

  /**
   * Also adopts the file's inode when the state names another: the caller holds the lease, so
   * the file at the session's path is the session's (a fence whose state was not saved, a data
   * directory restored from a copy). A state from before fencing names none and stays so.
   */
  async verifyUpload(id: string, state: UploadState): Promise<UploadState> {
    const onDisk = this.uploadFileStat(id, state);
    let checked = onDisk.size < state.size ? { ...state, size: onDisk.size } : state;
    const named = state.driver[INODE];
    if (typeof named === 'string' && named !== onDisk.ino) checked = { ...checked, driver: { ...checked.driver, [INODE]: onDisk.ino } };
    return checked;
  }

  async fenceUpload(id: string, state: UploadState): Promise<UploadState> {
    const file = this.sessionFile(id, state);
    // The copy is named as a session of its own: left behind by a crash, the orphan sweep removes it.
    const tmp = state.driver[FLAT] === true ? this.path(keys.uploadFile(randomUUID())) : `${file}.fence`;
    let ino: string;
    try {
      ino = await moveToNewInode(file, tmp, state.size, this.fsync, (dir) => this.syncDirectory(dir));
    } catch (err) {
      throw isMissingSession(err) ? new UploadNotFoundError(id) : err;
    }
    return { ...state, driver: { ...state.driver, [INODE]: ino } };
  }

  async releaseSuperseded(): Promise<void> {}

  async uploadTouchedAt(id: string): Promise<number | null> {
    // Old layout first (its directory's mtime changes only when entries do); uploads/<id> is either layout's top.
    for (const key of [keys.uploadData(id), keys.uploadFile(id)]) {
      try {
        return (await stat(this.path(key))).mtimeMs;
      } catch (err) {
        if (!isMissingSession(err)) throw err;
      }
    }
    return null;
  }

  async append(id: string, state: UploadState, source: AsyncIterable<Uint8Array>, opts: { durable?: boolean } = {}): Promise<UploadState> {
    const file = this.sessionFile(id, state);
    const flat = state.driver[FLAT] === true;
    const durable = this.fsync && opts.durable !== false;
    const fd = this.openUpload(id, state);
    let written = 0;
    let entriesSynced = state.driver.entriesSynced === true;
    try {
      assertSessionInode(fd, id, state.driver);
      // truncate() would extend a short file with zeros: bytes the session hashed but lost (a
      // crash without fsync) must be re-sent, not invented. Callers check with verifyUpload first.
      const onDisk = fstatSync(fd).size;
      if (onDisk < state.size) throw new SizeMismatchError(state.size, onDisk);
      try {
        // Bytes past the acknowledged size belong to an append that failed (or a process that
        // died mid-append): drop them so the file is exactly what the session state says.
        if (onDisk > state.size) ftruncateSync(fd, state.size);
        written = await writeAt(fd, source, state.size, this.fsync, this.directIo ? this.directTarget(file, fd) : undefined);
        if (durable && written > 0) {
          // Acknowledged means durable: the background syncs leave little for this one.
          await datasyncFd(fd);
          // The first acknowledged bytes: the session's file and directory entries must survive
          // too (createUpload left them unsynced; the state remembers it was done).
          if (!entriesSynced) {
            if (flat) await this.dirSyncer.sync(dirname(file));
            else await Promise.all([this.syncDirectory(dirname(file)), this.dirSyncer.sync(dirname(dirname(file)))]);
            entriesSynced = true;
          }
        }
      } catch (err) {
        // Roll back to the last acknowledged size so the session stays consistent with its hash.
        try {
          ftruncateSync(fd, state.size);
        } catch {
          /* the next append truncates again */
        }
        throw err;
      }
    } finally {
      closeSync(fd);
    }
    return { size: state.size + written, driver: entriesSynced && state.driver.entriesSynced !== true ? { ...state.driver, entriesSynced } : state.driver };
  }

  /**
   * The session file once more, with O_DIRECT, for writeAt; undefined (stay buffered) when it
   * cannot be. Through /proc/self/fd: the very inode `fd` has open, whatever the path names now
   * (the path where /proc is not mounted).
   */
  private directTarget(file: string, fd: number): DirectTarget {
    const off = (): void => {
      this.directIo = false;
    };
    return {
      open: () => {
        try {
          try {
            return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_DIRECT);
          } catch (err) {
            if ((err as NodeJS.ErrnoException)?.code !== 'ENOENT') throw err;
            return openSync(file, constants.O_WRONLY | constants.O_DIRECT);
          }
        } catch (err) {
          if ((err as NodeJS.ErrnoException)?.code === 'EINVAL') off(); // a filesystem without O_DIRECT (tmpfs before 6.6, some FUSE)
          return undefined;
        }
      },
      unsupported: off,
    };
  }

  async readUpload(id: string, state: UploadState): Promise<Readable> {
    const file = this.sessionFile(id, state);
    this.uploadFileStat(id, state); // UploadNotFoundError before any stream
    // Only the acknowledged prefix: later bytes are leftovers of a failed append.
    if (state.size === 0) return Readable.from([]);
    return createReadStream(file, { highWaterMark: READ_CHUNK, end: state.size - 1 });
  }

  async commit(id: string, state: UploadState, digest: string): Promise<void> {
    const file = this.sessionFile(id, state);
    const flat = state.driver[FLAT] === true;
    const target = this.path(keys.blob(digest));
    const fd = this.openUpload(id, state);
    let stored: boolean;
    try {
      assertSessionInode(fd, id, state.driver);
      const onDisk = fstatSync(fd).size;
      if (onDisk < state.size) throw new SizeMismatchError(state.size, onDisk);
      if (onDisk > state.size) ftruncateSync(fd, state.size);
      stored = statSync(target, { throwIfNoEntry: false }) !== undefined;
      // Before the rename: readers must never see a name whose bytes a crash could still lose.
      if (!stored && this.fsync) await datasyncFd(fd);
    } finally {
      closeSync(fd);
    }
    if (!stored) {
      // rename is atomic: readers see either no blob or all of it. Two sessions committing the
      // same digest both rename identical bytes onto the same name, which is harmless.
      await this.renameInto(file, target);
      // An old-layout session directory is empty now: remove it while the directory sync runs.
      const removed = flat ? undefined : this.removeSessionDir(id);
      try {
        // The caller records the blob in metadata next: the rename must survive a power loss first.
        if (this.fsync) await this.dirSyncer.sync(dirname(target));
      } finally {
        await removed;
      }
    } else {
      await unlink(file);
      if (!flat) await this.removeSessionDir(id);
    }
  }

  /** rename into a blob directory, creating (and syncing) the directories it needs the first time. */
  private async renameInto(file: string, target: string): Promise<void> {
    const dir = dirname(target);
    if (!this.knownDirs.has(dir)) {
      const created = await mkdir(dir, { recursive: true });
      if (this.fsync) await this.syncCreated(dir, created);
      this.knownDirs.add(dir);
    }
    try {
      await rename(file, target);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // The directory went away behind our back (an operator cleaning up): create it again.
      this.knownDirs.delete(dir);
      const created = await mkdir(dir, { recursive: true });
      if (this.fsync) await this.syncCreated(dir, created);
      this.knownDirs.add(dir);
      await rename(file, target);
    }
  }

  /** After a commit the session directory is normally empty: one rmdir, else the recursive remove. */
  private async removeSessionDir(id: string): Promise<void> {
    const dir = this.path(keys.uploadDir(id));
    // On the thread pool: profiled, a synchronous rmdir waited for the journal commit of
    // concurrent fsyncs and blocked the event loop (12% of a small-blob push).
    await rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }));
  }

  async abort(id: string): Promise<void> {
    // Either layout: the file uploads/<id>, or the directory of an older session.
    await rm(this.path(keys.uploadFile(id)), { recursive: true, force: true });
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
