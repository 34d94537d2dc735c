/** SQL of the families module: entries and their versions, delegations, governed namespaces. */
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { EntryStatus, Family, FamilyEntry } from '../governance/contracts.js';
import type { Tx } from '../governance/hooks.js';
import type { Db } from '../meta/db.js';
import { principals } from '../meta/schema.js';
import { familyDelegations, familyEntries, familyEntryVersions, namespaceGovernance } from './schema.js';

export interface NewVersion {
  family: Family;
  id: string;
  version: number;
  digest: string;
  layerDigest: string;
  entry: Record<string, unknown> & { id: string; owner: string };
  actor: string;
}

type Reader = Pick<Db, 'select'>;

const columns = {
  family: familyEntryVersions.family,
  id: familyEntryVersions.id,
  version: familyEntryVersions.version,
  status: familyEntries.status,
  digest: familyEntryVersions.digest,
  entry: familyEntryVersions.entry,
  createdAt: familyEntryVersions.createdAt,
  latestVersion: familyEntries.latestVersion,
};

type Row = { family: string; id: string; version: number; status: string; digest: string; entry: string; createdAt: number; latestVersion: number };

export type StoredEntry = FamilyEntry & { latestVersion: number; createdAt: string; repository: string };

function present(r: Row): StoredEntry {
  return {
    family: r.family as Family,
    id: r.id,
    version: r.version,
    status: r.status as EntryStatus,
    digest: r.digest,
    entry: JSON.parse(r.entry) as FamilyEntry['entry'],
    latestVersion: r.latestVersion,
    createdAt: new Date(r.createdAt).toISOString(),
    repository: `_registry/${r.family}`,
  };
}

export class FamilyStore {
  constructor(private readonly db: Db) {}

  head(family: Family, id: string, tx: Reader = this.db): { latestVersion: number; status: EntryStatus } | undefined {
    const r = tx
      .select({ latestVersion: familyEntries.latestVersion, status: familyEntries.status })
      .from(familyEntries)
      .where(and(eq(familyEntries.family, family), eq(familyEntries.id, id)))
      .get();
    return r as { latestVersion: number; status: EntryStatus } | undefined;
  }

  /** A version of the entry (the latest when `version` is omitted). */
  get(family: Family, id: string, version?: number): StoredEntry | undefined {
    const v = version === undefined ? eq(familyEntryVersions.version, familyEntries.latestVersion) : eq(familyEntryVersions.version, version);
    const r = this.db
      .select(columns)
      .from(familyEntryVersions)
      .innerJoin(familyEntries, and(eq(familyEntries.family, familyEntryVersions.family), eq(familyEntries.id, familyEntryVersions.id)))
      .where(and(eq(familyEntryVersions.family, family), eq(familyEntryVersions.id, id), v))
      .get();
    return r ? present(r) : undefined;
  }

  /** Latest versions in id order, after `last`, optionally of one status. */
  list(family: Family, limit: number, last?: string, status?: EntryStatus): StoredEntry[] {
    const conditions = [eq(familyEntryVersions.family, family), eq(familyEntryVersions.version, familyEntries.latestVersion)];
    if (last !== undefined) conditions.push(gt(familyEntryVersions.id, last));
    if (status !== undefined) conditions.push(eq(familyEntries.status, status));
    return this.db
      .select(columns)
      .from(familyEntryVersions)
      .innerJoin(familyEntries, and(eq(familyEntries.family, familyEntryVersions.family), eq(familyEntries.id, familyEntryVersions.id)))
      .where(and(...conditions))
      .orderBy(asc(familyEntryVersions.id))
      .limit(limit)
      .all()
      .map(present);
  }

  /** Every latest version of a family (caches: artifact types, audit actions). */
  all(family: Family): StoredEntry[] {
    return this.list(family, Number.MAX_SAFE_INTEGER);
  }

  counts(): Map<string, number> {
    const rows = this.db.select({ family: familyEntries.family, n: sql<number>`count(*)` }).from(familyEntries).groupBy(familyEntries.family).all();
    return new Map(rows.map((r) => [r.family, r.n]));
  }

  /** Writes a version; the caller has checked it is the next one (the primary key re-checks). */
  insertVersion(tx: Tx, v: NewVersion): void {
    tx.insert(familyEntryVersions)
      .values({ family: v.family, id: v.id, version: v.version, digest: v.digest, layerDigest: v.layerDigest, entry: JSON.stringify(v.entry), actor: v.actor })
      .run();
    if (v.version === 1) tx.insert(familyEntries).values({ family: v.family, id: v.id, latestVersion: 1, status: 'active' }).run();
    else tx.update(familyEntries).set({ latestVersion: v.version, updatedAt: Date.now() }).where(and(eq(familyEntries.family, v.family), eq(familyEntries.id, v.id))).run();
  }

  setStatus(tx: Tx, family: Family, id: string, status: EntryStatus): void {
    tx.update(familyEntries).set({ status, updatedAt: Date.now() }).where(and(eq(familyEntries.family, family), eq(familyEntries.id, id))).run();
  }

  /** Whether `digest` is an entry version's manifest in the family (the catalogue owns it). */
  isEntryDigest(family: string, digest: string, tx: Reader = this.db): boolean {
    return tx.select({ v: familyEntryVersions.version }).from(familyEntryVersions).where(and(eq(familyEntryVersions.family, family), eq(familyEntryVersions.digest, digest))).limit(1).get() !== undefined;
  }

  // ---- delegations ---------------------------------------------------------------------------

  delegation(family: Family): string | null {
    return this.db.select({ org: familyDelegations.org }).from(familyDelegations).where(eq(familyDelegations.family, family)).get()?.org ?? null;
  }

  delegations(): Map<string, string> {
    return new Map(this.db.select({ family: familyDelegations.family, org: familyDelegations.org }).from(familyDelegations).all().map((r) => [r.family, r.org]));
  }

  isOrganisation(name: string): boolean {
    return this.db.select({ kind: principals.kind }).from(principals).where(eq(principals.name, name)).get()?.kind === 'org';
  }

  setDelegation(tx: Tx, family: Family, org: string | null): void {
    if (org === null) tx.delete(familyDelegations).where(eq(familyDelegations.family, family)).run();
    else tx.insert(familyDelegations).values({ family, org }).onConflictDoUpdate({ target: familyDelegations.family, set: { org, updatedAt: Date.now() } }).run();
  }

  // ---- governed namespaces -------------------------------------------------------------------

  governedNamespaces(): Set<string> {
    return new Set(this.db.select({ ns: namespaceGovernance.namespace }).from(namespaceGovernance).where(eq(namespaceGovernance.governed, true)).all().map((r) => r.ns));
  }

  setGoverned(tx: Tx, namespace: string, governed: boolean): boolean {
    const before = tx.select({ g: namespaceGovernance.governed }).from(namespaceGovernance).where(eq(namespaceGovernance.namespace, namespace)).get()?.g ?? false;
    tx.insert(namespaceGovernance).values({ namespace, governed }).onConflictDoUpdate({ target: namespaceGovernance.namespace, set: { governed, updatedAt: Date.now() } }).run();
    return before;
  }
}
