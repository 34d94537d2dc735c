/** The WAL sync of the group commit (write-batcher.ts) and its failure, as the API reports it. */
import { open } from 'node:fs/promises';
import { ociError, type AppError } from '../errors/catalogue.js';

/** fdatasync of a file by path; a missing WAL was checkpointed (and synced) and removed by SQLite. */
export async function syncFile(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Raised (503, retryable) once a WAL sync failed: nothing more is acknowledged until a restart. */
export function notDurableError(cause: unknown): AppError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return ociError('UNAVAILABLE', `the metadata database could not be synced to disk (${why}); writes are refused until the registry is restarted: retry then`, {
    headers: { 'Retry-After': '30' },
  });
}

