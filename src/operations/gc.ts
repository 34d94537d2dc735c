/**
 * Online garbage collection (PRODUCT.md §9): mark from the metadata database, sweep in
 * transactions that re-check what they delete, remove bytes only after the metadata commit.
 * Safety protocol with concurrent pushes: see fence.ts and the README section "Garbage collection".
 *
 * Order of one run: finish deletions a crashed run left `deleting`; apply retention (tags, then
 * the manifests that lost their last tag, with their referrers and untagged children); drop
 * referrers whose subject is gone; then blobs no manifest references. A dry run computes the
 * same lists without writing.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BlobDriver } from '../data/driver.js';
import { AppError, ociError } from '../errors/catalogue.js';
import type { Protection } from '../governance/contracts.js';
import type { DeleteTarget, Governance } from '../governance/hooks.js';
import { isFallbackTag, selectRetention, type NamespacePolicy } from './policy.js';
import { chunks, type BlobCandidate, type OperationsStore, type Tx } from './store.js';
import type { PullRecorder } from './pulls.js';
import { holderIsDead, PROCESS_ID } from './lease.js';
import type { Metrics } from '../metrics/index.js';

export interface GcItem {
  kind: 'blob' | 'manifest' | 'tag';
  action: 'delete' | 'keep';
  repository?: string; digest?: string; tag?: string; size?: number;
  reason: string;
}

export interface GcReport {
  dryRun: boolean;
  blobs: number;
  bytes: number;
  manifests: number;
  tags: number;
  items: GcItem[];
  /** Items beyond MAX_ITEMS are counted but not listed. */
  itemsTruncated: boolean;
  startedAt: string;
  durationMs: number;
}

export interface GcOptions {
  dryRun: boolean;
  actor: string;
}

const MAX_ITEMS = 10_000;
/** The cross-process lease; renewed before every batch, so only a stall this long can lose it. */
const LEASE_MS = 120_000;
const DELETE_CONCURRENCY = 16;

/** GC's synchronous steps are short transactions; between them, pushes and pulls get their turn. */
const yieldToRequests = (): Promise<void> => new Promise((r) => setImmediate(r));
/**
 * Pacing of the blob sweep: after each batch GC waits PACE times the event-loop time the batch
 * used (its transactions), so on a saturated server it takes at most 1/(PACE+1) of the loop and
 * requests keep the rest. Costs wall time only: an idle server's sweep of 10k blobs takes ~4 s
 * instead of ~1 s.
 */
const PACE = 3;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class GarbageCollector {
  private running: Promise<unknown> | null = null;
  /** Event-loop time the current sweep batch spent in its transactions (see PACE). */
  private busyMs = 0;
  private readonly holder = `${PROCESS_ID}/${randomUUID()}`;

  constructor(
    private readonly store: OperationsStore,
    private readonly driver: BlobDriver,
    private readonly governance: Governance,
    private readonly protection: Protection,
    private readonly pulls: PullRecorder,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly metrics?: Pick<Metrics, 'gcRun'>,
  ) {}

  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * One run at a time: in this process (a second caller gets 409 CONFLICT) and across processes
   * sharing the database (a lease in gc_state, renewed per batch), so the bytes of a `deleting`
   * tombstone are only ever deleted by the collector that holds the lease.
   */
  run(opts: GcOptions): Promise<GcReport> {
    return this.exclusive(() => (this.metrics ? this.metrics.gcRun(opts.dryRun, () => this.collect(opts)) : this.collect(opts)));
  }

  /** Finishes deletions a crashed run left behind (at start), under the same exclusion. */
  resume(): Promise<number> {
    return this.exclusive(() => this.finishDeleting());
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running) return Promise.reject(ociError('CONFLICT', 'a garbage collection is already running'));
    if (!this.store.acquireLease(this.holder, LEASE_MS, holderIsDead)) return Promise.reject(ociError('CONFLICT', 'another process is running a garbage collection'));
    const p = fn().finally(() => {
      this.running = null;
      this.store.releaseLease(this.holder);
    });
    this.running = p;
    return p;
  }

  private renew(): void {
    // Losing the lease means a stall longer than LEASE_MS: stop rather than race another collector.
    if (!this.store.acquireLease(this.holder, LEASE_MS)) throw ociError('CONFLICT', 'garbage collection lease lost; another process took over');
  }

  private async collect({ dryRun, actor }: GcOptions): Promise<GcReport> {
    const started = Date.now();
    const cutoff = started - this.graceMs;
    const report: GcReport = { dryRun, blobs: 0, bytes: 0, manifests: 0, tags: 0, items: [], itemsTruncated: false, startedAt: new Date(started).toISOString(), durationMs: 0 };
    const add = (item: GcItem): void => {
      if (report.items.length < MAX_ITEMS) report.items.push(item);
      else report.itemsTruncated = true;
    };
    if (!dryRun) {
      await this.finishDeleting();
      this.store.dropExpiredPins();
    }
    this.pulls.flush();

    // Manifests (retention + dangling referrers). In a dry run, remember what would go so the
    // blob phase can count the blobs it frees.
    const goneManifests = new Map<number, Set<string>>();
    for (const { namespace, policy } of this.store.allPolicies()) {
      if (policy.retention.length === 0) continue;
      for (const repo of this.store.repositoriesOf(namespace)) {
        this.applyRetention(repo, policy, started, dryRun, actor, report, add, goneManifests);
        await yieldToRequests();
      }
    }
    for (const d of this.store.danglingReferrers(cutoff)) {
      if (goneManifests.get(d.repoId)?.has(d.digest)) continue;
      await yieldToRequests();
      this.deleteManifestGroup(d.repoId, d.repository, d.digest, 'its subject is not in the repository', dryRun, actor, report, add, goneManifests, new Set());
    }

    // Blobs.
    const candidates = this.store.unreferencedBlobs(cutoff);
    if (dryRun) candidates.push(...this.freedByDryRun(goneManifests, cutoff, new Set(candidates.map((c) => c.digest))));
    for (const batch of chunks(candidates)) {
      if (dryRun) this.previewBlobs(batch, add, report);
      else await this.sweepBlobs(batch, cutoff, actor, add, report);
      await (this.busyMs > 0 ? pause(this.busyMs * PACE) : yieldToRequests());
      this.busyMs = 0;
    }
    report.durationMs = Date.now() - started;
    if (!dryRun && report.blobs + report.manifests + report.tags > 0) {
      this.store.recordRun({ blobs: report.blobs, bytes: report.bytes, manifests: report.manifests, tags: report.tags, durationMs: report.durationMs }, actor);
    }
    this.log.info({ dryRun, blobs: report.blobs, bytes: report.bytes, manifests: report.manifests, tags: report.tags, ms: report.durationMs }, 'gc finished');
    return report;
  }

  /** Why GC may not delete this content (hold, retention, a module's guard), or null. */
  private refusal(target: Omit<DeleteTarget, 'actor' | 'origin'>, actor: string, tx?: Tx, known?: Map<string, string | null>): string | null {
    if (target.digest) {
      const key = `${target.repository} ${target.digest}`;
      const reason = known?.has(key) ? known.get(key)! : this.protection.protectedReason(target.repository, target.digest, tx);
      if (reason) return reason;
    }
    if (!tx) return null;
    try {
      this.governance.guardDelete({ ...target, actor, origin: 'gc' }, tx);
      return null;
    } catch (err) {
      if (err instanceof AppError) return err.message;
      throw err;
    }
  }

  /** Protection answers for a batch of blobs in their linked repositories: batched when the module can, else one by one. */
  private protectionOf(digests: string[], linked: Map<string, string[]>, tx?: Tx): Map<string, string | null> {
    const pairs = digests.flatMap((digest) => (linked.get(digest) ?? []).map((repository) => ({ repository, digest })));
    if (this.protection.protectedReasons) return this.protection.protectedReasons(pairs, tx);
    return new Map(pairs.map((p) => [`${p.repository} ${p.digest}`, this.protection.protectedReason(p.repository, p.digest, tx)]));
  }

  private applyRetention(
    repo: { id: number; name: string },
    policy: NamespacePolicy,
    now: number,
    dryRun: boolean,
    actor: string,
    report: GcReport,
    add: (i: GcItem) => void,
    gone: Map<number, Set<string>>,
  ): void {
    const pulled = this.store.pullTimes(repo.name);
    const tagRows = this.store.tagRows(repo.id).map((t) => ({ ...t, pulledAt: pulled.get(t.digest) }));
    const verdicts = selectRetention(policy, repo.name, tagRows, now);
    const drop = verdicts.filter((v) => !v.keep);
    if (drop.length === 0) return;
    const remaining = new Map<string, number>();
    for (const t of tagRows) remaining.set(t.digest, (remaining.get(t.digest) ?? 0) + 1);
    const orphaned: string[] = [];
    const dropped = new Set<string>();
    const run = (tx?: Tx): void => {
      for (const v of drop) {
        if (tx && this.store.tagDigest(repo.id, v.tag, tx) !== v.digest) continue; // moved since the mark
        const why = this.refusal({ repository: repo.name, kind: 'tag', tag: v.tag, digest: v.digest }, actor, tx);
        if (why) {
          add({ kind: 'tag', action: 'keep', repository: repo.name, tag: v.tag, digest: v.digest, reason: why });
          continue;
        }
        if (tx) this.store.deleteTag(tx, repo.id, repo.name, v.tag, v.digest, actor, `retention: ${v.reason}`);
        report.tags++;
        dropped.add(v.tag);
        add({ kind: 'tag', action: 'delete', repository: repo.name, tag: v.tag, digest: v.digest, reason: `retention: ${v.reason}` });
        const left = (remaining.get(v.digest) ?? 1) - 1;
        remaining.set(v.digest, left);
        if (left === 0) orphaned.push(v.digest);
      }
    };
    if (dryRun) run();
    else this.store.db.transaction((tx) => run(tx));
    for (const digest of orphaned) this.deleteManifestGroup(repo.id, repo.name, digest, 'retention removed its last tag', dryRun, actor, report, add, gone, dryRun ? dropped : new Set());
  }

  /**
   * Deletes a manifest with its referrers and the children nothing else lists, in one
   * transaction, or nothing at all when any of them is protected, tagged or still needed.
   */
  private deleteManifestGroup(
    repoId: number,
    repository: string,
    root: string,
    reason: string,
    dryRun: boolean,
    actor: string,
    report: GcReport,
    add: (i: GcItem) => void,
    gone: Map<number, Set<string>>,
    droppedTags: Set<string>,
  ): void {
    const attempt = (tx?: Tx): { group: { digest: string; size: number; why: string }[] } | { keep: string } => {
      const q = tx ?? this.store.db;
      const already = gone.get(repoId) ?? new Set<string>();
      const group = new Map<string, { size: number; why: string }>();
      const queue: { digest: string; why: string }[] = [{ digest: root, why: reason }];
      while (queue.length > 0) {
        const { digest, why } = queue.shift()!;
        if (group.has(digest) || already.has(digest)) continue;
        const info = this.store.manifestInfo(repoId, digest, q);
        if (!info) continue;
        // A dry run has not removed the retention tags: look past them. Fallback tags go with their manifest.
        const tagsLeft = this.store.tagsOf(repoId, digest, q).filter((t) => !droppedTags.has(t) && !isFallbackTag(t));
        if (tagsLeft.length > 0) return { keep: digest === root ? `still tagged ${tagsLeft.join(', ')}` : `referrer or child ${digest} is tagged ${tagsLeft.join(', ')}` };
        const parents = this.store.parentsOf(repoId, digest, q).filter((p) => !group.has(p) && !already.has(p));
        if (parents.length > 0) {
          if (digest === root) return { keep: `listed by index ${parents[0]}` };
          continue; // a child another index still lists stays (and so does nothing else here)
        }
        const refused = this.refusal({ repository, kind: 'manifest', digest }, actor, tx);
        if (refused) return { keep: digest === root ? refused : `referrer ${digest}: ${refused}` };
        group.set(digest, { size: info.size, why });
        for (const r of this.store.referrersOf(repoId, digest, q)) queue.push({ digest: r, why: `referrer of ${digest}` });
        for (const ch of this.store.childrenOf(repoId, digest, q)) queue.push({ digest: ch, why: `child of ${digest}` });
      }
      return { group: [...group.entries()].map(([digest, v]) => ({ digest, ...v })) };
    };
    const outcome = dryRun ? attempt() : this.store.db.transaction((tx) => {
      const o = attempt(tx);
      if ('group' in o) for (const m of o.group) this.store.deleteManifest(tx, repoId, repository, m.digest, actor, m.why);
      return o;
    });
    if ('keep' in outcome) {
      add({ kind: 'manifest', action: 'keep', repository, digest: root, reason: outcome.keep });
      return;
    }
    const set = gone.get(repoId) ?? new Set<string>();
    gone.set(repoId, set);
    for (const m of outcome.group) {
      set.add(m.digest);
      report.manifests++;
      add({ kind: 'manifest', action: 'delete', repository, digest: m.digest, size: m.size, reason: m.why });
    }
  }

  /** Dry run only: blobs whose every referencing manifest would be deleted above. */
  private freedByDryRun(gone: Map<number, Set<string>>, cutoff: number, known: Set<string>): BlobCandidate[] {
    if (gone.size === 0) return [];
    const out: BlobCandidate[] = [];
    const db = this.store.db;
    const stmtRefs = db.$client.prepare("SELECT target_digest AS d FROM manifest_references WHERE repository_id = ? AND manifest_digest = ? AND kind = 'blob'");
    const stmtUsers = db.$client.prepare('SELECT repository_id AS r, manifest_digest AS m FROM manifest_references WHERE target_digest = ?');
    const stmtBlob = db.$client.prepare('SELECT size, created_at AS c FROM blobs WHERE digest = ?');
    const stmtFresh = db.$client.prepare('SELECT 1 FROM repository_blobs WHERE digest = ? AND created_at >= ? LIMIT 1');
    for (const [repoId, digests] of gone) {
      for (const m of digests) {
        for (const { d } of stmtRefs.all(repoId, m) as { d: string }[]) {
          if (known.has(d)) continue;
          const users = stmtUsers.all(d) as { r: number; m: string }[];
          if (!users.every((u) => gone.get(u.r)?.has(u.m))) continue;
          const b = stmtBlob.get(d) as { size: number; c: number } | undefined;
          if (!b || b.c >= cutoff || stmtFresh.get(d, cutoff)) continue;
          known.add(d);
          out.push({ digest: d, size: b.size });
        }
      }
    }
    return out;
  }

  private previewBlobs(batch: BlobCandidate[], add: (i: GcItem) => void, report: GcReport): void {
    const linked = this.store.linkedRepositories(batch.map((b) => b.digest), this.store.db);
    const known = this.protectionOf(batch.map((b) => b.digest), linked);
    for (const b of batch) {
      const repos = linked.get(b.digest) ?? [];
      const why = repos.map((r) => known.get(`${r} ${b.digest}`)).find((x) => x);
      if (why) {
        add({ kind: 'blob', action: 'keep', digest: b.digest, size: b.size, reason: why });
        continue;
      }
      report.blobs++;
      report.bytes += b.size;
      add({ kind: 'blob', action: 'delete', digest: b.digest, size: b.size, reason: repos.length ? `referenced by no manifest (linked to ${repos.join(', ')})` : 'referenced by no manifest' });
    }
  }

  /** T1 (metadata + tombstones, re-checked in the transaction), bytes, then T2. */
  private async sweepBlobs(batch: BlobCandidate[], cutoff: number, actor: string, add: (i: GcItem) => void, report: GcReport): Promise<void> {
    this.renew();
    const t1 = performance.now();
    const doomed = this.store.db.transaction((tx) => {
      const still = this.store.unreferencedBlobs(cutoff, tx, batch.map((b) => b.digest));
      if (still.length === 0) return { generation: 0, blobs: [] as BlobCandidate[] };
      const linked = this.store.linkedRepositories(still.map((b) => b.digest), tx);
      const generation = this.store.nextGeneration(tx);
      const known = this.protectionOf(still.map((b) => b.digest), linked, tx);
      const out: { blob: BlobCandidate; repositories: string[] }[] = [];
      for (const b of still) {
        const repos = linked.get(b.digest) ?? [];
        const why = repos.map((r) => this.refusal({ repository: r, kind: 'blob', digest: b.digest }, actor, tx, known)).find((x) => x);
        if (why) {
          add({ kind: 'blob', action: 'keep', digest: b.digest, size: b.size, reason: why });
          continue;
        }
        add({ kind: 'blob', action: 'delete', digest: b.digest, size: b.size, reason: repos.length ? `referenced by no manifest (linked to ${repos.join(', ')})` : 'referenced by no manifest' });
        out.push({ blob: b, repositories: repos });
      }
      if (out.length > 0) this.store.tombstoneBlobs(tx, out, generation, actor);
      return { generation, blobs: out.map((o) => o.blob) };
    });
    this.busyMs += performance.now() - t1;
    if (doomed.blobs.length === 0) return;
    await this.deleteBytes(doomed.blobs.map((b) => ({ digest: b.digest, generation: doomed.generation })));
    for (const b of doomed.blobs) {
      report.blobs++;
      report.bytes += b.size;
    }
  }

  /** Deletes the bytes of `deleting` tombstones, then marks them `deleted`; failures stay `deleting` for the next run. */
  private async deleteBytes(items: { digest: string; generation: number }[]): Promise<void> {
    this.renew();
    if (this.driver.deleteMany) {
      let failed = new Set<string>(items.map((i) => i.digest));
      try {
        failed = new Set(await this.driver.deleteMany(items.map((i) => i.digest)));
      } catch (err) {
        this.log.warn({ err, blobs: items.length }, 'gc: deleting bytes failed; retried next run');
      }
      if (failed.size > 0 && failed.size < items.length) this.log.warn({ failed: failed.size }, 'gc: some bytes not deleted; retried next run');
      const t2 = performance.now();
      this.store.markDeleted(items.filter((i) => !failed.has(i.digest)));
      this.busyMs += performance.now() - t2;
      return;
    }
    const done: { digest: string; generation: number }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const it = items[next++]!;
        try {
          await this.driver.delete(it.digest);
          done.push(it);
        } catch (err) {
          this.log.warn({ err, digest: it.digest }, 'gc: deleting bytes failed; retried next run');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, items.length) }, worker));
    this.store.markDeleted(done);
  }

  /** Resumes a run that stopped (crash, storage error) between the metadata commit and the byte deletion. Caller holds the lease. */
  private async finishDeleting(): Promise<number> {
    const pending = this.store.deletingTombstones();
    for (const batch of chunks(pending)) await this.deleteBytes(batch);
    return pending.length;
  }
}
