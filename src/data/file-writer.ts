/**
 * Writes a stream of chunks into an open file at a position, in few large positional writes.
 *
 * Request bodies arrive in ~16-64 KiB chunks. Writing each one on its own (fs.WriteStream) costs
 * a thread-pool round trip, a futex wake and a syscall per chunk: profiled, that context
 * switching took more CPU than the SHA-256 of the same bytes. Here chunks are gathered (no copy)
 * into WRITE_BATCH-sized pwritev calls, a few in flight, so receiving and hashing the next bytes
 * overlaps the write of the previous ones. The chunks are the request's own buffers, which Node
 * does not reuse, so holding them until their write completes is safe. Plain fds and callbacks,
 * not FileHandle: the fs driver opens and closes synchronously (see fs-driver.ts).
 */
import { fdatasync, fsync, writev } from 'node:fs';
import { DirectWriter, type DirectTarget } from './direct-writer.js';

/** fdatasync on the thread pool (it waits for the disk). */
export const datasyncFd = (fd: number): Promise<void> => new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
/** fsync on the thread pool (directories: fdatasync does not cover their entries everywhere). */
export const fsyncFd = (fd: number): Promise<void> => new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
const writevFd = (fd: number, bufs: Uint8Array[], at: number): Promise<number> =>
  new Promise((resolve, reject) => writev(fd, bufs as NodeJS.ArrayBufferView[], at, (err, n) => (err ? reject(err) : resolve(n))));

const WRITE_BATCH = 1 << 20;
/** Buffers per writev; libuv splits larger lists itself, this only bounds one call's work. */
const MAX_IOV = 1024;
const MAX_IN_FLIGHT = 2;
/** With `backgroundSync`, fdatasync this often while bytes still arrive, so the final one is short. */
const BACKGROUND_SYNC_BYTES = 64 * 1024 * 1024;

/**
 * Writes every chunk of `source` at `start` onwards; resolves with the byte count once all writes
 * completed. With `direct`, an append that reaches WRITE_BATCH bytes continues (from its first
 * byte) through O_DIRECT writes that bypass the page cache (direct-writer.ts says why); shorter
 * ones, like small blobs, stay buffered.
 */
export async function writeAt(fd: number, source: AsyncIterable<Uint8Array>, start: number, backgroundSync: boolean, direct?: DirectTarget): Promise<number> {
  let pos = start;
  let directWriter: DirectWriter | undefined;
  let directTried = direct === undefined;
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  let unsynced = 0;
  let syncing: Promise<void> | undefined;

  const flush = (): void => {
    const bufs = batch;
    const bytes = batchBytes;
    const at = pos;
    batch = [];
    batchBytes = 0;
    pos += bytes;
    const p = writeFully(fd, bufs, at, bytes).then(
      () => {
        inFlight.delete(p);
      },
      (err: unknown) => {
        inFlight.delete(p);
        failure ??= err;
      },
    );
    inFlight.add(p);
    unsynced += bytes;
    if (backgroundSync && unsynced >= BACKGROUND_SYNC_BYTES && !syncing) {
      unsynced = 0;
      // fdatasync flushes whatever of the file is dirty; writes still in flight are simply left for the next one.
      syncing = datasyncFd(fd).then(
        () => {
          syncing = undefined;
        },
        (err: unknown) => {
          syncing = undefined;
          failure ??= err;
        },
      );
    }
  };

  try {
    for await (const chunk of source) {
      if (failure) throw failure;
      if (chunk.length === 0) continue;
      if (directWriter) {
        await directWriter.push(chunk);
        continue;
      }
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH || batch.length >= MAX_IOV) {
        if (!directTried) {
          // Decided at the first flush, before any buffered write: the whole append goes one way
          // (a first flush of many tiny chunks short of WRITE_BATCH bytes: buffered).
          directTried = true;
          directWriter = batchBytes >= WRITE_BATCH ? await DirectWriter.start(fd, direct!, pos) : undefined;
          if (directWriter) {
            for (const b of batch) await directWriter.push(b);
            batch = [];
            batchBytes = 0;
            continue;
          }
        }
        flush();
        while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      }
    }
    if (directWriter) {
      await directWriter.finish();
      pos = directWriter.end;
    } else if (batchBytes > 0) flush();
  } finally {
    // Never return (or let the caller truncate) while a write could still land.
    await Promise.all(inFlight);
    await syncing;
    await directWriter?.close();
  }
  if (failure) throw failure;
  return pos - start;
}

async function writeFully(fd: number, bufs: Uint8Array[], at: number, bytes: number): Promise<void> {
  let bytesWritten = await writevFd(fd, bufs, at);
  // Regular files take whole writes unless the disk is full; then the next call reports why.
  while (bytesWritten < bytes) {
    let skip = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of bufs) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    const more = await writevFd(fd, rest, at + bytesWritten);
    if (more === 0) throw new Error(`write of ${bytes} bytes at ${at} stalled after ${bytesWritten}`);
    bytesWritten += more;
  }
}
