/**
 * SQL for operations: namespace policies, usage, and the garbage collector's mark queries and
 * deleting transactions. Reads and writes the OCI tables (src/meta/schema.ts) directly, always
 * inside the transaction it is given when it decides something that a write depends on.
 */
import type { Statement } from 'better-sqlite3';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { keepWithinTransactions, repositoryIdQuery, type Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';
import { manifestReferences, manifests, repositories, repositoryBlobs, tags } from '../meta/schema.js';
import { EMPTY_POLICY, policySchema, type NamespacePolicy } from './policy.js';
import { PIN_TTL_MS } from './fence.js';
import { gcPins, gcState, gcTombstones, manifestPulls, namespacePolicies } from './schema.js';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
type Q = Tx | Db;

const CHUNK = 500;
export function chunks<T>(items: T[], n = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

/** Repositories of namespace `ns`: the name itself or `ns/…` ('0' is the character after '/'). */
const inNamespace = (ns: string) => sql`(r.name = ${ns} OR (r.name >= ${`${ns}/`} AND r.name < ${`${ns}0`}))`;

export interface BlobCandidate {
  digest: string;
  size: number;
}

export class OperationsStore {
  // Checks every push runs (guardPush), as statements prepared once: drizzle re-prepares per call.
  // Prepared on the one shared connection, so they read inside whatever transaction is open on it.
  private readonly qPolicy: Statement<[string], { policy: string; version: number }>;
  private readonly qRepoId: Statement<[string], number>;
  private readonly qTagDigest: Statement<[number, string], string>;
  /** The last policy document parsed, by its exact text: a changed row is parsed again. */
  private parsed = new Map<string, NamespacePolicy>();

  constructor(readonly db: Db) {
    const c = db.$client;
    this.qPolicy = c.prepare('SELECT policy, version FROM namespace_policies WHERE namespace = ?');
    keepWithinTransactions(db, this.qPolicy, ['namespace_policies']);
    this.qRepoId = repositoryIdQuery(db);
    this.qTagDigest = c.prepare<[number, string], string>('SELECT digest FROM tags WHERE repository_id = ? AND name = ?').pluck();
  }

  private parsePolicy(doc: string): NamespacePolicy {
    let p = this.parsed.get(doc);
    if (!p) {
      p = { ...EMPTY_POLICY, ...policySchema.parse(JSON.parse(doc)) };
      if (this.parsed.size > 1000) this.parsed.clear();
      this.parsed.set(doc, p);
    }
    return p;
  }

  // ---- policies ------------------------------------------------------------------------------

  /** `q` is the caller's transaction: the prepared statement runs on the same connection, inside it. */
  policy(ns: string, q: Q = this.db): { policy: NamespacePolicy; version: number } | undefined {
    void q;
    const row = this.qPolicy.get(ns);
    return row ? { policy: this.parsePolicy(row.policy), version: row.version } : undefined;
  }

  allPolicies(): { namespace: string; policy: NamespacePolicy }[] {
    return this.db
      .select()
      .from(namespacePolicies)
      .all()
      .map((r) => ({ namespace: r.namespace, policy: { ...EMPTY_POLICY, ...policySchema.parse(JSON.parse(r.policy)) } }));
  }

  setPolicy(ns: string, policy: NamespacePolicy, actor: string): number {
    return this.db.transaction((tx) => {
      const prev = this.policy(ns, tx);
      const version = (prev?.version ?? 0) + 1;
      const doc = JSON.stringify(policy);
      tx.insert(namespacePolicies)
        .values({ namespace: ns, policy: doc, version })
        .onConflictDoUpdate({ target: namespacePolicies.namespace, set: { policy: doc, version, updatedAt: Date.now() } })
        .run();
      appendEvent(tx, { actor, action: 'namespace.policies.set', repository: ns, before: prev ? { ...prev.policy, version: prev.version } : undefined, after: { ...policy, version } });
      return version;
    });
  }

  // ---- usage ---------------------------------------------------------------------------------

  /** Bytes of distinct blobs referenced by manifests of the namespace plus distinct manifest payloads. */
  usage(ns: string, q: Q = this.db): number {
    const row = q.get<{ bytes: number }>(sql`
      SELECT COALESCE(SUM(size), 0) AS bytes FROM (
        SELECT b.digest AS digest, b.size AS size FROM repositories r
          JOIN manifest_references mr ON mr.repository_id = r.id AND mr.kind = 'blob'
          JOIN blobs b ON b.digest = mr.target_digest
          WHERE ${inNamespace(ns)}
        UNION
        SELECT m.digest, m.size FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE ${inNamespace(ns)}
      ) AS counted`);
    return row?.bytes ?? 0;
  }

  /** Which of `digests` the namespace already counts (referenced by one of its manifests, or a manifest of it). */
  countedInNamespace(ns: string, digests: string[], q: Q): Set<string> {
    const out = new Set<string>();
    for (const part of chunks(digests)) {
      const list = sql.join(part.map((d) => sql`${d}`), sql`, `);
      const rows = q.all<{ d: string }>(sql`
        SELECT mr.target_digest AS d FROM repositories r JOIN manifest_references mr ON mr.repository_id = r.id
          WHERE ${inNamespace(ns)} AND mr.target_digest IN (${list})
        UNION
        SELECT m.digest FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE ${inNamespace(ns)} AND m.digest IN (${list})`);
      for (const r of rows) out.add(r.d);
    }
    return out;
  }

  // ---- checks used inside push/delete transactions --------------------------------------------

  repositoryId(name: string, q: Q = this.db): number | undefined {
    void q; // same connection: see policy()
    return this.qRepoId.get(name);
  }

  tagDigest(repoId: number, tag: string, q: Q): string | undefined {
    void q;
    return this.qTagDigest.get(repoId, tag);
  }

  tagsOf(repoId: number, digest: string | null, q: Q): string[] {
    const where = digest === null ? eq(tags.repositoryId, repoId) : and(eq(tags.repositoryId, repoId), eq(tags.digest, digest));
    return q.select({ n: tags.name }).from(tags).where(where).all().map((r) => r.n);
  }

  // ---- GC: blobs -----------------------------------------------------------------------------

  /**
   * Blobs no manifest of any repository references, created before `cutoff` and with no link
   * made at or after it (fresh uploads and mounts wait out the grace window). Optionally
   * restricted to `only` (the re-check inside the deleting transaction).
   */
  unreferencedBlobs(cutoff: number, q: Q = this.db, only?: string[]): BlobCandidate[] {
    const restrict = only ? sql`AND b.digest IN (${sql.join(only.map((d) => sql`${d}`), sql`, `)})` : sql``;
    const pinCutoff = Date.now() - PIN_TTL_MS;
    return q.all<BlobCandidate>(sql`
      SELECT b.digest AS digest, b.size AS size FROM blobs b
      WHERE b.created_at < ${cutoff} ${restrict}
        AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.target_digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest AND rb.created_at >= ${cutoff})
        AND NOT EXISTS (SELECT 1 FROM gc_pins p WHERE p.digest = b.digest AND p.created_at >= ${pinCutoff})
      ORDER BY b.digest`);
  }

  /** Pins of uploads that died between pin and link. */
  dropExpiredPins(): number {
    return this.db.delete(gcPins).where(sql`${gcPins.createdAt} < ${Date.now() - PIN_TTL_MS}`).run().changes;
  }

  /** Repositories linking each digest. */
  linkedRepositories(digests: string[], q: Q): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const part of chunks(digests)) {
      const rows = q
        .select({ d: repositoryBlobs.digest, name: repositories.name })
        .from(repositoryBlobs)
        .innerJoin(repositories, eq(repositories.id, repositoryBlobs.repositoryId))
        .where(inArray(repositoryBlobs.digest, part))
        .all();
      for (const r of rows) out.set(r.d, [...(out.get(r.d) ?? []), r.name]);
    }
    return out;
  }

  /**
   * T1 for a batch, inside the caller's transaction: metadata gone, tombstones `deleting` at
   * `generation`, and one event listing every digest (a sweep of 100k blobs would otherwise
   * write 100k chained events; the batch event is in the same transaction, so it records each
   * deletion just the same). Prepared statements: this is GC's hot loop.
   */
  tombstoneBlobs(tx: Tx, doomed: { blob: BlobCandidate; repositories: string[] }[], generation: number, actor: string): void {
    const raw = this.db.$client;
    const unlink = raw.prepare('DELETE FROM repository_blobs WHERE digest = ?');
    const drop = raw.prepare('DELETE FROM blobs WHERE digest = ?');
    const mark = raw.prepare(
      "INSERT INTO gc_tombstones (digest, generation, state, size) VALUES (?, ?, 'deleting', ?) ON CONFLICT (digest) DO UPDATE SET generation = excluded.generation, state = 'deleting', size = excluded.size",
    );
    for (const { blob } of doomed) {
      unlink.run(blob.digest);
      drop.run(blob.digest);
      mark.run(blob.digest, generation, blob.size);
    }
    appendEvent(tx, {
      actor,
      action: 'gc.blob.delete',
      digest: doomed.length === 1 ? doomed[0]!.blob.digest : null,
      before: { blobs: doomed.map((d) => ({ digest: d.blob.digest, size: d.blob.size, repositories: d.repositories })) },
      reason: 'referenced by no manifest',
    });
  }

  nextGeneration(tx: Tx): number {
    return tx.update(gcState).set({ generation: sql`${gcState.generation} + 1` }).where(eq(gcState.id, 1)).returning({ g: gcState.generation }).get()!.g;
  }

  /** Takes (or renews) the collector lease unless another holder's is live. */
  /** Takes or renews the lease; also takes it from a holder `isDead` says crashed (compare-and-set on that holder). */
  acquireLease(holder: string, ttlMs: number, isDead: (holder: string) => boolean = () => false): boolean {
    const now = Date.now();
    const raw = this.db.$client;
    if (raw.prepare('UPDATE gc_state SET holder = ?, held_until = ? WHERE id = 1 AND (holder IS NULL OR held_until < ? OR holder = ?)').run(holder, now + ttlMs, now, holder).changes > 0) return true;
    const current = (raw.prepare('SELECT holder FROM gc_state WHERE id = 1').get() as { holder: string | null } | undefined)?.holder;
    if (!current || !isDead(current)) return false;
    return raw.prepare('UPDATE gc_state SET holder = ?, held_until = ? WHERE id = 1 AND holder = ?').run(holder, now + ttlMs, current).changes > 0;
  }

  releaseLease(holder: string): void {
    if (this.db.$client.open) this.db.$client.prepare('UPDATE gc_state SET holder = NULL, held_until = NULL WHERE id = 1 AND holder = ?').run(holder);
  }

  deletingTombstones(): { digest: string; generation: number }[] {
    return this.db.select({ digest: gcTombstones.digest, generation: gcTombstones.generation }).from(gcTombstones).where(eq(gcTombstones.state, 'deleting')).all();
  }

  /** T2: the bytes are gone. Only for the generation this GC wrote (a newer T1 owns the row otherwise). */
  markDeleted(items: { digest: string; generation: number }[]): void {
    const stmt = this.db.$client.prepare("UPDATE gc_tombstones SET state = 'deleted' WHERE digest = ? AND generation = ? AND state = 'deleting'");
    this.db.transaction(() => {
      for (const it of items) stmt.run(it.digest, it.generation);
    });
  }

  /** One summary event per run that changed something. */
  recordRun(summary: Record<string, unknown>, actor: string): void {
    this.db.transaction((tx) => appendEvent(tx, { actor, action: 'gc.run', after: summary }));
  }

  // ---- GC: manifests (retention, dangling referrers) -----------------------------------------

  repositoriesOf(ns: string): { id: number; name: string }[] {
    return this.db.all<{ id: number; name: string }>(sql`SELECT r.id AS id, r.name AS name FROM repositories r WHERE ${inNamespace(ns)} ORDER BY r.name`);
  }

  tagRows(repoId: number): { tag: string; digest: string; pushedAt: number }[] {
    return this.db.select({ tag: tags.name, digest: tags.digest, pushedAt: tags.updatedAt }).from(tags).where(eq(tags.repositoryId, repoId)).all();
  }

  pullTimes(repository: string): Map<string, number> {
    const rows = this.db.select({ d: manifestPulls.digest, t: manifestPulls.pulledAt }).from(manifestPulls).where(eq(manifestPulls.repository, repository)).all();
    return new Map(rows.map((r) => [r.d, r.t]));
  }

  recordPulls(pulls: { repository: string; digest: string; at: number }[]): void {
    if (pulls.length === 0) return;
    this.db.transaction((tx) => {
      for (const p of pulls) {
        tx.insert(manifestPulls)
          .values({ repository: p.repository, digest: p.digest, pulledAt: p.at })
          .onConflictDoUpdate({ target: [manifestPulls.repository, manifestPulls.digest], set: { pulledAt: sql`max(${manifestPulls.pulledAt}, excluded.pulled_at)` } })
          .run();
      }
    });
  }

  /** Manifests of the repository whose `subject` is `digest`. */
  referrersOf(repoId: number, digest: string, q: Q): string[] {
    return q.select({ d: manifests.digest }).from(manifests).where(and(eq(manifests.repositoryId, repoId), eq(manifests.subject, digest))).all().map((r) => r.d);
  }

  /** Manifests of the repository that list `digest` as a child (indexes). */
  parentsOf(repoId: number, digest: string, q: Q): string[] {
    return q
      .select({ d: manifestReferences.manifestDigest })
      .from(manifestReferences)
      .where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.targetDigest, digest), eq(manifestReferences.kind, 'manifest')))
      .all()
      .map((r) => r.d);
  }

  childrenOf(repoId: number, digest: string, q: Q): string[] {
    return q
      .select({ d: manifestReferences.targetDigest })
      .from(manifestReferences)
      .where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.manifestDigest, digest), eq(manifestReferences.kind, 'manifest')))
      .all()
      .map((r) => r.d);
  }

  manifestInfo(repoId: number, digest: string, q: Q): { size: number; createdAt: number; subject: string | null } | undefined {
    return q.select({ size: manifests.size, createdAt: manifests.createdAt, subject: manifests.subject }).from(manifests).where(and(eq(manifests.repositoryId, repoId), eq(manifests.digest, digest))).get();
  }

  /** Referrers older than `cutoff` whose subject is not (or no longer) stored in their repository. */
  danglingReferrers(cutoff: number): { repoId: number; repository: string; digest: string }[] {
    return this.db.all(sql`
      SELECT m.repository_id AS repoId, r.name AS repository, m.digest AS digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE m.subject IS NOT NULL AND m.created_at < ${cutoff}
        AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject)
      ORDER BY r.name, m.digest`);
  }

  deleteTag(tx: Tx, repoId: number, repository: string, tag: string, digest: string, actor: string, reason: string): void {
    tx.delete(tags).where(and(eq(tags.repositoryId, repoId), eq(tags.name, tag))).run();
    appendEvent(tx, { actor, action: 'gc.tag.delete', repository, tag, before: { digest }, reason });
  }

  deleteManifest(tx: Tx, repoId: number, repository: string, digest: string, actor: string, reason: string): void {
    const removedTags = tx.delete(tags).where(and(eq(tags.repositoryId, repoId), eq(tags.digest, digest))).returning({ n: tags.name }).all().map((t) => t.n);
    tx.delete(manifests).where(and(eq(manifests.repositoryId, repoId), eq(manifests.digest, digest))).run();
    tx.delete(manifestReferences).where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.manifestDigest, digest))).run();
    appendEvent(tx, { actor, action: 'gc.manifest.delete', repository, digest, before: { tags: removedTags }, reason });
  }
}
