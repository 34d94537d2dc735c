/**
 * Fencing of filesystem upload sessions against a request that lost its lease.
 *
 * A session is leased to one request at a time (src/oci/uploads.ts); another takes it over only
 * once the lease ran out, so the old holder died — or stalled (a stopped process, a paused VM)
 * and may wake up still holding an open fd, writing the rest of its body at offsets the new
 * holder has since filled, or committing the session file under its own digest. The new holder
 * therefore moves the session's acknowledged bytes to a new inode (a copy, renamed over the
 * session's path): the stale fd writes into an unlinked file, and every append and commit checks
 * that the file it opened is the inode its state names (UploadState.driver[INODE]), refusing
 * otherwise. The check and the commit's rename are two steps: a holder would have to stall for a
 * whole lease exactly between them.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { copyFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UploadTakenOverError } from './errors.js';
import { datasyncFd } from './file-writer.js';

/** UploadState.driver key: the inode number (decimal) of the session file the state was written for. */
export const INODE = 'inode';

export function inodeOf(fd: number): string {
  return fstatSync(fd, { bigint: true }).ino.toString();
}

/** Refuses `fd` when it is not the session file `driverState` names (a state from before fencing names none). */
export function assertSessionInode(fd: number, id: string, driverState: Record<string, unknown>): void {
  const want = driverState[INODE];
  if (typeof want === 'string' && inodeOf(fd) !== want) throw new UploadTakenOverError(`upload ${id}: the session was taken over by another request`);
}

/**
 * Copies the first `size` bytes of `file` to a new inode at `tmp` (in the same directory) and
 * renames it over `file` (durably when `sync`); returns the new inode. The copy is in the kernel
 * (a reflink where the filesystem has them); only a takeover pays it.
 */
export async function moveToNewInode(file: string, tmp: string, size: number, sync: boolean, syncDirectory: (dir: string) => Promise<void>): Promise<string> {
  await copyFile(file, tmp, constants.COPYFILE_FICLONE);
  const fd = openSync(tmp, 'r+');
  let ino: string;
  try {
    // Bytes past the acknowledged size are a failed (or stale) append's; never extend a short copy.
    if (fstatSync(fd).size > size) ftruncateSync(fd, size);
    if (sync) await datasyncFd(fd);
    ino = inodeOf(fd);
  } finally {
    closeSync(fd);
  }
  await rename(tmp, file);
  if (sync) await syncDirectory(dirname(file));
  return ino;
}
