/** Model and policy bundles (PRODUCT.md §8, §11 "Bundles"). Placeholder until the module lands. */
import type { Families, Trust } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';

export function registerBundles(_deps: ModuleDeps, _modules: { families: Families; trust: Trust }): void {}
