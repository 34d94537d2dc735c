/** Evidence, legal holds and retention (PRODUCT.md §7, §11 "Evidence and holds"). Placeholder until the module lands. */
import type { Families, Protection } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';

export function registerEvidence(_deps: ModuleDeps, _families: Families): Protection {
  return { protectedReason: () => null };
}
