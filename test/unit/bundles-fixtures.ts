/** Bundle stores on an in-memory database, with small in-test Families and Trust. */
import { createHash } from 'node:crypto';
import { BundleService } from '../../src/bundles/service.js';
import { BundleStore, type BundleRow } from '../../src/bundles/store.js';
import type { BlobDriver } from '../../src/data/driver.js';
import type { Families, FamilyEntry, Trust, TrustVerdict } from '../../src/governance/contracts.js';
import { openDatabase } from '../../src/meta/db.js';
import { listEvents } from '../../src/meta/events.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import type { Db } from '../../src/meta/db.js';
import type { ReplayEvent } from '../../src/bundles/replay.js';

export const noFamilies: Families = { entry: () => undefined, artifactTypeFor: () => undefined, isGoverned: () => false };

/** Trust by a fixed mode and a set of trusted digests. */
export function fixedTrust(mode: TrustVerdict['policy']['mode'], trusted: Set<string> = new Set()): Trust {
  return {
    evaluate: async (repository, digest) => ({
      trusted: trusted.has(digest),
      decision: trusted.has(digest) ? 'trusted' : 'unsigned',
      policy: { namespace: repository.split('/')[0]!, mode, version: 3 },
    }),
  };
}

export function governedFamilies(entry: Partial<FamilyEntry['entry']> | null): Families {
  return {
    entry: () => undefined,
    isGoverned: () => true,
    artifactTypeFor: (t) =>
      entry === null ? undefined : { family: 'artifact-type', id: 'model-bundle', version: 1, status: 'active', digest: 'sha256:x', entry: { id: 'model-bundle', owner: 'ml', artifactTypes: [t], ...entry } },
  };
}

export interface Fixture {
  db: Db;
  store: BundleStore;
  service: BundleService;
}

export function fixture(opts: { trust?: Trust; families?: Families } = {}): Fixture {
  const db = openDatabase(':memory:');
  const store = new BundleStore(db);
  // The driver is only read by publish, which these tests do not call.
  const service = new BundleService({ db, store, registry: new RegistryStore(db), driver: {} as BlobDriver, families: opts.families ?? noFamilies, trust: opts.trust ?? fixedTrust('off') });
  return { db, store, service };
}

const PATH: Record<string, string[]> = { REGISTERED: [], CANDIDATE: ['CANDIDATE'], APPROVED: ['CANDIDATE', 'APPROVED'], REJECTED: ['REJECTED'], RETIRED: ['CANDIDATE', 'APPROVED', 'RETIRED'] };

/** Registers a bundle straight into the store (publish's checks are covered end to end) and walks it to `state`. */
export function seedBundle(store: BundleStore, id: string, version: string, state = 'APPROVED', groups: Record<string, string> = {}, family = 'fraud'): BundleRow {
  const digest = `sha256:${createHash('sha256').update(`${id}@${version}`).digest('hex')}`;
  const r = store.register(
    {
      config: { bundle_id: id, bundle_version: version, kind: 'model', model_family: family, required_feature_groups: groups, config_hash: 'h', provenance: { dataset_manifests: [] } },
      kind: 'model',
      repository: 'ml/models',
      digest,
      artifactType: 'application/vnd.artifact-store.model-bundle.v1',
      receipts: [],
    },
    'seeder',
  );
  for (const to of PATH[state]!) store.transition(r.bundle.id, to as never, 'seeder', 'seed');
  return store.byRowId(r.bundle.id)!;
}

export function bundleEvents(db: Db): ReplayEvent[] {
  return listEvents(db, 0, 1_000_000)
    .filter((e) => e.action.startsWith('bundle.'))
    .map((e) => ({ seq: e.seq, action: e.action, after: e.after ? (JSON.parse(e.after) as unknown) : null }));
}

export const eventCount = (db: Db): number => listEvents(db, 0, 1_000_000).length;
