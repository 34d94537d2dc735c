/**
 * Metadata queries for the OCI surface: repositories, blob links, manifests, tags, referrers
 * and upload sessions. Each mutating method is one transaction that also appends its event.
 */
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Statement } from 'better-sqlite3';
import { ociError } from '../errors/catalogue.js';
import { asyncGet, repositoryIdQuery, type Db } from './db.js';
import { appendEvent } from './events.js';
import { pinInTransaction, type LinkFence } from '../operations/fence.js';
import { uploadStatements, type UploadRowState, type UploadStatements } from './upload-statements.js';
import { writeBatcher, type WriteBatcher } from './write-batcher.js';
import { WritePath } from './write-path.js';
import { blobs, manifestReferences, manifests, repositories, repositoryBlobs, tags, uploads } from './schema.js';

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  payload: Buffer;
  size: number;
  artifactType: string | null;
  subject: string | null;
}

/** Governance callbacks run inside a write's transaction (see governance/hooks.ts). */
export interface WriteHooks {
  /** Before anything is written: throw to refuse (the transaction rolls back). */
  guard?(tx: Tx): void;
  /** After the write, same transaction; `changed` is false when it was a no-op. */
  after?(tx: Tx, changed: boolean): void;
}

export interface NewManifest extends ManifestRecord {
  artifactType: string | null;
  subject: string | null;
  annotations: Record<string, string> | null;
  references: { digest: string; kind: 'blob' | 'manifest' }[];
}

export interface ReferrerRow {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  annotations: string | null;
}

export interface UploadRow {
  id: string;
  repository: string;
  state: string;
  updatedAt: number;
}

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** SQLite binds at most 32,766 variables per statement: large manifests are queried in parts. */
const SQL_CHUNK = 500;
function chunked<T, R>(items: T[], fn: (part: T[]) => R[]): R[] {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += SQL_CHUNK) out.push(...fn(items.slice(i, i + SQL_CHUNK)));
  return out;
}

type MaybePromise<T> = T | Promise<T>;

/** An upload session's lease taken (with its row), or why not. */
export type UploadLease = { row: UploadRowState; fence?: LinkFence | undefined; takenOver: boolean } | 'busy' | 'missing';

export class RegistryStore {
  // Hot read paths as raw prepared statements: they run on every pull and push (drizzle's
  // prepared queries still map every row through its column tree).
  private readonly qRepoId: Statement<[string], number>;
  private readonly qRepoBlob: Statement<[string, string], number>;
  private readonly qManifestByDigest: Statement<[string, string], ManifestRecord>;
  private readonly qManifestByTag: Statement<[string, string], ManifestRecord>;
  private readonly qTagPage: Statement<[number, string, number], string>;

  private readonly writes: WritePath;
  private readonly batcher: WriteBatcher;
  /** Lookups outside transactions on the hot paths (db.ts asyncGet): on PostgreSQL they do not hold the event loop. */
  readonly pull: {
    manifestByDigest: (name: string, digest: string) => MaybePromise<ManifestRecord | undefined>;
    manifestByTag: (name: string, tag: string) => MaybePromise<ManifestRecord | undefined>;
    repositoryBlobSize: (name: string, digest: string) => MaybePromise<number | undefined>;
    repositoryId: (name: string) => MaybePromise<number | undefined>;
    linkedBlobSizes: (repoId: number, digests: string[]) => Promise<Map<string, number>>;
    manifestSizes: (repoId: number, digests: string[]) => Promise<Map<string, number>>;
  };

  constructor(readonly db: Db) {
    const c = db.$client;
    this.writes = new WritePath(db);
    this.batcher = writeBatcher(db);
    this.qRepoId = repositoryIdQuery(db);
    this.qRepoBlob = c
      .prepare<[string, string], number>('SELECT b.size FROM repositories r JOIN repository_blobs rb ON rb.repository_id = r.id JOIN blobs b ON b.digest = rb.digest WHERE r.name = ? AND rb.digest = ?')
      .pluck();
    const cols = 'm.digest AS digest, m.media_type AS mediaType, m.payload AS payload, m.size AS size, m.artifact_type AS artifactType, m.subject AS subject';
    this.qManifestByDigest = c.prepare(`SELECT ${cols} FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE r.name = ? AND m.digest = ?`);
    this.qManifestByTag = c.prepare(`SELECT ${cols} FROM repositories r JOIN tags t ON t.repository_id = r.id JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest WHERE r.name = ? AND t.name = ?`);
    // '' sorts before every tag, so "after ''" is the first page.
    this.qTagPage = c.prepare<[number, string, number], string>('SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?').pluck();
    this.pull = {
      manifestByDigest: asyncGet(this.qManifestByDigest),
      manifestByTag: asyncGet(this.qManifestByTag),
      repositoryBlobSize: asyncGet(this.qRepoBlob),
      repositoryId: asyncGet(this.qRepoId),
      linkedBlobSizes: (repoId, digests) => this.writes.linkedBlobSizesAsync(repoId, digests),
      manifestSizes: (repoId, digests) => this.writes.manifestSizesAsync(repoId, digests),
    };
  }

  repositoryId(name: string): number | undefined {
    return this.qRepoId.get(name);
  }

  // ---- blobs -------------------------------------------------------------------------------

  /** Size of a blob linked to the repository, or undefined. */
  repositoryBlobSize(name: string, digest: string): number | undefined {
    return this.qRepoBlob.get(name, digest);
  }

  blobSize(digest: string): number | undefined {
    return this.db.select({ size: blobs.size }).from(blobs).where(eq(blobs.digest, digest)).get()?.size;
  }

  /** Records stored content and links it to the repository (push or mount), in a transaction of its own (or the caller's). Idempotent. */
  linkBlob(name: string, digest: string, size: number, actor: string, action: 'oci.blob.push' | 'oci.blob.mount', from?: string, fence?: LinkFence): void {
    this.db.transaction((tx) => this.writes.linkBlob(tx, name, digest, size, actor, action, from, fence));
  }

  /**
   * The same link, group-committed with the other writes arriving in this event-loop turn
   * (meta/write-batcher.ts). Resolves once the link is committed: answer the client only then.
   * Rejects with the link's own error (fence, …) without affecting the others in its batch.
   */
  commitBlobLink(
    name: string,
    digest: string,
    size: number,
    actor: string,
    action: 'oci.blob.push' | 'oci.blob.mount',
    from?: string,
    fence?: LinkFence,
    /** The finished upload session: its row goes in the same transaction (one write fewer per push). */
    uploadId?: string,
  ): Promise<void> {
    return this.batcher.run((tx) => {
      this.writes.linkBlob(tx, name, digest, size, actor, action, from, fence);
      if (uploadId !== undefined) this.up.remove.run(uploadId);
    });
  }

  /** Repositories the blob is linked to (candidates for a mount without `from`). */
  repositoriesWithBlob(digest: string, limit = 100): string[] {
    return this.db
      .select({ name: repositories.name })
      .from(repositoryBlobs)
      .innerJoin(repositories, eq(repositories.id, repositoryBlobs.repositoryId))
      .where(eq(repositoryBlobs.digest, digest))
      .limit(limit)
      .all()
      .map((r) => r.name);
  }

  /** Manifests in the repository that need the blob or child manifest (blocks its deletion). */
  blobReferrers(repoId: number, digest: string, tx: Tx | Db = this.db): string[] {
    return tx
      .select({ m: manifestReferences.manifestDigest })
      .from(manifestReferences)
      .where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.targetDigest, digest)))
      .limit(10)
      .all()
      .map((r) => r.m);
  }

  /**
   * Unlinks a blob. Refused (409 DENIED) while a manifest of the repository references it: the
   * check runs inside the delete's write transaction, so a manifest pushed concurrently cannot
   * slip between check and delete (nor with a driver whose transactions are asynchronous).
   */
  unlinkBlob(name: string, repoId: number, digest: string, actor: string, hooks: WriteHooks = {}): boolean {
    return this.db.transaction((tx) => {
      // Holds, retention and registered bundles first: their 403 names what protects the blob,
      // which says more than "still referenced".
      hooks.guard?.(tx);
      const users = this.blobReferrers(repoId, digest, tx);
      if (users.length > 0) {
        throw ociError('DENIED', 'blob is referenced by manifests in this repository; delete them first', { status: 409, detail: { manifests: users } });
      }
      const res = tx.delete(repositoryBlobs).where(and(eq(repositoryBlobs.repositoryId, repoId), eq(repositoryBlobs.digest, digest))).run();
      if (res.changes > 0) appendEvent(tx, { actor, action: 'oci.blob.delete', repository: name, digest });
      return res.changes > 0;
    });
  }

  // ---- manifests and tags -----------------------------------------------------------------

  manifestByDigest(name: string, digest: string): ManifestRecord | undefined {
    return this.qManifestByDigest.get(name, digest);
  }

  manifestByTag(name: string, tag: string): ManifestRecord | undefined {
    return this.qManifestByTag.get(name, tag);
  }

  /** Sizes of `digests` that are manifests stored in the repository (inside a transaction: the same connection). */
  manifestSizes(repoId: number, digests: string[]): Map<string, number> {
    return this.writes.manifestSizes(repoId, digests);
  }

  /** Sizes of `digests` that are blobs linked to the repository. */
  linkedBlobSizes(repoId: number, digests: string[]): Map<string, number> {
    return this.writes.linkedBlobSizes(repoId, digests);
  }

  /** Stores the manifest (idempotent by digest) and points each tag at it, in one transaction (or inside the caller's). */
  putManifest(name: string, m: NewManifest, tagNames: string[], actor: string, hooks: WriteHooks = {}): void {
    this.db.transaction((tx) => this.writes.putManifest(tx, name, m, tagNames, actor, hooks));
  }

  /**
   * The same write, group-committed: concurrent pushes share one transaction (and one fsync);
   * each runs in its own savepoint, so a refused push (guard, missing reference) fails alone.
   * Resolves after COMMIT, so a 201 sent then is as durable as with a transaction of its own.
   */
  commitManifest(name: string, m: NewManifest, tagNames: string[], actor: string, hooks: WriteHooks = {}): Promise<void> {
    // The payload is stored twice (row + base64 in the event): its size bounds the batch (maxBytes).
    return this.batcher.run((tx) => this.writes.putManifest(tx, name, m, tagNames, actor, hooks), m.payload.length);
  }

  /**
   * Deletes a manifest and every tag pointing at it. Returns false when it was not there.
   * Refused (409 DENIED, as for blobs) while an index of the repository lists it: deleting a
   * child would leave a multi-arch image pointing at nothing. Checked inside the transaction.
   */
  deleteManifest(name: string, repoId: number, digest: string, actor: string, hooks: WriteHooks = {}): boolean {
    return this.db.transaction((tx) => this.deleteManifestIn(tx, name, repoId, digest, actor, hooks));
  }

  /** The same delete, group-committed (resolves once committed and durable, like commitManifest). */
  commitManifestDelete(name: string, repoId: number, digest: string, actor: string, hooks: WriteHooks = {}): Promise<boolean> {
    return this.batcher.run((tx) => this.deleteManifestIn(tx, name, repoId, digest, actor, hooks));
  }

  private deleteManifestIn(tx: Tx, name: string, repoId: number, digest: string, actor: string, hooks: WriteHooks): boolean {
    const parents = this.blobReferrers(repoId, digest, tx).filter((m) => m !== digest);
    if (parents.length > 0) {
      throw ociError('DENIED', 'manifest is referenced by an index in this repository; delete the index first', { status: 409, detail: { manifests: parents } });
    }
    hooks.guard?.(tx);
    const removedTags = tx
      .delete(tags)
      .where(and(eq(tags.repositoryId, repoId), eq(tags.digest, digest)))
      .returning({ name: tags.name })
      .all()
      .map((t) => t.name);
    const res = tx.delete(manifests).where(and(eq(manifests.repositoryId, repoId), eq(manifests.digest, digest))).run();
    if (res.changes === 0) return false;
    tx.delete(manifestReferences).where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.manifestDigest, digest))).run();
    appendEvent(tx, { actor, action: 'oci.manifest.delete', repository: name, digest, before: { tags: removedTags } });
    return true;
  }

  /** The digest a tag points at, or undefined. */
  tagDigest(repoId: number, tag: string): string | undefined {
    return this.db.select({ digest: tags.digest }).from(tags).where(and(eq(tags.repositoryId, repoId), eq(tags.name, tag))).get()?.digest;
  }

  deleteTag(name: string, repoId: number, tag: string, actor: string, hooks: WriteHooks = {}): boolean {
    return this.db.transaction((tx) => this.deleteTagIn(tx, name, repoId, tag, actor, hooks));
  }

  /** The same delete, group-committed. */
  commitTagDelete(name: string, repoId: number, tag: string, actor: string, hooks: WriteHooks = {}): Promise<boolean> {
    return this.batcher.run((tx) => this.deleteTagIn(tx, name, repoId, tag, actor, hooks));
  }

  private deleteTagIn(tx: Tx, name: string, repoId: number, tag: string, actor: string, hooks: WriteHooks): boolean {
    hooks.guard?.(tx);
    const removed = tx.delete(tags).where(and(eq(tags.repositoryId, repoId), eq(tags.name, tag))).returning({ digest: tags.digest }).get();
    if (!removed) return false;
    appendEvent(tx, { actor, action: 'oci.tag.delete', repository: name, tag, before: { digest: removed.digest } });
    return true;
  }

  /** Tags in byte order after `last` (exclusive), at most `limit`. */
  listTags(repoId: number, limit: number, last?: string): string[] {
    // A plucked raw statement: drizzle's row mapping cost 1 ms per 1,000 tags, 4x the query.
    return this.qTagPage.all(repoId, last ?? '', limit);
  }

  listRepositories(limit: number, last?: string): string[] {
    const q = this.db.select({ name: repositories.name }).from(repositories);
    const rows = last === undefined ? q.orderBy(asc(repositories.name)).limit(limit).all() : q.where(gt(repositories.name, last)).orderBy(asc(repositories.name)).limit(limit).all();
    return rows.map((r) => r.name);
  }

  /** Referrers of `subject` in digest order, after `last`, optionally of one artifact type. */
  referrers(repoId: number, subject: string, limit: number, last?: string, artifactType?: string): ReferrerRow[] {
    const conditions = [eq(manifests.repositoryId, repoId), eq(manifests.subject, subject)];
    if (last !== undefined) conditions.push(gt(manifests.digest, last));
    if (artifactType !== undefined) conditions.push(eq(manifests.artifactType, artifactType));
    return this.db
      .select({ digest: manifests.digest, mediaType: manifests.mediaType, size: manifests.size, artifactType: manifests.artifactType, annotations: manifests.annotations })
      .from(manifests)
      .where(and(...conditions))
      .orderBy(asc(manifests.digest))
      .limit(limit)
      .all();
  }

  // ---- upload sessions ----------------------------------------------------------------------

  /** The session statements, prepared on first use (upload-statements.ts). */
  private get up(): UploadStatements {
    return uploadStatements(this.db.$client);
  }

  /**
   * Records a new session unless `owner` already has `maxPerOwner` open (0: no cap). The count
   * and the insert share one write transaction, so parallel POSTs cannot overshoot the cap.
   */
  createUpload(id: string, repository: string, state: string, owner: string, maxPerOwner = 0): boolean {
    if (maxPerOwner <= 0) return this.insertUpload(id, repository, state, owner, 0);
    return this.db.transaction(() => this.insertUpload(id, repository, state, owner, maxPerOwner));
  }

  /**
   * createUpload in the next group transaction (answered at its COMMIT, not after the WAL sync:
   * a session row never waited for one). Concurrent POSTs then share one COMMIT.
   */
  createUploadGrouped(id: string, repository: string, state: string, owner: string, maxPerOwner = 0): Promise<boolean> {
    return this.batcher.run(() => this.insertUpload(id, repository, state, owner, maxPerOwner), 0, false);
  }

  /** Inside a transaction when `maxPerOwner` > 0 (the count and the insert must be atomic). */
  private insertUpload(id: string, repository: string, state: string, owner: string, maxPerOwner: number): boolean {
    if (maxPerOwner > 0 && this.openUploads(owner) >= maxPerOwner) return false;
    const now = Date.now();
    return this.up.insert.run(id, repository, state, owner, now, now).changes > 0;
  }

  /** Sessions `owner` has open (inside a transaction: the same connection). */
  openUploads(owner: string): number {
    return Number(this.up.countByOwner.get(owner) ?? 0);
  }

  getUpload(id: string): UploadRow | undefined {
    return this.up.get.get(id);
  }

  /**
   * Saves a session's new state. With `holder`, only while that lease is still held (a holder
   * whose lease expired and was taken over must not overwrite the newer state): returns false then.
   */
  updateUpload(id: string, state: string, holder?: string): boolean {
    const res = holder === undefined ? this.up.save.run(state, Date.now(), id) : this.up.saveHeld.run(state, Date.now(), id, holder);
    return res.changes > 0;
  }

  deleteUpload(id: string): void {
    this.up.remove.run(id);
  }

  /**
   * Takes the session's cross-process lock for `ttlMs` unless another holder's lease is live.
   * 'missing' when there is no such session.
   */
  acquireUploadLease(id: string, holder: string, ttlMs: number): 'acquired' | 'busy' | 'missing' {
    const got = this.leaseUpload(id, holder, ttlMs);
    return typeof got === 'string' ? got : 'acquired';
  }

  /**
   * acquireUploadLease returning the session's row, and with `pin`, also pinning that digest
   * against GC (operations/fence.ts) in the same transaction: a PUT that knows its digest
   * needs no transaction of its own for the pin. `fence` is undefined when GC is deleting the
   * digest (the caller pins later, waiting that out). `takenOver`: the lease was another
   * holder's and had run out — that request died or stalled and may still write (the caller
   * fences the session's storage: BlobDriver.fenceUpload).
   */
  leaseUpload(id: string, holder: string, ttlMs: number, pin?: string): UploadLease {
    return pin === undefined ? this.takeUploadLease(undefined, id, holder, ttlMs) : this.db.transaction((tx) => this.takeUploadLease(tx, id, holder, ttlMs, pin));
  }

  /** leaseUpload in the next group transaction, answered at its COMMIT (as createUploadGrouped). */
  leaseUploadGrouped(id: string, holder: string, ttlMs: number, pin?: string): Promise<UploadLease> {
    return this.batcher.run((tx) => this.takeUploadLease(tx, id, holder, ttlMs, pin), 0, false);
  }

  /** `tx` when inside a transaction (needed for `pin`, which must commit with the lease). */
  private takeUploadLease(tx: Tx | undefined, id: string, holder: string, ttlMs: number, pin?: string): UploadLease {
    const now = Date.now();
    // Read just before the lease: a holder releasing in between makes a takeover reported that
    // was a release (one needless fence); one is missed only if a whole lease began and ran out
    // between these two statements.
    const before = this.up.holderOf.get(id);
    const row = this.up.lease.get(holder, now + ttlMs, id, now, holder);
    if (!row) return this.up.exists.get(id) !== undefined ? 'busy' : 'missing';
    const takenOver = before !== undefined && before !== null && before !== holder;
    if (!tx || pin === undefined) return { row, takenOver };
    return { row, takenOver, fence: pinInTransaction(tx, pin) };
  }

  /** Extends a lease still held by `holder`; false when it was lost. */
  renewUploadLease(id: string, holder: string, ttlMs: number): boolean {
    return this.up.renew.run(Date.now() + ttlMs, id, holder).changes > 0;
  }

  releaseUploadLease(id: string, holder: string): void {
    this.up.release.run(id, holder);
  }

  /** Which of `ids` are sessions with a row (the rest, found in storage, are orphans). */
  knownUploads(ids: string[]): Set<string> {
    const rows = chunked(ids, (part) => this.db.select({ id: uploads.id }).from(uploads).where(inArray(uploads.id, part)).all());
    return new Set(rows.map((r) => r.id));
  }

  staleUploads(olderThan: number): UploadRow[] {
    return this.db
      .select({ id: uploads.id, repository: uploads.repository, state: uploads.state, updatedAt: uploads.updatedAt })
      .from(uploads)
      // A session whose lease is live is in use (a long PATCH), whatever its age.
      .where(sql`${uploads.updatedAt} < ${olderThan} AND (${uploads.leaseUntil} IS NULL OR ${uploads.leaseUntil} < ${Date.now()})`)
      .all();
  }
}
