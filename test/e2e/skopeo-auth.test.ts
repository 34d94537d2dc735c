/**
 * Real clients against an authenticating registry process: skopeo with --creds pushes and pulls
 * a private repository, is refused on another org's; `skopeo login` stores credentials that
 * later commands use; the conformance suite runs with credentials.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../oci-conformance/config.js';
import { runConformance } from '../../oci-conformance/suite.js';
import { PASSWORD, withIdentities } from '../helpers/identities.js';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';

const run = promisify(execFile);
let reg: Awaited<ReturnType<typeof startRegistryProcess>>;
let host: string;
const work = mkdtempSync(join(tmpdir(), 'as-skopeo-auth-'));
const authFile = join(work, 'auth.json');
const skopeo = async (...args: string[]): Promise<string> => (await run('skopeo', args, { timeout: 60_000, env: { ...process.env, REGISTRY_AUTH_FILE: authFile } })).stdout;

beforeAll(async () => {
  reg = await startRegistryProcess({ ARTIFACT_STORE_AUTH: 'token' });
  host = reg.url.replace('http://', '');
  await withIdentities(reg.dataDir, async (_ids, s) => {
    const alice = await s.user('alice');
    const bob = await s.user('bob');
    s.org('acme', alice);
    s.org('globex', bob);
  });
  writeLayout(join(work, 'img'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
});
afterAll(async () => {
  await reg?.stop();
  removeDir(work);
});

describe('skopeo against token auth', () => {
  it('pushes and pulls a private repository with --creds', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `alice:${PASSWORD}`, `oci:${join(work, 'img')}:v1`, `docker://${host}/acme/private:1`);
    const info = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--creds', `alice:${PASSWORD}`, `docker://${host}/acme/private:1`)) as { Architecture: string };
    expect(info.Architecture).toBe('amd64');
    await expect(skopeo('inspect', '--tls-verify=false', `docker://${host}/acme/private:1`)).rejects.toThrow(/unauthorized|authentication required|denied/i);
  });

  it('is refused on another organisation\'s repository', async () => {
    await expect(
      skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `bob:${PASSWORD}`, `oci:${join(work, 'img')}:v1`, `docker://${host}/acme/private:2`),
    ).rejects.toThrow(/denied|unauthorized/i);
    await expect(skopeo('inspect', '--tls-verify=false', '--creds', `bob:${PASSWORD}`, `docker://${host}/acme/private:1`)).rejects.toThrow(/denied|unauthorized/i);
  });

  it('skopeo login stores credentials that later commands use', async () => {
    await expect(skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', 'not the password', host)).rejects.toThrow();
    await skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', PASSWORD, host);
    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${host}/acme/private`)) as { Tags: string[] };
    expect(tags.Tags).toEqual(['1']);
    await skopeo('logout', host);
  });

  it('passes the conformance suite with credentials', async () => {
    const cfg = configFromEnv({ OCI_ROOT_URL: reg.url, OCI_NAMESPACE: 'acme/conformance', OCI_USERNAME: 'alice', OCI_PASSWORD: PASSWORD, OCI_REQUIRE_OPTIONAL: '1', OCI_SEED: 'auth' });
    const results = await runConformance(cfg);
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => !r.ok || r.skipped).map((r) => `${r.name}: ${r.detail ?? ''}`)).toEqual([]);
  }, 300_000);
});
