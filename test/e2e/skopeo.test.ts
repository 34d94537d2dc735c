/**
 * Real OCI client round trip: Debian's skopeo pushes OCI layouts (single image and multi-arch
 * index) to the registry running as its own process, inspects, lists tags, pulls back and
 * deletes. CI installs skopeo (.ci/run); elsewhere install it with `apt-get install skopeo`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';

const run = promisify(execFile);
const skopeo = async (...args: string[]): Promise<string> => (await run('skopeo', args, { timeout: 60_000 })).stdout;

let reg: Awaited<ReturnType<typeof startRegistryProcess>>;
let host: string;
const work = mkdtempSync(join(tmpdir(), 'as-skopeo-'));

beforeAll(async () => {
  reg = await startRegistryProcess();
  host = reg.url.replace('http://', '');
});
afterAll(async () => {
  await reg?.stop();
  removeDir(work);
});

describe('skopeo round trip', () => {
  it('copies a single image in and out with the digest preserved', async () => {
    const { top } = writeLayout(join(work, 'single'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${join(work, 'single')}:v1`, `docker://${host}/team/app:1`);
    const info = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${host}/team/app:1`)) as { Digest: string; Architecture: string };
    expect(info.Digest).toBe(top.digest);
    expect(info.Architecture).toBe('amd64');
    await skopeo('copy', '--src-tls-verify=false', `docker://${host}/team/app:1`, `oci:${join(work, 'back')}:v1`);
    const index = JSON.parse(readFileSync(join(work, 'back', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(top.digest);
  });

  it('copies a multi-arch index with --all, byte for byte', async () => {
    const { top } = writeLayout(join(work, 'multi'), 'm', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${join(work, 'multi')}:m`, `docker://${host}/team/multi:1`);
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/team/multi:1`);
    expect(raw).toBe(top.bytes.toString());
    await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${host}/team/multi:1`, `oci:${join(work, 'multi-back')}:m`);
    const index = JSON.parse(readFileSync(join(work, 'multi-back', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(top.digest);
  });

  it('lists tags and deletes', async () => {
    const { top } = writeLayout(join(work, 'tags'), 't', [{ os: 'linux', architecture: 'amd64' }]);
    for (const tag of ['b', 'a']) await skopeo('copy', '--dest-tls-verify=false', `oci:${join(work, 'tags')}:t`, `docker://${host}/team/tags:${tag}`);
    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${host}/team/tags`)) as { Tags: string[] };
    expect(tags.Tags).toEqual(['a', 'b']);
    await skopeo('delete', '--tls-verify=false', `docker://${host}/team/tags@${top.digest}`);
    await expect(skopeo('inspect', '--tls-verify=false', `docker://${host}/team/tags:a`)).rejects.toThrow(/manifest unknown/);
  });
});
