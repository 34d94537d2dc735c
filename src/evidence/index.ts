/**
 * Evidence, legal holds and retention (PRODUCT.md §7, §11 "Evidence and holds"): evidence is
 * indexed in its push transaction, deletes of held or retained content are refused inside the
 * delete transaction, and pushed layers that scanners want are scanned in the background, each
 * result pushed back as `scan-report` evidence of the scanned manifest.
 */
import type { Families, Protection } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';
import { evidenceHooks } from './hooks.js';
import { ProtectionPolicy } from './protection.js';
import { registerEvidenceRoutes } from './routes.js';
import { ScanWorker, type ScanOptions } from './scanning/worker.js';
import { EvidenceStore } from './store.js';

export { EVIDENCE_ARTIFACT_TYPE, EVIDENCE_TYPE_ANNOTATION } from './hooks.js';

export interface EvidenceOptions extends Partial<ScanOptions> {
  /** The clock retention is checked against (tests inject one; push times come from the event log). */
  now?: () => number;
}

export interface EvidenceModule extends Protection {
  /** The background scanner (tests wait for it to drain). */
  scans: ScanWorker;
}

export function registerEvidence(deps: ModuleDeps, families: Families, options: EvidenceOptions = {}): EvidenceModule {
  const store = new EvidenceStore(deps.db);
  const policy = new ProtectionPolicy(store, deps.store, families, options.now ?? Date.now);
  const scans = new ScanWorker(deps, store, options);
  deps.governance.add(evidenceHooks(store, policy, families, scans));
  registerEvidenceRoutes(deps.app, { db: deps.db, registry: deps.store, store, policy, access: deps.access });
  scans.start();
  return {
    scans,
    protectedReason(repository, digest, tx) {
      return policy.check(tx ?? deps.db, repository, digest)?.message ?? null;
    },
    protectedReasons(items, tx) {
      return new Map([...policy.checkMany(tx ?? deps.db, items)].map(([k, r]) => [k, r?.message ?? null]));
    },
  };
}
