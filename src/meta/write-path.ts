/**
 * The hot metadata writes (manifest + tags, blob links) as raw better-sqlite3 statements prepared
 * once per store: drizzle builds and prepares its SQL again on every call, which cost more than
 * the writes themselves. Each function runs inside the transaction it is given (one of its own,
 * or a WriteBatcher item's savepoint); the SQL is the same drizzle emitted, defaults included.
 */
import type { Statement } from 'better-sqlite3';
import { ociError } from '../errors/catalogue.js';
import { checkLinkFence, type LinkFence } from '../operations/fence.js';
import { asyncAll, isPostgres, keepWithinTransactions, repositoryIdQuery, type Db } from './db.js';
import { appendEvent } from './events.js';
import type { NewManifest, Tx, WriteHooks } from './registry-store.js';

type Sizes = Statement<[number, string], { digest: string; size: number }>;

export class WritePath {
  private readonly repoId: Statement<[string], number>;
  private readonly insertRepo: Statement<[string]>;
  private readonly insertBlob: Statement<[string, number]>;
  private readonly insertLink: Statement<[number, string]>;
  /** `IN (json_each(?))`: one statement for any number of digests, no chunking (SQLite's variable limit). */
  private readonly blobSizes: Sizes;
  private readonly childSizes: Sizes;
  private readonly blobSizesAsync: ReturnType<typeof asyncAll<[number, string], { digest: string; size: number }>>;
  private readonly childSizesAsync: ReturnType<typeof asyncAll<[number, string], { digest: string; size: number }>>;
  private readonly insertManifest: Statement<unknown[]>;
  /** All references of one kind in one statement (each is a round trip on PostgreSQL). */
  private readonly insertRefs: Statement<[number, string, string, string]>;
  /** PostgreSQL: the manifest and its references in one round trip (a data-modifying CTE); 1 when new. */
  private readonly insertManifestWithRefs: Statement<unknown[], number> | undefined;
  private readonly tagDigest: Statement<[number, string], string>;
  private readonly upsertTag: Statement<[number, string, string, number]>;
  /** PostgreSQL: tagDigest + upsertTag in one round trip; no row when the tag already named the digest. */
  private readonly moveTag: Statement<[number, string, number, string, string, number], [string | null]> | undefined;

  constructor(db: Db) {
    const c = db.$client;
    this.repoId = repositoryIdQuery(db);
    this.insertRepo = c.prepare('INSERT INTO repositories (name) VALUES (?)');
    this.insertBlob = c.prepare('INSERT INTO blobs (digest, size) VALUES (?, ?) ON CONFLICT DO NOTHING');
    this.insertLink = c.prepare('INSERT INTO repository_blobs (repository_id, digest) VALUES (?, ?) ON CONFLICT DO NOTHING');
    this.blobSizes = c.prepare(
      'SELECT b.digest AS digest, b.size AS size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = ? AND rb.digest IN (SELECT value FROM json_each(?))',
    );
    this.childSizes = c.prepare('SELECT digest, size FROM manifests WHERE repository_id = ? AND digest IN (SELECT value FROM json_each(?))');
    // Group-committed pushes of one image check the same layers again and again.
    keepWithinTransactions(db, this.blobSizes, ['repository_blobs', 'blobs']);
    this.blobSizesAsync = asyncAll(this.blobSizes);
    this.childSizesAsync = asyncAll(this.childSizes);
    this.insertManifest = c.prepare(
      'INSERT INTO manifests (repository_id, digest, media_type, payload, size, artifact_type, subject, annotations) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );
    // `WHERE true`: without it SQLite would parse ON CONFLICT as the SELECT's join constraint.
    this.insertRefs = c.prepare(
      'INSERT INTO manifest_references (repository_id, manifest_digest, target_digest, kind) SELECT ?, ?, value, ? FROM json_each(?) WHERE true ON CONFLICT DO NOTHING',
    );
    this.tagDigest = c.prepare<[number, string], string>('SELECT digest FROM tags WHERE repository_id = ? AND name = ?').pluck();
    this.upsertTag = c.prepare('INSERT INTO tags (repository_id, name, digest) VALUES (?, ?, ?) ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = ?');
    this.insertManifestWithRefs = isPostgres(db)
      ? c
          .prepare<unknown[], number>(
            'WITH m AS (INSERT INTO manifests (repository_id, digest, media_type, payload, size, artifact_type, subject, annotations) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1), ' +
              "r AS (INSERT INTO manifest_references (repository_id, manifest_digest, target_digest, kind) SELECT ?, ?, e ->> 0, e ->> 1 FROM json_array_elements(CAST(? AS json)) AS e WHERE EXISTS (SELECT 1 FROM m) ON CONFLICT DO NOTHING) " +
              'SELECT count(*) FROM m',
          )
          .pluck()
      : undefined;
    this.moveTag = isPostgres(db)
      ? c
          .prepare<[number, string, number, string, string, number], [string | null]>(
            'WITH prev AS (SELECT digest FROM tags WHERE repository_id = ? AND name = ?) INSERT INTO tags (repository_id, name, digest) VALUES (?, ?, ?) ' +
              'ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = ? WHERE tags.digest <> excluded.digest RETURNING (SELECT digest FROM prev)',
          )
          .raw()
      : undefined;
  }

  /** The same two lookups for the checks before a transaction: on PostgreSQL they do not hold the event loop. */
  async linkedBlobSizesAsync(repoId: number, digests: string[]): Promise<Map<string, number>> {
    if (digests.length === 0) return new Map();
    return new Map((await this.blobSizesAsync(repoId, JSON.stringify(digests))).map((r) => [r.digest, r.size]));
  }

  async manifestSizesAsync(repoId: number, digests: string[]): Promise<Map<string, number>> {
    if (digests.length === 0) return new Map();
    return new Map((await this.childSizesAsync(repoId, JSON.stringify(digests))).map((r) => [r.digest, r.size]));
  }

  /** Sizes of `digests` that are blobs linked to the repository. */
  linkedBlobSizes(repoId: number, digests: string[]): Map<string, number> {
    if (digests.length === 0) return new Map();
    return new Map(this.blobSizes.all(repoId, JSON.stringify(digests)).map((r) => [r.digest, r.size]));
  }

  /** Sizes of `digests` that are manifests stored in the repository. */
  manifestSizes(repoId: number, digests: string[]): Map<string, number> {
    if (digests.length === 0) return new Map();
    return new Map(this.childSizes.all(repoId, JSON.stringify(digests)).map((r) => [r.digest, r.size]));
  }

  private ensureRepository(tx: Tx, name: string, actor: string): number {
    const existing = this.repoId.get(name);
    if (existing !== undefined) return existing;
    const id = Number(this.insertRepo.run(name).lastInsertRowid);
    appendEvent(tx, { actor, action: 'oci.repository.create', repository: name });
    return id;
  }

  /** Records stored content and links it to the repository (push or mount). Idempotent. */
  linkBlob(tx: Tx, name: string, digest: string, size: number, actor: string, action: 'oci.blob.push' | 'oci.blob.mount', from?: string, fence?: LinkFence): void {
    checkLinkFence(tx, digest, fence); // online GC may be deleting this digest: see operations/fence.ts
    const repoId = this.ensureRepository(tx, name, actor);
    this.insertBlob.run(digest, size);
    if (this.insertLink.run(repoId, digest).changes > 0) appendEvent(tx, { actor, action, repository: name, digest, after: { size, ...(from ? { from } : {}) } });
  }

  /** Stores the manifest (idempotent by digest) and points each tag at it. */
  putManifest(tx: Tx, name: string, m: NewManifest, tagNames: string[], actor: string, hooks: WriteHooks): void {
    hooks.guard?.(tx);
    const repoId = this.ensureRepository(tx, name, actor);
    this.requireReferences(repoId, m.references);
    // Tags before the manifest: its search document is then written once with its tags (the
    // insert trigger reads them) instead of inserted and at once rewritten, index entries and
    // full-text tokens included, by each tag's trigger (~30% of a PUT by tag on SQLite). The
    // events keep their order: the push, then the tags.
    const moves = tagNames.map((tag) => ({ tag, prev: this.pointTag(repoId, tag, m.digest) }));
    const inserted = this.insertManifestAndRefs(repoId, m);
    if (inserted) {
      appendEvent(tx, {
        actor,
        action: 'oci.manifest.push',
        repository: name,
        digest: m.digest,
        // The bytes and what was indexed from them: a rebuild from the log needs no blob store
        // (base64 of at most 4 MiB; src/events/replay/oci.ts).
        after: {
          mediaType: m.mediaType,
          size: m.size,
          ...(m.subject ? { subject: m.subject } : {}),
          ...(m.artifactType ? { artifactType: m.artifactType } : {}),
          ...(m.annotations ? { annotations: m.annotations } : {}),
          references: m.references,
          payload: m.payload.toString('base64'),
        },
      });
    }
    for (const { tag, prev } of moves) {
      if (prev === m.digest) continue;
      appendEvent(tx, {
        actor,
        action: prev !== undefined ? 'oci.tag.move' : 'oci.tag.set',
        repository: name,
        tag,
        digest: m.digest,
        before: prev !== undefined ? { digest: prev } : undefined,
        after: { digest: m.digest },
      });
    }
    hooks.after?.(tx, inserted);
  }

  /** Inserts the manifest and, when it is new, its references; true when it was new. */
  private insertManifestAndRefs(repoId: number, m: NewManifest): boolean {
    const annotations = m.annotations ? JSON.stringify(m.annotations) : null;
    if (this.insertManifestWithRefs) {
      const refs = JSON.stringify(m.references.map((r) => [r.digest, r.kind]));
      return (this.insertManifestWithRefs.get(repoId, m.digest, m.mediaType, m.payload, m.size, m.artifactType, m.subject, annotations, repoId, m.digest, refs) ?? 0) > 0;
    }
    if (this.insertManifest.run(repoId, m.digest, m.mediaType, m.payload, m.size, m.artifactType, m.subject, annotations).changes === 0) return false;
    for (const kind of ['blob', 'manifest'] as const) {
      const digests = m.references.filter((r) => r.kind === kind).map((r) => r.digest);
      if (digests.length > 0) this.insertRefs.run(repoId, m.digest, kind, JSON.stringify(digests));
    }
    return true;
  }

  /** Points the tag at `digest`; returns the digest it named before (that same digest: nothing changed). */
  private pointTag(repoId: number, tag: string, digest: string): string | undefined {
    if (this.moveTag) {
      const moved = this.moveTag.get(repoId, tag, repoId, tag, digest, Date.now());
      return moved ? (moved[0] ?? undefined) : digest;
    }
    const prev = this.tagDigest.get(repoId, tag);
    if (prev !== digest) this.upsertTag.run(repoId, tag, digest, Date.now());
    return prev;
  }

  /**
   * The caller checked the references before its (async) governance checks; a delete or a GC
   * sweep may have run since. Re-checked here, in the write transaction, so a manifest never
   * lands pointing at content that is gone (this is also GC's fence for manifest pushes).
   */
  private requireReferences(repoId: number, refs: NewManifest['references']): void {
    const blobDigests = refs.filter((r) => r.kind === 'blob').map((r) => r.digest);
    const childDigests = refs.filter((r) => r.kind === 'manifest').map((r) => r.digest);
    const blobsThere = this.linkedBlobSizes(repoId, blobDigests);
    const childrenThere = this.manifestSizes(repoId, childDigests);
    const gone = [...blobDigests.filter((d) => !blobsThere.has(d)), ...childDigests.filter((d) => !childrenThere.has(d))];
    if (gone.length > 0) throw ociError('MANIFEST_BLOB_UNKNOWN', 'a referenced blob or manifest is gone since it was checked (deleted or garbage-collected): push it again', { detail: { digest: gone[0] } });
  }
}
