/**
 * SQL for bundles. Every mutation is one IMMEDIATE transaction (it takes the write lock before
 * reading, so two processes on one database serialise instead of failing on upgrade) that
 * re-reads what it decides on and appends its event; tables are a view of those events.
 */
import { and, asc, desc, eq, max } from 'drizzle-orm';
import { AppError, ociError } from '../errors/catalogue.js';
import { appendEvent, type EventRow } from '../meta/events.js';
import type { Db } from '../meta/db.js';
import type { Tx } from '../governance/hooks.js';
import type { BundleConfig, BundleKind, ScopeKey } from './format.js';
import { scopeOfKey, scopeString } from './format.js';
import { ACTIVATABLE, checkTransition, type BundleState } from './lifecycle.js';
import { bundleActivations, bundleHistory, bundles, bundleScopeStack, platformFeatureGroups } from './schema.js';

export type BundleRow = typeof bundles.$inferSelect;
export type HistoryRow = typeof bundleHistory.$inferSelect;

export interface ReceiptRef {
  digest: string;
  gate: string;
  result: 'PASS' | 'FAIL';
  evaluated_at: string;
  /** Why a malformed receipt counted as FAIL. */
  invalid?: string;
}

export interface NewBundle {
  config: BundleConfig;
  kind: BundleKind;
  repository: string;
  digest: string;
  artifactType: string;
  receipts: ReceiptRef[];
}

export type RegisterResult = { status: 'ACCEPTED' | 'DUPLICATE'; bundle: BundleRow } | { status: 'CONFLICT'; bundle: BundleRow };

export interface ActivationResult {
  bundle: BundleRow;
  eventSeq: number;
  /** True when the bundle already was the active one of the scope: nothing written. */
  noop: boolean;
  replaced: BundleRow | null;
}

/** A refusal caused by a concurrent writer: the same request may well succeed if sent again. */
export class RetryableConflict extends AppError {
  override get retryable(): boolean {
    return true;
  }
}

const identity = (b: BundleRow) => ({ bundle_id: b.bundleId, bundle_version: b.bundleVersion, repository: b.repository, digest: b.digest });

/** SQLite's signals that another writer got there first (lock timeout, unique index). */
function isWriteRace(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY');
}

export class BundleStore {
  /** The hot read (every resolve): one prepared statement over the unique scope index. */
  private readonly qResolve;

  constructor(private readonly db: Db) {
    // The scope's own row sorts before the tenant-less one (`tenant = ''` is 0 for it).
    this.qResolve = db.$client.prepare(
      `SELECT b.bundle_id AS bundleId, b.bundle_version AS bundleVersion, b.repository AS repository, b.digest AS digest, a.event_seq AS eventSeq, a.tenant AS tenant
       FROM bundle_activations a JOIN bundles b ON b.id = a.bundle
       WHERE a.environment = ? AND a.model_family = ? AND a.tenant IN (?, '')
       ORDER BY a.tenant = '' LIMIT 1`,
    );
  }

  /** Runs `fn` in an IMMEDIATE transaction; write races become a retryable 409 CONFLICT. */
  private write<T>(fn: (tx: Tx) => T): T {
    try {
      return this.db.transaction(fn, { behavior: 'immediate' });
    } catch (err) {
      if (isWriteRace(err)) throw new RetryableConflict('CONFLICT', 'a concurrent change to the same bundle or scope won; send the request again', { detail: { cause: (err as { code: string }).code } });
      throw err;
    }
  }

  // ---- reads --------------------------------------------------------------------------------

  byIdentity(bundleId: string, bundleVersion: string, tx: Pick<Db, 'select'> = this.db): BundleRow | undefined {
    return tx.select().from(bundles).where(and(eq(bundles.bundleId, bundleId), eq(bundles.bundleVersion, bundleVersion))).get();
  }

  byRowId(id: number, tx: Pick<Db, 'select'> = this.db): BundleRow | undefined {
    return tx.select().from(bundles).where(eq(bundles.id, id)).get();
  }

  /** Bundles registered from this exact manifest (usually one). */
  byContent(repository: string, digest: string, tx: Pick<Db, 'select'> = this.db): BundleRow[] {
    return tx.select().from(bundles).where(and(eq(bundles.repository, repository), eq(bundles.digest, digest))).all();
  }

  /** Bundles of a repository that still protect their content (anything not RETIRED). */
  protectingIn(repository: string, tx: Pick<Db, 'select'> = this.db): BundleRow[] {
    return tx.select().from(bundles).where(eq(bundles.repository, repository)).all().filter((b) => b.state !== 'RETIRED');
  }

  history(bundle: number): HistoryRow[] {
    return this.db.select().from(bundleHistory).where(eq(bundleHistory.bundle, bundle)).orderBy(asc(bundleHistory.id)).all();
  }

  /** Everything that happened in a scope (activations, rollbacks, demotions, withdrawals), oldest first. */
  scopeHistory(scope: ScopeKey, limit = 1000): { row: HistoryRow; bundle: BundleRow }[] {
    return this.db
      .select({ row: bundleHistory, bundle: bundles })
      .from(bundleHistory)
      .innerJoin(bundles, eq(bundles.id, bundleHistory.bundle))
      .where(eq(bundleHistory.scope, scopeString(scope)))
      .orderBy(asc(bundleHistory.id))
      .limit(limit)
      .all();
  }

  /** Scopes where the bundle is the active one. */
  activeScopes(bundle: number, tx: Pick<Db, 'select'> = this.db): ScopeKey[] {
    return tx
      .select({ environment: bundleActivations.environment, modelFamily: bundleActivations.modelFamily, tenant: bundleActivations.tenant })
      .from(bundleActivations)
      .where(eq(bundleActivations.bundle, bundle))
      .all();
  }

  /** The active bundle of exactly this scope, with the event that made it active. */
  active(scope: ScopeKey, tx: Pick<Db, 'select'> = this.db): { bundle: BundleRow; eventSeq: number } | undefined {
    const row = tx
      .select({ bundle: bundles, eventSeq: bundleActivations.eventSeq })
      .from(bundleActivations)
      .innerJoin(bundles, eq(bundles.id, bundleActivations.bundle))
      .where(and(eq(bundleActivations.environment, scope.environment), eq(bundleActivations.modelFamily, scope.modelFamily), eq(bundleActivations.tenant, scope.tenant)))
      .get();
    return row ?? undefined;
  }

  /**
   * Resolution: the scope's own activation row, else (for a tenant scope) the tenant-less
   * scope's. Index lookups only; never "latest by timestamp".
   */
  resolve(scope: ScopeKey): { bundle: Pick<BundleRow, 'bundleId' | 'bundleVersion' | 'repository' | 'digest'>; eventSeq: number; resolved: ScopeKey; fallback: boolean } | undefined {
    const row = this.qResolve.get(scope.environment, scope.modelFamily, scope.tenant) as
      | { bundleId: string; bundleVersion: string; repository: string; digest: string; eventSeq: number; tenant: string }
      | undefined;
    if (!row) return undefined;
    const fallback = row.tenant !== scope.tenant;
    return {
      bundle: { bundleId: row.bundleId, bundleVersion: row.bundleVersion, repository: row.repository, digest: row.digest },
      eventSeq: row.eventSeq,
      resolved: fallback ? { ...scope, tenant: '' } : scope,
      fallback,
    };
  }

  /** The scope's rollback stack, newest first. */
  stack(scope: ScopeKey, tx: Pick<Db, 'select'> = this.db): { position: number; bundle: number; eventSeq: number }[] {
    return tx
      .select({ position: bundleScopeStack.position, bundle: bundleScopeStack.bundle, eventSeq: bundleScopeStack.eventSeq })
      .from(bundleScopeStack)
      .where(eq(bundleScopeStack.scope, scopeString(scope)))
      .orderBy(desc(bundleScopeStack.position))
      .all();
  }

  /** What a rollback of the scope would re-activate, or why there is nothing. */
  rollbackTarget(scope: ScopeKey, tx: Pick<Db, 'select'> = this.db): { current: BundleRow | null; target: BundleRow } | { error: string } {
    const current = this.active(scope, tx);
    const entries = this.stack(scope, tx);
    // With an active bundle the top of the stack is it and the target is the one below; after a
    // retirement withdrew the active bundle, the top is the one that was active before it.
    const target = current ? entries[1] : entries[0];
    if (!target) return { error: current ? 'the scope has no earlier activation to roll back to' : 'the scope has no active bundle and no earlier activation' };
    return { current: current?.bundle ?? null, target: this.byRowId(target.bundle, tx)! };
  }

  featureGroups(tx: Pick<Db, 'select'> = this.db): Record<string, string> {
    const rows = tx.select().from(platformFeatureGroups).orderBy(asc(platformFeatureGroups.name)).all();
    return Object.fromEntries(rows.map((r) => [r.name, r.version]));
  }

  // ---- writes -------------------------------------------------------------------------------

  /** `verify` re-checks, inside the transaction, that the content read before it is still there. */
  register(b: NewBundle, actor: string, verify?: (tx: Tx) => void): RegisterResult {
    return this.write((tx) => {
      const existing = this.byIdentity(b.config.bundle_id, b.config.bundle_version, tx);
      if (existing) return { status: existing.digest === b.digest ? 'DUPLICATE' : 'CONFLICT', bundle: existing };
      verify?.(tx);
      // The whole config too, so the log alone rebuilds the record (src/events/replay/bundles.ts).
      const after = { bundle_id: b.config.bundle_id, bundle_version: b.config.bundle_version, kind: b.kind, model_family: b.config.model_family, state: 'REGISTERED', receipts: b.receipts, config: b.config };
      const ev = appendEvent(tx, { actor, action: 'bundle.publish', repository: b.repository, digest: b.digest, after });
      const row = tx
        .insert(bundles)
        .values({
          bundleId: b.config.bundle_id,
          bundleVersion: b.config.bundle_version,
          kind: b.kind,
          modelFamily: b.config.model_family,
          repository: b.repository,
          digest: b.digest,
          artifactType: b.artifactType,
          config: JSON.stringify(b.config),
          receipts: JSON.stringify(b.receipts),
          state: 'REGISTERED',
          submittedBy: actor,
          submittedAt: ev.time,
          registeredSeq: ev.seq,
        })
        .returning()
        .get();
      this.addHistory(tx, row.id, ev, null, 'REGISTERED', null);
      return { status: 'ACCEPTED', bundle: row };
    });
  }

  /** Moves a bundle along a lifecycle edge; repeating its current state writes nothing. */
  transition(bundleRowId: number, to: BundleState, actor: string, reason: string | null): { bundle: BundleRow; eventSeq: number | null } {
    return this.write((tx) => {
      const b = this.byRowId(bundleRowId, tx)!;
      const from = b.state as BundleState;
      const check = checkTransition(from, to);
      if (!check.ok) throw ociError('INVALID_TRANSITION', `${b.bundleId}@${b.bundleVersion}: ${from} → ${to} is not allowed: ${check.reason}`, { detail: { from, to } });
      if (check.noop) return { bundle: b, eventSeq: null };
      // Retiring an ACTIVE bundle withdraws it from its scopes and from every rollback history.
      const withdrawn = to === 'RETIRED' ? this.activeScopes(b.id, tx) : [];
      const after = { ...identity(b), state: to, ...(withdrawn.length ? { withdrawn: withdrawn.map(scopeOfKey) } : {}) };
      const ev = appendEvent(tx, { actor, action: 'bundle.transition', repository: b.repository, digest: b.digest, before: { state: from }, after, reason });
      if (to === 'RETIRED') {
        tx.delete(bundleActivations).where(eq(bundleActivations.bundle, b.id)).run();
        tx.delete(bundleScopeStack).where(eq(bundleScopeStack.bundle, b.id)).run();
      }
      tx.update(bundles).set({ state: to }).where(eq(bundles.id, b.id)).run();
      if (withdrawn.length === 0) this.addHistory(tx, b.id, ev, from, to, null);
      for (const s of withdrawn) this.addHistory(tx, b.id, ev, from, to, scopeString(s));
      return { bundle: { ...b, state: to }, eventSeq: ev.seq };
    });
  }

  /**
   * Makes the bundle the active one of the scope (`check` re-validates inside the transaction),
   * pushing it on the scope's rollback stack; the bundle it replaces goes back to APPROVED unless
   * it is still active in another scope.
   */
  activate(bundleRowId: number, scope: ScopeKey, actor: string, reason: string | null, check: (tx: Tx, b: BundleRow) => void): ActivationResult {
    return this.write((tx) => {
      const b = this.byRowId(bundleRowId, tx)!;
      const current = this.active(scope, tx);
      if (current?.bundle.id === b.id) return { bundle: b, eventSeq: current.eventSeq, noop: true, replaced: null };
      assertActivatable(b);
      check(tx, b);
      const ev = this.setActive(tx, 'bundle.activate', b, scope, current?.bundle ?? null, actor, reason);
      const top = tx.select({ p: max(bundleScopeStack.position) }).from(bundleScopeStack).where(eq(bundleScopeStack.scope, scopeString(scope))).get()?.p ?? 0;
      tx.insert(bundleScopeStack).values({ scope: scopeString(scope), position: top + 1, bundle: b.id, eventSeq: ev.seq }).run();
      return { bundle: { ...b, state: 'ACTIVE' }, eventSeq: ev.seq, noop: false, replaced: current?.bundle ?? null };
    });
  }

  /**
   * Re-activates the bundle below the current one on the scope's stack. `expected` is the target
   * the caller checked (trust) before the transaction: if another writer changed the scope since,
   * the rollback is refused as a retryable conflict rather than re-activating something unchecked.
   */
  rollback(scope: ScopeKey, expected: number, actor: string, reason: string | null, check: (tx: Tx, b: BundleRow) => void): ActivationResult {
    return this.write((tx) => {
      const plan = this.rollbackTarget(scope, tx);
      if ('error' in plan) throw ociError('INVALID_TRANSITION', plan.error, { detail: { scope: scopeOfKey(scope) } });
      if (plan.target.id !== expected) throw new RetryableConflict('CONFLICT', 'the scope changed while the rollback was being checked; send the request again');
      assertActivatable(plan.target);
      check(tx, plan.target);
      const key = scopeString(scope);
      if (plan.current) {
        const top = this.stack(scope, tx)[0]!;
        tx.delete(bundleScopeStack).where(and(eq(bundleScopeStack.scope, key), eq(bundleScopeStack.position, top.position))).run();
      }
      const ev = this.setActive(tx, 'bundle.rollback', plan.target, scope, plan.current, actor, reason);
      const newTop = this.stack(scope, tx)[0]!;
      tx.update(bundleScopeStack).set({ eventSeq: ev.seq }).where(and(eq(bundleScopeStack.scope, key), eq(bundleScopeStack.position, newTop.position))).run();
      return { bundle: { ...plan.target, state: 'ACTIVE' }, eventSeq: ev.seq, noop: false, replaced: plan.current };
    });
  }

  /** Replaces the declared feature groups; returns the event sequence (null when unchanged). */
  setFeatureGroups(groups: Record<string, string>, actor: string, reason: string | null): number | null {
    return this.write((tx) => {
      const before = this.featureGroups(tx);
      const sorted = Object.fromEntries(Object.entries(groups).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      if (JSON.stringify(before) === JSON.stringify(sorted)) return null;
      const ev = appendEvent(tx, { actor, action: 'platform.feature-groups.set', before: { groups: before }, after: { groups: sorted }, reason });
      tx.delete(platformFeatureGroups).run();
      const rows = Object.entries(sorted).map(([name, version]) => ({ name, version }));
      if (rows.length) tx.insert(platformFeatureGroups).values(rows).run();
      return ev.seq;
    });
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** Writes the activation row and event, and moves both bundles' states (same transaction). */
  private setActive(tx: Tx, action: 'bundle.activate' | 'bundle.rollback', b: BundleRow, scope: ScopeKey, replaced: BundleRow | null, actor: string, reason: string | null): EventRow {
    const s = scopeOfKey(scope);
    const ev = appendEvent(tx, {
      actor,
      action,
      repository: b.repository,
      digest: b.digest,
      before: { scope: s, bundle: replaced ? identity(replaced) : null },
      after: { scope: s, ...identity(b) },
      reason,
    });
    const where = and(eq(bundleActivations.environment, scope.environment), eq(bundleActivations.modelFamily, scope.modelFamily), eq(bundleActivations.tenant, scope.tenant));
    tx.delete(bundleActivations).where(where).run();
    tx.insert(bundleActivations).values({ ...scope, bundle: b.id, eventSeq: ev.seq }).run();
    tx.update(bundles).set({ state: 'ACTIVE' }).where(eq(bundles.id, b.id)).run();
    this.addHistory(tx, b.id, ev, b.state, 'ACTIVE', scopeString(scope));
    if (replaced && replaced.id !== b.id && this.activeScopes(replaced.id, tx).length === 0) {
      tx.update(bundles).set({ state: 'APPROVED' }).where(eq(bundles.id, replaced.id)).run();
      this.addHistory(tx, replaced.id, ev, 'ACTIVE', 'APPROVED', scopeString(scope));
    }
    return ev;
  }

  private addHistory(tx: Tx, bundle: number, ev: EventRow, from: string | null, to: string, scope: string | null): void {
    tx.insert(bundleHistory).values({ bundle, eventSeq: ev.seq, action: ev.action, fromState: from, toState: to, scope, actor: ev.actor, reason: ev.reason, time: ev.time }).run();
  }
}

export function assertActivatable(b: BundleRow): void {
  if (!ACTIVATABLE.includes(b.state as BundleState)) {
    throw ociError('INVALID_TRANSITION', `${b.bundleId}@${b.bundleVersion} is ${b.state}; only APPROVED bundles can be activated`, { detail: { state: b.state, required: 'APPROVED' } });
  }
}
