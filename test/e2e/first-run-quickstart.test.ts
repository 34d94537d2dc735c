/**
 * The README's quick start, pasted: its first shell block runs as a script, changed only where a
 * test must (no `npm ci`: this checkout is installed and built; a loopback port of its own; the
 * image comes from a local OCI layout instead of Docker Hub). It must log in with the initial
 * admin password, push, read back, change the password and stop the server with `kill %1`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeLayout } from '../helpers/oci-layout.js';
import { freePort, removeDir } from '../helpers/registry.js';
import { hasBinary } from '../helpers/clients.js';

const work = mkdtempSync(join(tmpdir(), 'as-quickstart-'));
afterAll(() => removeDir(work));

function quickStartBlock(): string {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'));
  const start = section.indexOf('```sh\n') + '```sh\n'.length;
  return section.slice(start, section.indexOf('```\n', start));
}

const hasSkopeo = (): boolean => hasBinary('skopeo');

describe('README quick start', () => {
  it('is what the test runs: npm ci, npm start &, wait for /readyz, log in with the initial password', () => {
    const block = quickStartBlock();
    expect(block).toMatch(/^npm ci\b/m);
    expect(block).toMatch(/^npm start &/m);
    expect(block).toContain('until curl -sf localhost:5000/readyz');
    expect(block).toContain('$(cat data/initial-admin-password)');
    expect(block).toMatch(/^kill %1/m);
  });

  it.runIf(process.env.CI || hasSkopeo())('runs pasted (as a bash script) against a fresh data dir and stops the server at the end', async () => {
    const port = await freePort();
    // A working directory like a fresh checkout's after `npm ci`: the package, no data/.
    const dir = join(work, 'checkout');
    execFileSync('mkdir', ['-p', dir]);
    for (const entry of ['package.json', 'bin', 'dist', 'node_modules', 'drizzle']) symlinkSync(resolve(entry), join(dir, entry));
    writeLayout(join(work, 'img'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
    const script = quickStartBlock()
      .replace(/^npm ci\b.*$/m, '')
      .replaceAll('docker://docker.io/library/alpine:3.20', `oci:${join(work, 'img')}:v1`)
      .replaceAll('localhost:5000', `127.0.0.1:${port}`);
    // `wait`: the server's last log lines, and its exit, before the script ends (npm's own status after SIGTERM varies).
    writeFileSync(join(work, 'quickstart.sh'), `set -euo pipefail\n${script}\nwait || true\n`);
    const run = await new Promise<{ code: number; out: string }>((res) =>
      execFile(
        'timeout',
        ['300', 'bash', join(work, 'quickstart.sh')],
        { cwd: dir, env: { ...process.env, ARTIFACT_STORE_PORT: String(port), ARTIFACT_STORE_HOST: '127.0.0.1', REGISTRY_AUTH_FILE: join(work, 'auth.json') }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` }),
      ),
    );
    expect(run.code, run.out).toBe(0);
    expect(run.out).toContain('"msg":"artifact-store stopped"');
    expect(existsSync(join(dir, 'copy', 'index.json'))).toBe(true);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
