/**
 * Mounts the governance modules in dependency order: families first (everyone looks types up
 * there), then trust and evidence, then bundles (which need all three).
 */
import { registerBundles } from '../bundles/index.js';
import { registerEvidence } from '../evidence/index.js';
import { registerFamilies } from '../families/index.js';
import { registerOperations } from '../operations/index.js';
import { registerTrust } from '../trust/index.js';
import type { ModuleDeps } from './module.js';

export function registerGovernance(deps: ModuleDeps): void {
  const families = registerFamilies(deps);
  deps.beforeListen(families.ready);
  const trust = registerTrust(deps, families);
  const protection = registerEvidence(deps, families);
  deps.onClose(async () => {
    protection.scans.stop();
    await protection.scans.idle();
  });
  registerBundles(deps, { families, trust });
  registerOperations(deps, { protection });
}
