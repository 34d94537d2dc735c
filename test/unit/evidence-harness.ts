/**
 * A registry with only the OCI routes and the evidence module, over real HTTP, with an
 * in-test Families (so evidence types, governed namespaces and statuses are set directly) and
 * an injectable clock for retention.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createAuth } from '../../src/auth/index.js';
import { loadConfig } from '../../src/config/index.js';
import { FsDriver } from '../../src/data/fs-driver.js';
import { UploadEngine } from '../../src/data/uploads.js';
import { ociError } from '../../src/errors/catalogue.js';
import { registerEvidence, type EvidenceModule, type EvidenceOptions } from '../../src/evidence/index.js';
import type { EntryStatus, Families, Family, FamilyEntry } from '../../src/governance/contracts.js';
import { Governance } from '../../src/governance/hooks.js';
import type { AppEnv } from '../../src/http/env.js';
import { errorResponse } from '../../src/http/errors.js';
import { requestContext } from '../../src/http/middleware.js';
import { createLogger } from '../../src/log.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { registerOci } from '../../src/oci/routes.js';
import { removeDir } from '../helpers/registry.js';

export class TestFamilies implements Families {
  private readonly entries = new Map<string, FamilyEntry>();
  readonly governed = new Set<string>();

  setEvidenceType(id: string, retentionDays: number, status: EntryStatus = 'active'): void {
    const version = (this.entries.get(id)?.version ?? 0) + 1;
    this.entries.set(id, { family: 'evidence-type', id, version, status, digest: `sha256:${'0'.repeat(64)}`, entry: { id, owner: 'test', retentionDays } });
  }

  entry(family: Family, id: string): FamilyEntry | undefined {
    return family === 'evidence-type' ? this.entries.get(id) : undefined;
  }

  artifactTypeFor(): FamilyEntry | undefined {
    return undefined;
  }

  isGoverned(namespace: string): boolean {
    return this.governed.has(namespace);
  }
}

export interface Harness {
  url: string;
  db: Db;
  store: RegistryStore;
  families: TestFamilies;
  evidence: EvidenceModule;
  clock: { now: number | null };
  stop(): Promise<void>;
}

export async function startHarness(options: EvidenceOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'as-evidence-'));
  const config = loadConfig({}, { port: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent', fsync: false, auth: 'none', rateLimitPerSecond: 0 });
  const log = createLogger('silent');
  const db = openDatabase(join(dir, 'metadata.db'));
  const store = new RegistryStore(db);
  const driver = new FsDriver({ root: dir, fsync: false });
  const app = new Hono<AppEnv>();
  app.use('*', requestContext(log));
  const access = (await createAuth(config, db)).register(app);
  const governance = new Governance();
  registerOci(app, { config, store, driver, uploads: new UploadEngine(driver), log, access, governance });
  const families = new TestFamilies();
  // A null clock is the wall clock; tests set it to move past retention.
  const clock: { now: number | null } = { now: null };
  const evidence = registerEvidence({ app, config, db, store, driver, log, access, governance }, families, { now: () => clock.now ?? Date.now(), ...options });
  app.notFound((c) => errorResponse(c, ociError('NOT_FOUND', 'no such endpoint')));
  app.onError((err, c) => errorResponse(c, err));
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    db,
    store,
    families,
    evidence,
    clock,
    async stop() {
      evidence.scans.stop();
      await evidence.scans.idle();
      await new Promise<void>((r) => {
        (server as import('node:http').Server).closeAllConnections();
        server.close(() => r());
      });
      db.$client.close();
      removeDir(dir);
    },
  };
}
