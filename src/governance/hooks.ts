/**
 * How governance modules (families, trust, evidence, bundles, operations) take part in OCI
 * requests without the OCI routes knowing them. Each module registers a `GovernanceHooks`; the
 * OCI layer calls them at fixed points:
 *
 * - `checkPush`: before a manifest is stored, asynchronously (may read blobs: configs, gate
 *   receipts). Throw an AppError to refuse. Not atomic with the write: only for checks on the
 *   pushed content itself.
 * - `guardPush` / `guardDelete`: inside the write transaction, synchronously, so a check and
 *   the write it protects cannot interleave with another request (holds, retention, immutable
 *   tags, quotas, registered bundles). Throw an AppError to refuse; the transaction rolls back.
 * - `afterPush`: inside the same transaction, after the manifest and tags are written: record
 *   module rows (evidence index, …) atomically with the push.
 * - `checkPull`: before a manifest GET/HEAD is answered (trust enforceOnPull).
 *
 * Synchronous hooks run on the one better-sqlite3 connection, so they may use their stores
 * directly; they receive `tx` so a later async driver keeps them in the transaction.
 */
import type { Caller } from '../auth/authenticate.js';
import type { ParsedManifest } from '../core/manifest.js';
import type { Db } from '../meta/db.js';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface ManifestPush {
  repository: string;
  digest: string;
  parsed: ParsedManifest;
  /** The exact pushed bytes. */
  payload: Buffer;
  /** Tags this PUT points at the manifest. */
  tags: string[];
  caller: Caller;
  actor: string;
}

export interface DeleteTarget {
  repository: string;
  kind: 'manifest' | 'tag' | 'blob' | 'repository';
  /** The manifest or blob digest (for a tag: the digest it points at). */
  digest?: string;
  tag?: string;
  actor: string;
  /** `gc` when garbage collection asks, so hooks can word their answer for it. */
  origin: 'api' | 'gc';
}

export interface PullTarget {
  repository: string;
  digest: string;
  /** The tag the manifest was asked for by, when it was (per-tag download counts). */
  tag?: string;
  /** The manifest's media type and artifact type (signatures stay readable under enforcement). */
  artifactType: string | null;
  subject: string | null;
  caller: Caller;
}

export interface GovernanceHooks {
  name: string;
  checkPush?(push: ManifestPush): Promise<void> | void;
  guardPush?(push: ManifestPush, tx: Tx): void;
  afterPush?(push: ManifestPush, tx: Tx, inserted: boolean): void;
  guardDelete?(target: DeleteTarget, tx: Tx): void;
  checkPull?(target: PullTarget): Promise<void> | void;
}

/** The registered hooks, called in registration order (families first: others look types up there). */
export class Governance {
  private readonly hooks: GovernanceHooks[] = [];

  add(h: GovernanceHooks): void {
    this.hooks.push(h);
  }

  async checkPush(push: ManifestPush): Promise<void> {
    for (const h of this.hooks) await h.checkPush?.(push);
  }

  guardPush(push: ManifestPush, tx: Tx): void {
    for (const h of this.hooks) h.guardPush?.(push, tx);
  }

  afterPush(push: ManifestPush, tx: Tx, inserted: boolean): void {
    for (const h of this.hooks) h.afterPush?.(push, tx, inserted);
  }

  guardDelete(target: DeleteTarget, tx: Tx): void {
    for (const h of this.hooks) h.guardDelete?.(target, tx);
  }

  /** On every manifest pull: synchronous while every hook answers synchronously (no promise to await). */
  checkPull(target: PullTarget, from = 0): Promise<void> | void {
    for (let i = from; i < this.hooks.length; i++) {
      const pending = this.hooks[i]!.checkPull?.(target);
      if (pending) return pending.then(() => this.checkPull(target, i + 1));
    }
  }
}
