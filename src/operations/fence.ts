/**
 * The link fence: how blob linking cooperates with online GC so that no push can end up with
 * metadata pointing at deleted bytes.
 *
 * GC removes a blob in three steps: (T1) one transaction re-checks the blob is unreferenced,
 * deletes its `blobs`/`repository_blobs` rows and writes a tombstone `deleting` with a fresh
 * generation (gc_state.generation + 1); then it deletes the bytes; then (T2) it marks the
 * tombstone `deleted`.
 *
 * An upload commit may find the digest's bytes already stored and discard its own copy (the
 * driver's content-addressed commit), so it must know that those bytes were not about to go.
 * Before committing it reads a snapshot (`readUploadFence`): the current generation, after
 * waiting out a `deleting` tombstone of its digest. The link transaction then refuses if the
 * digest got a tombstone with a newer generation (GC ran T1 after the snapshot: the bytes the
 * upload relied on may be gone) or is `deleting`. Otherwise the bytes are there: either GC never
 * touched the digest since the snapshot, or its deletion finished before the snapshot and the
 * commit wrote fresh bytes. Linking then drops the stale `deleted` tombstone.
 *
 * A mount links bytes it did not write, so its transaction requires the `blobs` row (T1 removes
 * it atomically with writing the tombstone). Manifest pushes re-check, inside their own
 * transaction, that every blob is still linked (hooks in index.ts): T1 and a manifest push are
 * serialised by the database, and T1 re-checks references in its transaction, so either GC sees
 * the manifest's references or the push sees the blob unlinked (MANIFEST_BLOB_UNKNOWN; the
 * client uploads again).
 */
import { eq } from 'drizzle-orm';
import { ociError } from '../errors/catalogue.js';
import type { Db } from '../meta/db.js';
import { blobs } from '../meta/schema.js';
import { gcState, gcTombstones } from './schema.js';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
type Reader = Pick<Db, 'select'>;

/** What the link transaction checks: an upload's snapshot, or a mount. Undefined: legacy callers (only `deleting` refused). */
export type LinkFence = { kind: 'upload'; generation: number } | { kind: 'mount' };

export const MOUNT_FENCE: LinkFence = { kind: 'mount' };

/** A push raced with GC deleting the same digest: retryable, the client uploads again. */
export class BlobCollectedError extends Error {}

const WAIT_FOR_DELETING_MS = 5_000;

export function currentGeneration(q: Reader): number {
  return q.select({ g: gcState.generation }).from(gcState).where(eq(gcState.id, 1)).get()?.g ?? 0;
}

function tombstone(q: Reader, digest: string) {
  return q.select({ state: gcTombstones.state, generation: gcTombstones.generation }).from(gcTombstones).where(eq(gcTombstones.digest, digest)).get();
}

/** The snapshot an upload takes before committing its bytes. Waits (briefly) while GC is deleting the digest. */
export async function readUploadFence(db: Db, digest: string): Promise<LinkFence> {
  const deadline = Date.now() + WAIT_FOR_DELETING_MS;
  for (;;) {
    // Generation first: a tombstone written after this read has a larger generation.
    const generation = currentGeneration(db);
    if (tombstone(db, digest)?.state !== 'deleting') return { kind: 'upload', generation };
    if (Date.now() > deadline) throw collected(digest);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Inside the linking transaction, before any row is written. Throws a retryable 503 on a race. */
export function checkLinkFence(tx: Tx, digest: string, fence: LinkFence | undefined): void {
  const t = tombstone(tx, digest);
  if (fence?.kind === 'mount') {
    if (!tx.select({ d: blobs.digest }).from(blobs).where(eq(blobs.digest, digest)).get()) throw new BlobCollectedError(digest);
    return;
  }
  if (!t) return;
  if (t.state === 'deleting' || (fence !== undefined && t.generation > fence.generation)) throw collected(digest);
  if (fence === undefined) throw collected(digest); // no snapshot: cannot tell whether these bytes predate the deletion
  tx.delete(gcTombstones).where(eq(gcTombstones.digest, digest)).run();
}

function collected(digest: string) {
  return ociError('UNAVAILABLE', 'garbage collection removed this blob while the upload committed; upload it again', {
    detail: { digest },
    headers: { 'Retry-After': '1' },
  });
}
