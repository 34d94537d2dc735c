/** What the OCI modules need, injected by createApp. */
import type { Logger } from 'pino';
import type { AccessControl } from '../auth/access.js';
import type { Config } from '../config/index.js';
import type { BlobDriver } from '../data/driver.js';
import type { UploadEngine } from '../data/uploads.js';
import type { RegistryStore } from '../meta/registry-store.js';
import type { Governance } from '../governance/hooks.js';

export interface OciDeps {
  config: Config;
  store: RegistryStore;
  driver: BlobDriver;
  uploads: UploadEngine;
  log: Logger;
  access: AccessControl;
  governance: Governance;
}
