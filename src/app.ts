/** createApp(deps): mounts every module on one Hono app. No side effects on import. */
import { Hono } from 'hono';
import type { AuthModule } from './auth/index.js';
import type { Logger } from 'pino';
import type { Config } from './config/index.js';
import type { BlobDriver } from './data/driver.js';
import type { UploadEngine } from './data/uploads.js';
import type { AppEnv } from './http/env.js';
import { errorResponse } from './http/errors.js';
import { requestContext } from './http/middleware.js';
import type { Db } from './meta/db.js';
import type { RegistryStore } from './meta/registry-store.js';
import { writeBatcher } from './meta/write-batcher.js';
import { registerOci } from './oci/routes.js';
import { registerEventRoutes } from './events/routes.js';
import { ociError } from './errors/catalogue.js';
import { Governance } from './governance/hooks.js';
import { registerGovernance } from './governance/register.js';
import { registerWebhooks } from './webhooks/index.js';
import { registerWebUi } from './ui/index.js';
import { Metrics } from './metrics/index.js';
import { loadOrCreateLogKey, logKeyPath, registerCheckpoints } from './events/checkpoints.js';
import { count, max } from 'drizzle-orm';
import { events, uploads } from './meta/schema.js';
import { storageProbe } from './ops/storage-probe.js';

export interface AppDeps {
  config: Config;
  db: Db;
  store: RegistryStore;
  driver: BlobDriver;
  uploads: UploadEngine;
  log: Logger;
  auth: AuthModule;
  /** Prometheus metrics; the server passes the instance that also wraps the storage driver. */
  metrics?: Metrics;
  /** Background work started by modules registers its stop here; the server awaits them on close. */
  closers?: (() => Promise<void> | void)[];
  /** Work the server awaits before it listens (built-in entries written, …). */
  startup?: Promise<unknown>[];
  /** False while shutting down, so load balancers stop sending traffic. */
  isReady?: () => boolean;
}

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use('*', requestContext(deps.log));
  writeBatcher(deps.db).logTo(deps.log);
  const metrics = deps.metrics ?? new Metrics();
  app.use('*', metrics.middleware());

  const access = deps.auth.register(app, (stop) => void deps.closers?.push(stop));
  const governance = new Governance();
  registerOci(app, { ...deps, access, governance });
  const moduleDeps = {
    app,
    config: deps.config,
    db: deps.db,
    store: deps.store,
    driver: deps.driver,
    log: deps.log,
    access,
    governance,
    metrics,
    onClose: (stop: () => Promise<void> | void) => void deps.closers?.push(stop),
    beforeListen: (ready: Promise<unknown>) => void deps.startup?.push(ready),
  };
  registerGovernance(moduleDeps);
  const webhooks = registerWebhooks(moduleDeps);
  deps.closers?.push(() => webhooks.stop());
  const webUi = registerWebUi(moduleDeps);
  deps.closers?.push(() => webUi.stop());
  const logKey = loadOrCreateLogKey(logKeyPath(deps.config));
  const stopCheckpoints = registerCheckpoints(app, { db: deps.db, access, key: logKey, intervalSeconds: deps.config.checkpointIntervalSeconds });
  deps.closers?.push(async () => stopCheckpoints());

  metrics.gauge('artifact_store_uploads_open', 'Upload sessions open', () => deps.db.select({ n: count() }).from(uploads).get()?.n ?? 0);
  metrics.eventLog(() => deps.db.select({ n: max(events.seq) }).from(events).get()?.n ?? 0);
  app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType }));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  const storage = storageProbe(deps.driver);
  app.get('/readyz', async (c) => {
    const ready = deps.isReady?.() ?? true;
    try {
      deps.db.$client.prepare('SELECT 1').get();
    } catch {
      return c.json({ status: 'database unavailable' }, 503);
    }
    // A failed WAL sync: writes are refused until a restart (meta/write-batcher.ts `fail`).
    const notDurable = writeBatcher(deps.db).failed;
    if (notDurable) return c.json({ status: 'database not durable', reason: notDurable.message }, 503);
    const storageError = await storage();
    if (storageError !== null) return c.json({ status: 'storage unavailable', reason: storageError }, 503);
    return ready ? c.json({ status: 'ready' }) : c.json({ status: 'shutting down' }, 503);
  });

  registerEventRoutes(app, { db: deps.db, access, isLive: () => deps.isReady?.() ?? true });

  app.notFound((c) => errorResponse(c, ociError('NOT_FOUND', 'no such endpoint')));
  app.onError((err, c) => errorResponse(c, err));
  return app;
}
