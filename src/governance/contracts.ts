/**
 * What governance modules ask of each other. Each module implements its interface and receives
 * the others' through GovernanceDeps, so they can be built and tested separately.
 */
import type { Tx } from './hooks.js';

export const FAMILIES = ['product', 'scope', 'usage-unit', 'audit-action', 'evidence-type', 'artifact-type', 'sdk-contract'] as const;
export type Family = (typeof FAMILIES)[number];
export type EntryStatus = 'active' | 'deprecated' | 'disabled';

/** One version of a family entry, as the REST view serves it. */
export interface FamilyEntry {
  family: Family;
  id: string;
  version: number;
  status: EntryStatus;
  /** The `_registry/{family}` manifest digest holding this version in canonical CBOR. */
  digest: string;
  /** The entry document: id, owner, description and the family-specific fields. */
  entry: Record<string, unknown> & { id: string; owner: string };
}

export interface Families {
  /** Latest version of an entry (any status), or undefined. */
  entry(family: Family, id: string): FamilyEntry | undefined;
  /** The active (or deprecated) artifact-type entry whose `artifactTypes` lists `artifactType`; disabled entries never match. */
  artifactTypeFor(artifactType: string): FamilyEntry | undefined;
  /** Whether the namespace is governed (fail-closed pushes). */
  isGoverned(namespace: string): boolean;
}

export type TrustDecision = 'trusted' | 'untrusted' | 'unsigned';

export interface TrustVerdict {
  trusted: boolean;
  decision: TrustDecision;
  policy: { namespace: string; mode: 'off' | 'warn' | 'enforce'; version: number };
}

export interface Trust {
  /** Verifies every signature of repository@digest against the namespace policy. */
  evaluate(repository: string, digest: string): Promise<TrustVerdict>;
}

/** Minimal retention/hold view used by GC and deletes outside the evidence module. */
export interface Protection {
  /** Why deleting repository@digest is refused right now, or null when it is not protected. */
  protectedReason(repository: string, digest: string, tx?: Tx): string | null;
  /**
   * protectedReason for many pairs at once (a few queries per batch; GC sweeps use it). Keyed
   * `${repository} ${digest}`. Inside `tx`, the module's guardDelete for the same pair reuses the answer.
   */
  protectedReasons?(items: { repository: string; digest: string }[], tx?: Tx): Map<string, string | null>;
}
