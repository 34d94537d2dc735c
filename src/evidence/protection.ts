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

  /** The refusal for deleting repository@digest (digest null: the whole repository), or null. */
  check(q: Tx | RegistryStore['db'], repository: string, digest: string | null): Refusal | null {
    const repoId = this.registry.repositoryId(repository);
    const holds = this.store.activeHoldsCovering(q, repository, repoId, digest);
    const hold = holds[0];
    if (hold) {
      const what = hold.digest === null ? `repository ${repository}` : hold.digest === digest ? `${repository}@${hold.digest}` : `${repository}@${hold.digest}, which references ${digest}`;
      return { kind: 'hold', hold, message: `under legal hold ${hold.id} on ${what} (reason: ${hold.reason})` };
    }
    const rows = digest === null ? this.store.evidenceInRepository(q, repository, repoId) : this.store.evidenceCovering(q, repository, repoId, digest);
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
