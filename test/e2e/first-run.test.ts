/**
 * A newcomer's first `artifact-store serve` on an empty data dir: an administrator exists with
 * a one-time password file (0600, named in the log, never the secret in it), usable for a push;
 * changing the password removes the file; the CLI bootstrap run first disables all of it; the
 * data dir and everything in it are private (0700 / 0600) whichever writer creates them.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { basic } from '../helpers/identities.js';
import { randomBlob, sha256 } from '../helpers/http.js';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';
import { hasBinary } from '../helpers/clients.js';

const run = promisify(execFile);
const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const work = mkdtempSync(join(tmpdir(), 'as-first-run-'));
afterAll(() => removeDir(work));

const mode = (path: string): number => statSync(path).mode & 0o777;
/** Every entry under dir (recursively) with its permission bits. */
function modes(dir: string): { path: string; mode: number; dir: boolean }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((p) => {
    const full = join(dir, p);
    const st = statSync(full);
    return { path: p, mode: st.mode & 0o777, dir: st.isDirectory() };
  });
}
const hasSkopeo = (): boolean => hasBinary('skopeo');
const tokenAuth = { ARTIFACT_STORE_AUTH: 'token', ARTIFACT_STORE_RATE_LIMIT_PER_SECOND: '0' };

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (check()) return true;
  return check();
}

describe('first run', () => {
  it('creates an admin whose password is only in a 0600 file; it works; changing it removes the file', async () => {
    // Parent exists, the data dir itself does not: the server creates it.
    const dataDir = join(work, 'fresh', 'data');
    const reg = await startRegistryProcess({ ...tokenAuth, ARTIFACT_STORE_DATA_DIR: dataDir });
    try {
      const file = join(dataDir, 'initial-admin-password');
      expect(mode(dataDir)).toBe(0o700);
      expect(mode(file)).toBe(0o600);
      const password = readFileSync(file, 'utf8').trim();
      expect(password.length).toBeGreaterThanOrEqual(20);
      for (const entry of modes(dataDir)) expect(entry.mode, entry.path).toBe(entry.dir ? 0o700 : 0o600);

      // The log names the file, never the secret.
      expect(reg.output()).toContain(file);
      expect(reg.output()).not.toContain(password);

      const admin = basic('admin', password);
      expect((await fetch(`${reg.url}/v2/`, { headers: { Authorization: admin } })).status).toBe(200);
      expect((await fetch(`${reg.url}/api/v1/orgs`, { method: 'POST', headers: { Authorization: admin, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'team' }) })).status).toBe(201);
      const blob = randomBlob(1000);
      expect((await fetch(`${reg.url}/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob, headers: { Authorization: admin } })).status).toBe(201);
      expect((await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: basic('admin', 'wrong-password-123') } })).status).toBe(401);

      const change = await fetch(`${reg.url}/api/v1/users/admin/password`, { method: 'PUT', headers: { Authorization: admin, 'Content-Type': 'application/json' }, body: JSON.stringify({ password: 'a-new-long-admin-password' }) });
      expect(change.status).toBeLessThan(300);
      expect(await waitFor(() => !existsSync(file), 30_000)).toBe(true);
    } finally {
      await reg.stop();
    }
    // A restart does not recreate it: an administrator exists.
    const again = await startRegistryProcess({ ...tokenAuth, ARTIFACT_STORE_DATA_DIR: dataDir });
    try {
      expect(existsSync(join(dataDir, 'initial-admin-password'))).toBe(false);
      expect((await fetch(`${again.url}/v2/`, { headers: { Authorization: basic('admin', 'a-new-long-admin-password') } })).status).toBe(200);
    } finally {
      await again.stop();
    }
  });

  it('the CLI run first (fresh dir) creates it 0700 / 0600 and disables the password file', async () => {
    const dataDir = join(work, 'cli-first', 'data');
    const env = { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir };
    const child = execFile(process.execPath, ['bin/artifact-store.js', 'user', 'create', 'root', '--admin', '--password-stdin'], { env });
    child.stdin!.end('a-long-admin-password\n');
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
    const isPrivate = (): void => {
      expect(mode(dataDir)).toBe(0o700);
      for (const entry of modes(dataDir)) expect(entry.mode, entry.path).toBe(entry.dir ? 0o700 : 0o600);
    };
    // The CLI's SQLite open creates the data dir (metadata.db); with metadata in PostgreSQL it writes no file there.
    if (!onPostgres || existsSync(dataDir)) isPrivate();

    const reg = await startRegistryProcess({ ...tokenAuth, ARTIFACT_STORE_DATA_DIR: dataDir });
    try {
      isPrivate();
      expect(existsSync(join(dataDir, 'initial-admin-password'))).toBe(false);
      expect(reg.output()).not.toContain('initial-admin-password');
      expect((await fetch(`${reg.url}/v2/`, { headers: { Authorization: basic('root', 'a-long-admin-password') } })).status).toBe(200);
    } finally {
      await reg.stop();
    }
  });

  // Real-client proof of the README's quick start login; skopeo is always there in CI.
  it.runIf(process.env.CI || hasSkopeo())('skopeo logs in with the file\'s password and pushes', async () => {
    const dataDir = join(work, 'skopeo', 'data');
    const reg = await startRegistryProcess({ ...tokenAuth, ARTIFACT_STORE_DATA_DIR: dataDir });
    try {
      const host = reg.url.replace('http://', '');
      const password = readFileSync(join(dataDir, 'initial-admin-password'), 'utf8').trim();
      const authEnv = { ...process.env, REGISTRY_AUTH_FILE: join(work, 'skopeo-auth.json') };
      await run('skopeo', ['login', '--tls-verify=false', '-u', 'admin', '-p', password, host], { env: authEnv });
      await fetch(`${reg.url}/api/v1/orgs`, { method: 'POST', headers: { Authorization: basic('admin', password), 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'team' }) });
      writeLayout(join(work, 'img'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
      await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(work, 'img')}:v1`, `docker://${host}/team/app:1`], { env: authEnv, timeout: 60_000 });
      const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${host}/team/app`], { env: authEnv })).stdout) as { Tags: string[] };
      expect(tags.Tags).toEqual(['1']);
    } finally {
      await reg.stop();
    }
  });
});
