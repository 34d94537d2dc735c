/**
 * Entries are ordinary OCI artifacts: skopeo copies `_registry/artifact-type:model-bundle` to an
 * OCI layout and into a fresh registry with the digest the REST view names, and the copied layer
 * decodes to the entry. skopeo (like docker and oras) cannot parse a repository component that
 * starts with `_`, so it addresses the catalogue as `registry/…`, the alias /v2/ answers for.
 * Runs wherever skopeo is installed, and always in CI (where a missing skopeo fails).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor } from '../../src/families/cbor.js';
import { removeDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);
const skopeo = async (...args: string[]): Promise<string> => (await run('skopeo', args, { timeout: 60_000 })).stdout;
const hasSkopeo = ((): boolean => {
  try {
    execFileSync('skopeo', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.runIf(hasSkopeo || !!process.env.CI)('families with skopeo', () => {
  let source: TestRegistry;
  let mirror: TestRegistry;
  const work = mkdtempSync(join(tmpdir(), 'as-families-skopeo-'));
  const host = (r: TestRegistry): string => r.url.replace('http://', '');

  beforeAll(async () => {
    source = await startTestRegistry();
    mirror = await startTestRegistry();
  });
  afterAll(async () => {
    await source?.stop();
    await mirror?.stop();
    removeDir(work);
  });

  it('copies an entry to an OCI layout and into a fresh registry, digest preserved', async () => {
    const rest = (await (await fetch(`${source.url}/api/v1/families/artifact-type/entries/model-bundle`)).json()) as { digest: string; entry: unknown };
    const layout = join(work, 'layout');
    await skopeo('copy', '--preserve-digests', '--src-tls-verify=false', `docker://${host(source)}/registry/artifact-type:model-bundle`, `oci:${layout}:model-bundle`);
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(rest.digest);
    const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', rest.digest.slice(7)), 'utf8')) as { artifactType: string; layers: { digest: string; mediaType: string }[] };
    expect(manifest.artifactType).toBe('application/vnd.artifact-store.registry.artifact-type.v1');
    expect(manifest.layers[0]!.mediaType).toBe('application/vnd.artifact-store.registry.entry.v1+cbor');
    expect(decodeCbor(readFileSync(join(layout, 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7))))).toEqual(rest.entry);

    // Back into a fresh registry, from the layout and registry to registry.
    await skopeo('copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:model-bundle`, `docker://${host(mirror)}/mirror/artifact-type:model-bundle`);
    await skopeo('copy', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${host(source)}/registry/artifact-type:model-bundle`, `docker://${host(mirror)}/direct/artifact-type:model-bundle`);
    for (const repo of ['mirror/artifact-type', 'direct/artifact-type']) {
      const res = await fetch(`${mirror.url}/v2/${repo}/manifests/model-bundle`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-content-digest')).toBe(rest.digest);
    }
    // The fresh registry's own built-in is the same artifact: same entry, same digest.
    const own = (await (await fetch(`${mirror.url}/api/v1/families/artifact-type/entries/model-bundle`)).json()) as { digest: string };
    expect(own.digest).toBe(rest.digest);
  });
});
