#!/usr/bin/env node
/**
 * The one entry point: `artifact-store serve` runs the registry, anything else is the operator
 * CLI (`artifact-store user create …`). Both run in THIS process (imported, not spawned), so a
 * SIGTERM sent to it reaches the server's own handler: nothing sits in between to swallow it.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/src/', import.meta.url);
if (!existsSync(fileURLToPath(new URL('main.js', dist)))) {
  process.stderr.write('artifact-store is not built: run `npm run build` (npm ci/install does it through `prepare`)\n');
  process.exit(2);
}
// Blobs, metadata.db and the signing key are the registry's alone: every file this process
// creates (server or CLI) is 0600 and every directory 0700.
process.umask(0o077);
if (process.argv[2] === 'serve') {
  process.argv.splice(2, 1);
  // Under npm (`npm start`, `npx artifact-store serve`) a shell may sit between npm and us and
  // die of the SIGTERM npm forwards without passing it on: when our parent goes away, stop as
  // if we had been sent SIGTERM ourselves, instead of living on as an orphan holding the port.
  if (process.env.npm_command) {
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && process.kill(process.pid, 'SIGTERM'), 500).unref();
  }
  await import(new URL('main.js', dist).href);
} else {
  await import(new URL('cli.js', dist).href);
}
