/**
 * Why content may not be deleted: a legal hold (always wins) or an evidence retention floor.
 * Deletes (inside their transaction) and garbage collection ask the same function, so they can
 * never disagree.
 */
import type { Families } from '../governance/contracts.js';
import type { DeleteTarget, Tx } from '../governance/hooks.js';
import type { RegistryStore } from '../meta/registry-store.js';
import type { EvidenceRow, EvidenceStore, HoldRow } from './store.js';

export const DAY_MS = 86_400_000;
/** Pairs per checkMany query round (keeps SQL parameter lists well under SQLite's limit). */
const BATCH = 500;

export type Refusal =
  | { kind: 'hold'; hold: HoldRow; message: string }
  | { kind: 'retention'; evidence: EvidenceRow; until: number; message: string };

export class ProtectionPolicy {
  constructor(
    private readonly store: EvidenceStore,
    private readonly registry: RegistryStore,
    private readonly families: Families,
    private readonly now: () => number,
  ) {}

  /**
   * Days the evidence must be kept: what its type said at push time, raised (never lowered) by
   * the type's current entry, so editing a type cannot shorten retention already promised.
   */
  retentionDays(row: EvidenceRow): number {
    if (row.type === null) return row.retentionDays;
    const current = retentionDaysOf(this.families, row.type);
    return Math.max(row.retentionDays, current ?? 0);
  }

  retainedUntil(row: EvidenceRow): number {
    return row.pushedAt + this.retentionDays(row) * DAY_MS;
  }

  isRetained(row: EvidenceRow): boolean {
    return this.retainedUntil(row) > this.now();
  }

  /**
   * Answers checkMany gave inside a transaction, per transaction object: the guardDelete that GC
   * runs for the same blob in the same transaction reuses them instead of asking again. Nothing
   * GC does inside that transaction changes holds or evidence, and a new transaction is a new key.
   */
  private readonly answered = new WeakMap<object, Map<string, Refusal | null>>();

  /** The refusal for deleting repository@digest (digest null: the whole repository), or null. */
  check(q: Tx | RegistryStore['db'], repository: string, digest: string | null): Refusal | null {
    if (digest !== null) {
      const known = this.answered.get(q)?.get(`${repository} ${digest}`);
      if (known !== undefined) return known;
    }
    const repoId = this.registry.repositoryId(repository);
    const holds = this.store.activeHoldsCovering(q, repository, repoId, digest);
    const rows = holds.length > 0 ? [] : digest === null ? this.store.evidenceInRepository(q, repository, repoId) : this.store.evidenceCovering(q, repository, repoId, digest);
    return this.refusalOf(repository, digest, holds, rows);
  }

  /**
   * check() for many repository@digest pairs with a fixed number of queries per 500 pairs (GC
   * sweeps). Same rules as activeHoldsCovering/evidenceCovering, applied in memory to the rows
   * of the batch. Keyed `${repository} ${digest}`.
   */
  checkMany(q: Tx | RegistryStore['db'], items: { repository: string; digest: string }[]): Map<string, Refusal | null> {
    const out = new Map<string, Refusal | null>();
    for (let i = 0; i < items.length; i += BATCH) {
      const part = items.slice(i, i + BATCH);
      const repos = [...new Set(part.map((p) => p.repository))];
      const ids = new Map<string, number>();
      for (const r of repos) {
        const id = this.registry.repositoryId(r);
        if (id !== undefined) ids.set(r, id);
      }
      const digests = [...new Set(part.map((p) => p.digest))];
      const referencing = this.store.referencingMany(q, [...ids.values()], digests);
      const holds = this.store.activeHoldsIn(q, repos);
      const evDigests = new Set(digests);
      for (const list of referencing.values()) for (const m of list) evDigests.add(m);
      const rows = this.store.evidenceTouching(q, repos, [...evDigests]);
      for (const { repository, digest } of part) {
        const refs = new Set(referencing.get(`${ids.get(repository) ?? -1} ${digest}`) ?? []);
        const h = holds.filter((x) => x.repository === repository && (x.digest === null || x.digest === digest || refs.has(x.digest)));
        const ev = h.length > 0 ? [] : rows.filter((r) => r.repository === repository && (r.digest === digest || (r.subject === digest && r.pinsSubject) || refs.has(r.digest)));
        out.set(`${repository} ${digest}`, this.refusalOf(repository, digest, h, ev));
      }
    }
    if (q !== this.store.db) {
      const memo = this.answered.get(q) ?? new Map<string, Refusal | null>();
      for (const [k, v] of out) memo.set(k, v);
      this.answered.set(q, memo);
    }
    return out;
  }

  /** The refusal given the active holds (oldest first) and live evidence rows covering repository@digest. */
  private refusalOf(repository: string, digest: string | null, holds: HoldRow[], rows: EvidenceRow[]): Refusal | null {
    const hold = holds[0];
    if (hold) {
      const what = hold.digest === null ? `repository ${repository}` : hold.digest === digest ? `${repository}@${hold.digest}` : `${repository}@${hold.digest}, which references ${digest}`;
      return { kind: 'hold', hold, message: `under legal hold ${hold.id} on ${what} (reason: ${hold.reason})` };
    }
    const now = this.now();
    let best: { row: EvidenceRow; until: number } | null = null;
    for (const row of rows) {
      const until = this.retainedUntil(row);
      if (until > now && (!best || until > best.until)) best = { row, until };
    }
    if (!best) return null;
    const { row, until } = best;
    const ev = `evidence ${repository}@${row.digest} (type ${row.type ?? 'untyped'})`;
    const date = new Date(until).toISOString();
    const message =
      digest === null || row.digest === digest
        ? `${ev} is retained until ${date}`
        : row.subject === digest
          ? `${digest} is the subject of ${ev}, retained until ${date}`
          : `${digest} belongs to ${ev}, retained until ${date}`;
    return { kind: 'retention', evidence: row, until, message };
  }

  /** For guardDelete: the refusal for a delete request. */
  checkDelete(tx: Tx, target: DeleteTarget): Refusal | null {
    if (target.kind === 'repository') return this.check(tx, target.repository, null);
    if (target.digest === undefined) {
      // A tag that points nowhere deletes no content, but a repository-wide hold still freezes it.
      const r = this.check(tx, target.repository, null);
      return r?.kind === 'hold' ? r : null;
    }
    return this.check(tx, target.repository, target.digest);
  }
}

/** The evidence type's retentionDays (a non-negative integer), or undefined when the entry is unknown. */
export function retentionDaysOf(families: Families, typeId: string): number | undefined {
  const e = families.entry('evidence-type', typeId);
  if (!e) return undefined;
  const days = e.entry.retentionDays;
  return typeof days === 'number' && Number.isFinite(days) && days > 0 ? Math.floor(days) : 0;
}
