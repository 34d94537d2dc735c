/** Signatures and trust (PRODUCT.md §6, §11 "Trust"). Placeholder until the module lands. */
import type { Families, Trust } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';

export function registerTrust(_deps: ModuleDeps, _families: Families): Trust {
  return { evaluate: async (repository) => ({ trusted: false, decision: 'unsigned', policy: { namespace: repository.split('/')[0]!, mode: 'off', version: 0 } }) };
}
