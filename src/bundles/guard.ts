/**
 * Immutability of registered bundles: while a bundle is not RETIRED, its manifest, the blobs it
 * references and its gate receipts (and theirs) cannot be deleted — nor can its repository. Runs
 * inside the delete's transaction (governance guardDelete), so it cannot race a registration.
 * Deleting a tag is allowed: the content stays addressable by digest.
 */
import { and, eq, sql } from 'drizzle-orm';
import { ociError } from '../errors/catalogue.js';
import type { DeleteTarget, GovernanceHooks, Tx } from '../governance/hooks.js';
import { manifestReferences, manifests, repositories } from '../meta/schema.js';
import { GATE_RECEIPT_TYPE } from './format.js';
import type { BundleRow, BundleStore } from './store.js';

const label = (b: BundleRow): string => `${b.bundleId}@${b.bundleVersion} (${b.state})`;

export function bundleDeleteGuard(store: BundleStore): GovernanceHooks {
  /** The live bundle this manifest is, or is a gate receipt of. */
  function protectingManifest(tx: Tx, repoId: number, repository: string, digest: string): BundleRow | undefined {
    const own = store.byContent(repository, digest, tx).find((b) => b.state !== 'RETIRED');
    if (own) return own;
    const m = tx.select({ subject: manifests.subject, artifactType: manifests.artifactType }).from(manifests).where(and(eq(manifests.repositoryId, repoId), eq(manifests.digest, digest))).get();
    if (!m?.subject || m.artifactType !== GATE_RECEIPT_TYPE) return undefined;
    return store.byContent(repository, m.subject, tx).find((b) => b.state !== 'RETIRED');
  }

  function refuse(target: DeleteTarget, b: BundleRow, what: string): never {
    throw ociError('DENIED', `${what} belongs to bundle ${label(b)} registered from ${b.repository}@${b.digest}; it is immutable until the bundle is RETIRED`, {
      detail: { bundle_id: b.bundleId, bundle_version: b.bundleVersion, state: b.state, repository: target.repository, digest: target.digest ?? null },
    });
  }

  let usersStatement: ReturnType<typeof prepareBlobUsers> | undefined;
  const prepareBlobUsers = (tx: Tx) =>
    tx
      .select({ m: manifestReferences.manifestDigest })
      .from(manifestReferences)
      // `+repository_id`: without it SQLite walks every reference of the repository (primary key prefix) instead of the target index.
      .where(and(eq(manifestReferences.targetDigest, sql.placeholder('digest')), sql`+${manifestReferences.repositoryId} = (SELECT ${repositories.id} FROM ${repositories} WHERE ${repositories.name} = ${sql.placeholder('repository')})`))
      .limit(1)
      .prepare();
  // Prepared once on the (single, shared) connection; usable inside any later transaction.
  const blobUsers = (tx: Tx) => (usersStatement ??= prepareBlobUsers(tx));

  return {
    name: 'bundles',
    guardDelete(target, tx) {
      if (target.kind === 'tag') return;
      if (target.kind === 'repository') {
        const live = store.protectingIn(target.repository, tx)[0];
        if (live) refuse(target, live, `repository ${target.repository}`);
        return;
      }
      if (!target.digest) return;
      // A blob no manifest of the repository references cannot belong to a bundle (GC asks this per blob: one prepared query).
      if (target.kind === 'blob' && blobUsers(tx).all({ repository: target.repository, digest: target.digest }).length === 0) return;
      const repoId = tx.select({ id: repositories.id }).from(repositories).where(eq(repositories.name, target.repository)).get()?.id;
      if (repoId === undefined) return;
      if (target.kind === 'manifest') {
        const b = protectingManifest(tx, repoId, target.repository, target.digest);
        if (b) refuse(target, b, `manifest ${target.digest}`);
        return;
      }
      // A blob: protected when any manifest that references it is.
      const users = tx
        .select({ m: manifestReferences.manifestDigest })
        .from(manifestReferences)
        .where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.targetDigest, target.digest)))
        .all();
      for (const u of users) {
        const b = protectingManifest(tx, repoId, target.repository, u.m);
        if (b) refuse(target, b, `blob ${target.digest}`);
      }
    },
  };
}
