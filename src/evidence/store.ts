/** SQL for the evidence index, legal holds and the scan queue. Every method is synchronous. */
import { and, asc, count, desc, eq, gt, inArray, isNull, or, sql } from 'drizzle-orm';
import type { Db } from '../meta/db.js';
import { events, manifestReferences, manifests } from '../meta/schema.js';
import type { Tx } from '../governance/hooks.js';
import { evidence, legalHolds, scanJobs } from './schema.js';

export type EvidenceRow = typeof evidence.$inferSelect;
export type HoldRow = typeof legalHolds.$inferSelect;
export type ScanJobRow = typeof scanJobs.$inferSelect;
type Q = Db | Tx;

export class EvidenceStore {
  constructor(readonly db: Db) {}

  /** The `oci.manifest.push` event that stored repository@digest most recently. */
  pushEvent(q: Q, repository: string, digest: string): { seq: number; time: number } | undefined {
    return q
      .select({ seq: events.seq, time: events.time })
      .from(events)
      .where(and(eq(events.repository, repository), eq(events.digest, digest), eq(events.action, 'oci.manifest.push')))
      .orderBy(desc(events.seq))
      .limit(1)
      .get();
  }

  upsertEvidence(q: Q, row: EvidenceRow): void {
    q.insert(evidence)
      .values(row)
      .onConflictDoUpdate({ target: [evidence.repository, evidence.digest], set: { ...row } })
      .run();
  }

  /** Manifests of the repository that reference `digest` (blob or child manifest). */
  private referencing(q: Q, repoId: number | undefined, digest: string) {
    return q
      .select({ d: manifestReferences.manifestDigest })
      .from(manifestReferences)
      .where(and(eq(manifestReferences.repositoryId, repoId ?? -1), eq(manifestReferences.targetDigest, digest)));
  }

  /**
   * Evidence rows whose manifest is still stored: a row left behind by a delete path that did
   * not go through the hooks can never protect anything.
   */
  private live(q: Q, repoId: number | undefined) {
    return inArray(evidence.digest, q.select({ d: manifests.digest }).from(manifests).where(eq(manifests.repositoryId, repoId ?? -1)));
  }

  /** Evidence whose retention may cover `digest`: the evidence itself, one of its blobs, or its subject. */
  evidenceCovering(q: Q, repository: string, repoId: number | undefined, digest: string): EvidenceRow[] {
    return q
      .select()
      .from(evidence)
      .where(
        and(
          eq(evidence.repository, repository),
          this.live(q, repoId),
          or(eq(evidence.digest, digest), and(eq(evidence.subject, digest), eq(evidence.pinsSubject, true)), inArray(evidence.digest, this.referencing(q, repoId, digest))),
        ),
      )
      .all();
  }

  evidenceInRepository(q: Q, repository: string, repoId: number | undefined): EvidenceRow[] {
    return q.select().from(evidence).where(and(eq(evidence.repository, repository), this.live(q, repoId))).all();
  }

  evidenceOfSubject(q: Q, repository: string, repoId: number | undefined, subject: string): EvidenceRow[] {
    return q
      .select()
      .from(evidence)
      .where(and(eq(evidence.repository, repository), eq(evidence.subject, subject), this.live(q, repoId)))
      .orderBy(asc(evidence.pushSeq))
      .all();
  }

  // ---- batched lookups for garbage collection (one query per batch, not per digest) ----

  /** Per repository id: manifest digests referencing each of `digests` (key `repoId digest`). */
  referencingMany(q: Q, repoIds: number[], digests: string[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    if (repoIds.length === 0 || digests.length === 0) return out;
    const rows = q
      .select({ r: manifestReferences.repositoryId, m: manifestReferences.manifestDigest, t: manifestReferences.targetDigest })
      .from(manifestReferences)
      // `+repository_id`: search by target digest (SQLite would otherwise scan each repository's references by primary key prefix).
      .where(and(inArray(manifestReferences.targetDigest, digests), sql`+${manifestReferences.repositoryId} IN (${sql.join(repoIds.map((id) => sql`${id}`), sql`, `)})`))
      .all();
    for (const row of rows) {
      const key = `${row.r} ${row.t}`;
      const list = out.get(key) ?? [];
      list.push(row.m);
      out.set(key, list);
    }
    return out;
  }

  /** Live evidence rows of `repositories` that are, or have as subject, one of `digests`. */
  evidenceTouching(q: Q, repositories: string[], digests: string[]): EvidenceRow[] {
    if (repositories.length === 0 || digests.length === 0) return [];
    const rows = q
      .select()
      .from(evidence)
      .where(and(inArray(evidence.repository, repositories), or(inArray(evidence.digest, digests), inArray(evidence.subject, digests))))
      .all();
    if (rows.length === 0) return rows;
    // Liveness (EvidenceStore.live): the evidence manifest is still stored in its repository.
    const stored = q.all<{ name: string; digest: string }>(sql`
      SELECT r.name AS name, m.digest AS digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
      WHERE r.name IN (${sql.join([...new Set(rows.map((r) => r.repository))].map((n) => sql`${n}`), sql`, `)})
        AND m.digest IN (${sql.join([...new Set(rows.map((r) => r.digest))].map((d) => sql`${d}`), sql`, `)})`);
    const live = new Set(stored.map((s) => `${s.name} ${s.digest}`));
    return rows.filter((r) => live.has(`${r.repository} ${r.digest}`));
  }

  /** Active holds of `repositories`, oldest first. */
  activeHoldsIn(q: Q, repositories: string[]): HoldRow[] {
    if (repositories.length === 0) return [];
    return q
      .select()
      .from(legalHolds)
      .where(and(inArray(legalHolds.repository, repositories), isNull(legalHolds.releasedAt)))
      .orderBy(asc(legalHolds.createdSeq))
      .all();
  }

  // ---- legal holds ----

  /** Active holds covering `digest` (null: anything in the repository): repository-wide, on it, or on a manifest that references it. */
  activeHoldsCovering(q: Q, repository: string, repoId: number | undefined, digest: string | null): HoldRow[] {
    const active = and(eq(legalHolds.repository, repository), isNull(legalHolds.releasedAt));
    const where = digest === null ? active : and(active, or(isNull(legalHolds.digest), eq(legalHolds.digest, digest), inArray(legalHolds.digest, this.referencing(q, repoId, digest))));
    return q.select().from(legalHolds).where(where).orderBy(asc(legalHolds.createdSeq)).all();
  }

  insertHold(q: Q, row: HoldRow): void {
    q.insert(legalHolds).values(row).run();
  }

  hold(q: Q, id: string): HoldRow | undefined {
    return q.select().from(legalHolds).where(eq(legalHolds.id, id)).get();
  }

  releaseHold(q: Q, id: string, by: string, at: number, reason: string | null): void {
    q.update(legalHolds).set({ releasedBy: by, releasedAt: at, releaseReason: reason }).where(eq(legalHolds.id, id)).run();
  }

  /** Holds in creation order, `limit` after the one created at event `afterSeq` (a page cursor). */
  listHolds(q: Q, repository: string | undefined, includeReleased: boolean, limit: number, afterSeq = 0): HoldRow[] {
    const conds = [
      repository !== undefined ? eq(legalHolds.repository, repository) : undefined,
      includeReleased ? undefined : isNull(legalHolds.releasedAt),
      afterSeq > 0 ? gt(legalHolds.createdSeq, afterSeq) : undefined,
    ].filter((c) => c !== undefined);
    return q
      .select()
      .from(legalHolds)
      .where(conds.length ? and(...conds) : undefined)
      .orderBy(asc(legalHolds.createdSeq))
      .limit(limit)
      .all();
  }

  // ---- scan queue ----

  enqueueScan(q: Q, repository: string, digest: string): number {
    return q.insert(scanJobs).values({ repository, digest, state: 'pending' }).returning({ id: scanJobs.id }).get().id;
  }

  /** Jobs waiting (and, with `includeRunning`, being worked on): the queue length for backpressure. */
  pendingScans(q: Q, includeRunning = true): number {
    const states: ScanJobRow['state'][] = includeRunning ? ['pending', 'running'] : ['pending'];
    return q.select({ n: count() }).from(scanJobs).where(inArray(scanJobs.state, states)).get()?.n ?? 0;
  }

  private claimable(staleBefore: number) {
    return or(eq(scanJobs.state, 'pending'), and(eq(scanJobs.state, 'running'), sql`${scanJobs.updatedAt} < ${staleBefore}`));
  }

  nextScan(q: Q, afterId: number, staleBefore: number): ScanJobRow | undefined {
    return q
      .select()
      .from(scanJobs)
      .where(and(this.claimable(staleBefore), sql`${scanJobs.id} > ${afterId}`))
      .orderBy(asc(scanJobs.id))
      .limit(1)
      .get();
  }

  /** Takes the job for this worker; false when another worker got it first. */
  claimScan(q: Q, id: number, staleBefore: number, now: number): boolean {
    return q.update(scanJobs).set({ state: 'running', updatedAt: now }).where(and(eq(scanJobs.id, id), this.claimable(staleBefore))).run().changes === 1;
  }

  scanJob(q: Q, id: number): ScanJobRow | undefined {
    return q.select().from(scanJobs).where(eq(scanJobs.id, id)).get();
  }

  finishScan(q: Q, id: number, state: ScanJobRow['state'], fields: { report?: string | null; error?: string | null; attempts?: number }): void {
    q.update(scanJobs)
      .set({ state, updatedAt: Date.now(), ...fields })
      .where(eq(scanJobs.id, id))
      .run();
  }
}
