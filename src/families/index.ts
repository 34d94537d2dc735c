/** Registry families (PRODUCT.md §5, §11 "Families"). Placeholder until the module lands. */
import type { Families } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';

export function registerFamilies(_deps: ModuleDeps): Families {
  return { entry: () => undefined, artifactTypeFor: () => undefined, isGoverned: () => false };
}
