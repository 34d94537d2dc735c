/**
 * The server process (`artifact-store serve`, `npm start`): load config, make sure someone can
 * log in, start, stop cleanly on SIGTERM/SIGINT. Nothing else.
 */
import { loadConfig, unknownEnvironmentVariables, type Config } from './config/index.js';
import { ensureInitialAdmin, watchInitialPassword } from './first-run.js';
import { createLogger } from './log.js';
import { metadataTarget, openDatabase } from './meta/db.js';
import { startRegistry } from './server.js';
import { configProblem } from './startup-errors.js';
import { VERSION } from './version.js';

// Blobs, the metadata database and the token signing key are the registry's alone.
process.umask(0o077);
let config: Config;
try {
  config = loadConfig();
} catch (err) {
  // A configuration problem is the operator's to fix: say what it is (exit 2), no stack trace.
  process.stderr.write(`artifact-store: ${configProblem(err)}\n`);
  process.exit(2);
}
const log = createLogger(config.logLevel, { batch: true });
log.info({ version: VERSION, node: process.version }, 'artifact-store starting');
for (const warning of unknownEnvironmentVariables()) log.warn(warning);

// Before listening, so whoever waits for /readyz finds the password file already written.
const firstRunDb = config.auth === 'token' ? openDatabase(metadataTarget(config)) : undefined;
const firstRun = firstRunDb ? await ensureInitialAdmin(firstRunDb, config.dataDir, log) : undefined;
const stopWatching = firstRunDb && firstRun ? watchInitialPassword(firstRunDb, firstRun, log) : undefined;
if (firstRunDb && !firstRun) firstRunDb.$client.close();

const registry = await startRegistry(config, log);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    stopWatching?.();
    registry.close().then(
      () => {
        if (firstRun) firstRunDb?.$client.close();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
