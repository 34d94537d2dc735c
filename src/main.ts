/** Entry point: load config, start, stop cleanly on SIGTERM/SIGINT. Nothing else. */
import { loadConfig } from './config/index.js';
import { createLogger } from './log.js';
import { startRegistry } from './server.js';

// Blobs, the metadata database and the token signing key are the registry's alone.
process.umask(0o077);
const config = loadConfig();
const log = createLogger(config.logLevel);
const registry = await startRegistry(config, log);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    registry.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
