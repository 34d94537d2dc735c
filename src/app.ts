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
import { registerOci } from './oci/routes.js';
import { registerEventRoutes } from './events/routes.js';
import { ociError } from './errors/catalogue.js';
import { Governance } from './governance/hooks.js';
import { registerGovernance } from './governance/register.js';
import { registerWebhooks } from './webhooks/index.js';

export interface AppDeps {
  config: Config;
  db: Db;
  store: RegistryStore;
  driver: BlobDriver;
  uploads: UploadEngine;
  log: Logger;
  auth: AuthModule;
  /** Background work started by modules registers its stop here; the server awaits them on close. */
  closers?: (() => Promise<void>)[];
  /** False while shutting down, so load balancers stop sending traffic. */
  isReady?: () => boolean;
}

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use('*', requestContext(deps.log));

  const access = deps.auth.register(app);
  const governance = new Governance();
  registerOci(app, { ...deps, access, governance });
  const moduleDeps = { app, config: deps.config, db: deps.db, store: deps.store, driver: deps.driver, log: deps.log, access, governance };
  registerGovernance(moduleDeps);
  const webhooks = registerWebhooks(moduleDeps);
  deps.closers?.push(() => webhooks.stop());

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => {
    const ready = deps.isReady?.() ?? true;
    try {
      deps.db.$client.prepare('SELECT 1').get();
    } catch {
      return c.json({ status: 'database unavailable' }, 503);
    }
    return ready ? c.json({ status: 'ready' }) : c.json({ status: 'shutting down' }, 503);
  });

  registerEventRoutes(app, { db: deps.db, access, isLive: () => deps.isReady?.() ?? true });

  app.notFound((c) => errorResponse(c, ociError('NOT_FOUND', 'no such endpoint')));
  app.onError((err, c) => errorResponse(c, err));
  return app;
}
