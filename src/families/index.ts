/**
 * Registry families (PRODUCT.md §5, §11 "Families"): the catalogue of stable ids others treat
 * as machine contracts, stored as OCI artifacts in `_registry/{family}` with a JSON REST view,
 * governed namespaces that refuse unknown artifact types, and the audit-action check that makes
 * the event log refuse unknown actions.
 */
import type { Families } from '../governance/contracts.js';
import type { ModuleDeps } from '../governance/module.js';
import { setAuditActionCheck } from '../meta/events.js';
import { Catalogue } from './catalogue.js';
import { familiesHooks } from './hooks.js';
import { registerFamilyRoutes } from './routes.js';

export interface FamiliesModule extends Families {
  /** Settles once the built-in entries are written (first start) or found present. */
  ready: Promise<void>;
  catalogue: Catalogue;
}

/**
 * The catalogue that answers for an event: the one of the database the event is written to
 * (tests run several registries in one process), else the latest registered. drizzle's
 * better-sqlite3 db and transactions expose their connection as `session.client`.
 */
const catalogues = new WeakMap<object, Catalogue>();
let latest: Catalogue | undefined;

function checkAuditAction(action: string, tx: unknown): void {
  const client = (tx as { session?: { client?: unknown } }).session?.client;
  const catalogue = (typeof client === 'object' && client !== null ? catalogues.get(client) : undefined) ?? latest;
  catalogue?.checkAction(action);
}

export function registerFamilies(deps: ModuleDeps): FamiliesModule {
  const catalogue = new Catalogue(deps.db, deps.store, deps.driver, deps.log);
  catalogues.set(deps.db.$client, catalogue);
  latest = catalogue;
  setAuditActionCheck(checkAuditAction);
  const ready = catalogue.seed().then(
    () => undefined,
    (err: unknown) => deps.log.error({ err }, 'families: writing the built-in entries failed; they are retried at the next start'),
  );
  deps.governance.add(familiesHooks(catalogue, deps.driver, deps.config));
  registerFamilyRoutes(deps.app, catalogue, deps.access, ready);

  return {
    ready,
    catalogue,
    entry: (family, id) => catalogue.entry(family, id),
    artifactTypeFor: (artifactType) => catalogue.artifactTypeEntries(artifactType).find((e) => e.status !== 'disabled'),
    isGoverned: (namespace) => catalogue.isGoverned(namespace),
  };
}
