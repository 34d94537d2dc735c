/** The package version, for the startup line and the access log (package.json is the one source). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  // package.json sits at the package root, whether we run from src/ (tsx, vitest) or dist/src/.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
    dir = dirname(dir);
  }
  return 'unknown';
}

export const VERSION = readVersion();
