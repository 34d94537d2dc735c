/** What every governance module's register call receives. */
import type { Hono } from 'hono';
import type { Logger } from 'pino';
import type { AccessControl } from '../auth/access.js';
import type { Config } from '../config/index.js';
import type { BlobDriver } from '../data/driver.js';
import type { AppEnv } from '../http/env.js';
import type { Db } from '../meta/db.js';
import type { Metrics } from '../metrics/index.js';
import type { RegistryStore } from '../meta/registry-store.js';
import type { Governance } from './hooks.js';

export interface ModuleDeps {
  app: Hono<AppEnv>;
  config: Config;
  db: Db;
  store: RegistryStore;
  driver: BlobDriver;
  log: Logger;
  access: AccessControl;
  governance: Governance;
  /** Prometheus series of a module (GC runs, webhook deliveries). */
  metrics: Metrics;
  /** Background work registers its stop here; the server awaits it on close, before the database closes. */
  onClose(stop: () => Promise<void> | void): void;
  /** Work that must finish before the server accepts requests (e.g. seeding built-in entries). */
  beforeListen(ready: Promise<unknown>): void;
}
