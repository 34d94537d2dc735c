/**
 * Model and policy bundles (PRODUCT.md §8, §11 "Bundles"): gated publish of OCI artifacts, a
 * governed lifecycle, per-scope activation with rollback, and deterministic resolution.
 */
import type { Families, Trust } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';
import { bundleDeleteGuard } from './guard.js';
import { registerBundleRoutes } from './routes.js';
import { BundleService } from './service.js';
import { BundleStore } from './store.js';

export interface BundlesModule {
  store: BundleStore;
  service: BundleService;
}

/** The module of the registry started last in this process (the CLI starts one and calls it). */
let latest: BundlesModule | undefined;
export const latestBundles = (): BundlesModule | undefined => latest;

export function registerBundles(deps: ModuleDeps, modules: { families: Families; trust: Trust }): BundlesModule {
  const store = new BundleStore(deps.db);
  const service = new BundleService({ db: deps.db, store, registry: deps.store, driver: deps.driver, families: modules.families, trust: modules.trust });
  deps.governance.add(bundleDeleteGuard(store));
  registerBundleRoutes(deps.app, deps.access, store, service);
  latest = { store, service };
  return latest;
}
