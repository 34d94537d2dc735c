/**
 * Registry families (PRODUCT.md §5, §11 "Families"): the catalogue of stable ids others treat
 * as machine contracts, stored as OCI artifacts in `_registry/{family}` with a JSON REST view,
 * governed namespaces that refuse unknown artifact types, and the audit-action check that makes
 * the event log refuse unknown actions.
 */
import { resolve } from 'node:path';
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
 * (tests run several registries in one process), found by connection, else by database file
 * (another connection to it, e.g. a CLI helper), else the latest registered. drizzle's
 * better-sqlite3 db and transactions expose their connection as `session.client`.
 */
const byConnection = new WeakMap<object, Catalogue>();
const byFile = new Map<string, Catalogue>();
let latest: Catalogue | undefined;

function checkAuditAction(action: string, tx: unknown): void {
  const client = (tx as { session?: { client?: { name?: unknown } } }).session?.client;
  let catalogue = client ? byConnection.get(client) : undefined;
  if (!catalogue && typeof client?.name === 'string') catalogue = byFile.get(resolve(client.name));
  (catalogue ?? latest)?.checkAction(action);
}

export function registerFamilies(deps: ModuleDeps): FamiliesModule {
  const catalogue = new Catalogue(deps.db, deps.store, deps.driver, deps.log);
  byConnection.set(deps.db.$client, catalogue);
  byFile.set(resolve(deps.db.$client.name), catalogue);
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
