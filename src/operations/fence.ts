/**
 * The link fence: how blob linking cooperates with online GC so that no push can end up with
 * metadata pointing at deleted bytes. The README section "Garbage collection" explains it for
 * operators; the argument in short:
 *
 * GC removes a blob in three steps: (T1) one transaction re-checks that the blob is unreferenced,
 * not linked within the grace window and not pinned, deletes its `blobs`/`repository_blobs` rows
 * and writes a tombstone `deleting`; then it deletes the bytes; then (T2) it marks the tombstone
 * `deleted`.
 *
 * An upload commit may find the digest's bytes already stored and discard its own copy (the
 * driver's content-addressed commit), so before committing it pins the digest (`pinForUpload`):
 * one transaction that finds no `deleting` tombstone (else it waits for T2) and inserts a pin.
 * T1 and the pin transaction are serialised by the database: if the pin came first, T1 skips the
 * digest until the link transaction removes the pin; if T1 came first, the pin waits until the
 * bytes are gone, so the commit writes fresh ones. Either way the bytes the link points at exist.
 *
 * A mount links bytes it did not write, so its transaction requires the `blobs` row (T1 removes
 * it atomically with writing the tombstone). Manifest pushes re-check inside their own
 * transaction that every blob is still linked (guardPush in index.ts): T1 re-checks references in
 * its transaction, so either GC sees the manifest's references or the push sees the blob gone
 * (MANIFEST_BLOB_UNKNOWN) and the client uploads it again.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { ociError } from '../errors/catalogue.js';
import type { Db } from '../meta/db.js';
import { clientOf } from '../meta/events.js';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** What the link transaction checks: an upload's pin, or a mount. Undefined: legacy callers. */
export type LinkFence = { kind: 'upload'; pin: string } | { kind: 'mount' };

export const MOUNT_FENCE: LinkFence = { kind: 'mount' };

/** A pin older than this no longer holds GC back (an upload that crashed between pin and link). */
export const PIN_TTL_MS = 3_600_000;

/** A mount raced with GC deleting the blob: the caller falls back to an upload session. */
export class BlobCollectedError extends Error {}

const WAIT_FOR_DELETING_MS = 10_000;

/**
 * The fence's statements, prepared once per connection: they run on every blob upload and link
 * (drizzle would build and prepare each again per call). `q` in the functions below is the
 * caller's transaction on that same connection.
 */
interface FenceStatements {
  tombstone: Statement<[string], string>;
  insertPin: Statement<[string, string, number]>;
  deletePin: Statement<[string, string]>;
  deletePinToken: Statement<[string]>;
  deleteTombstone: Statement<[string]>;
  blobExists: Statement<[string], number>;
}
const prepared = new WeakMap<Database.Database, FenceStatements>();
function statements(q: unknown): FenceStatements {
  const client = clientOf(q as Tx);
  let s = prepared.get(client);
  if (!s) {
    s = {
      tombstone: client.prepare<[string], string>('SELECT state FROM gc_tombstones WHERE digest = ?').pluck(),
      insertPin: client.prepare('INSERT INTO gc_pins (token, digest, created_at) VALUES (?, ?, ?)'),
      deletePin: client.prepare('DELETE FROM gc_pins WHERE token = ? AND digest = ?'),
      deletePinToken: client.prepare('DELETE FROM gc_pins WHERE token = ?'),
      deleteTombstone: client.prepare('DELETE FROM gc_tombstones WHERE digest = ?'),
      blobExists: client.prepare<[string], number>('SELECT 1 FROM blobs WHERE digest = ?').pluck(),
    };
    prepared.set(client, s);
  }
  return s;
}

function tombstoneState(q: Pick<Db, 'select'>, digest: string): 'deleting' | 'deleted' | undefined {
  return statements(q).tombstone.get(digest) as 'deleting' | 'deleted' | undefined;
}

/**
 * Pins `digest` inside the caller's write transaction (an upload that takes its session lease
 * and pins in one transaction); undefined while GC is deleting it (then `pinForUpload` waits).
 */
export function pinInTransaction(tx: Tx, digest: string): (LinkFence & { kind: 'upload' }) | undefined {
  if (tombstoneState(tx, digest) === 'deleting') return undefined;
  const token = randomUUID();
  statements(tx).insertPin.run(token, digest, Date.now());
  return { kind: 'upload', pin: token };
}

/** Drops a pin whose upload ended without linking (best effort: an expired pin holds nothing back). */
export function unpin(tx: Tx | Db, fence: LinkFence): void {
  if (fence.kind === 'upload') statements(tx).deletePinToken.run(fence.pin);
}

/** Before an upload commits bytes under `digest`: waits out a deletion in progress, then pins the digest. */
export async function pinForUpload(db: Db, digest: string): Promise<LinkFence> {
  const deadline = Date.now() + WAIT_FOR_DELETING_MS;
  for (;;) {
    const pin = db.transaction((tx) => pinInTransaction(tx, digest));
    if (pin) return pin;
    if (Date.now() > deadline) throw collecting(digest);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Inside the linking transaction, before any row is written. */
export function checkLinkFence(tx: Tx, digest: string, fence: LinkFence | undefined): void {
  if (fence?.kind === 'mount') {
    if (statements(tx).blobExists.get(digest) === undefined) throw new BlobCollectedError(digest);
    return;
  }
  const state = tombstoneState(tx, digest);
  if (fence?.kind === 'upload') {
    const pinned = statements(tx).deletePin.run(fence.pin, digest).changes > 0;
    // Only an expired pin (commit slower than PIN_TTL_MS) can meet a `deleting` tombstone.
    if (!pinned && state === 'deleting') throw collecting(digest);
  } else if (state !== undefined) {
    throw collecting(digest); // no pin: cannot tell whether the stored bytes predate the deletion
  }
  if (state !== undefined) statements(tx).deleteTombstone.run(digest);
}

function collecting(digest: string) {
  return ociError('UNAVAILABLE', 'garbage collection is deleting this blob; upload it again', { detail: { digest }, headers: { 'Retry-After': '1' } });
}
