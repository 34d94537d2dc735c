/**
 * Real OCI client: containerd 1.6 (Debian's `containerd` package) through `ctr`, against the
 * registry running as its own process. A private containerd daemon (own root, state and socket,
 * native snapshotter) is started for this file and killed by PID afterwards.
 *
 * What containerd exercises that skopeo does not: blob GETs with `Accept: <media type>, *\/*`,
 * pushes as a POST then one monolithic PUT to the upload Location with `?digest=` appended,
 * cross-repository mounts (`POST ...?mount=&from=`) chosen from the
 * `containerd.io/distribution.source.<host>` labels it keeps from a pull, and unpacking (the layer
 * bytes must match the config's diff_ids). CI installs containerd and skopeo (.ci/run);
 * elsewhere `apt-get install containerd skopeo`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  makeRealImage,
  requireBinary,
  runCommand,
  sha256OfCommand,
  startContainerd,
  writeImageLayout,
  writeIndexLayout,
  type Containerd,
  type RealImage,
} from '../helpers/clients.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';

let reg: Awaited<ReturnType<typeof startRegistryProcess>>;
let ctrd: Containerd;
/** Two spellings of the same registry: containerd keys distribution-source labels by host. */
let host: string;
let ipHost: string;
const work = mkdtempSync(join(tmpdir(), 'as-ctr-'));
let image: RealImage;

interface RegistryEvent {
  action: string;
  repository: string | null;
  digest: string | null;
  tag: string | null;
}

async function events(): Promise<RegistryEvent[]> {
  const res = await fetch(`${reg.url}/api/v1/events?limit=1000`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: RegistryEvent[] }).events;
}

/** Manifest digest and bytes as the registry serves them (HEAD and GET must agree). */
async function manifestOf(repo: string, ref: string): Promise<{ digest: string; body: string; type: string }> {
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
  const head = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: 'HEAD', headers: { accept } });
  expect(head.status).toBe(200);
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { headers: { accept } });
  expect(res.status).toBe(200);
  const digest = res.headers.get('docker-content-digest')!;
  expect(head.headers.get('docker-content-digest')).toBe(digest);
  return { digest, body: await res.text(), type: res.headers.get('content-type')! };
}

/** sha256 of what containerd's content store holds under `digest` (`ctr content get`). */
const contentDigest = (digest: string): Promise<string> => sha256OfCommand('ctr', ['--address', ctrd.address, 'content', 'get', digest]);

beforeAll(async () => {
  requireBinary('skopeo', 'skopeo');
  reg = await startRegistryProcess();
  const port = new URL(reg.url).port;
  host = `localhost:${port}`;
  ipHost = `127.0.0.1:${port}`;
  ctrd = await startContainerd();
  image = makeRealImage();
  writeImageLayout(join(work, 'app'), 'v1', image);
  await runCommand('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(work, 'app')}:v1`, `docker://${host}/team/app:1`]);
});

afterAll(async () => {
  await ctrd?.stop();
  await reg?.stop();
  removeDir(work);
});

describe('containerd (ctr) against the registry', () => {
  it('pulls and unpacks an image pushed by skopeo, bytes intact', async () => {
    await ctrd.ctr('images', 'pull', '--plain-http', `${host}/team/app:1`);
    const ls = (await ctrd.ctr('images', 'ls')).stdout;
    const row = ls.split('\n').find((l) => l.startsWith(`${host}/team/app:1 `));
    expect(row, ls).toBeDefined();
    expect(row).toContain(image.manifest.digest);
    expect(row).toContain('application/vnd.oci.image.manifest.v1+json');
    // Unpacked: a snapshot exists (the diff_id matched what the registry served, uncompressed).
    expect((await ctrd.ctr('images', 'check')).stdout).toMatch(new RegExp(`${host}/team/app:1\\s.*complete`));
    expect((await ctrd.ctr('snapshots', 'ls')).stdout).toContain(image.diffId);
    for (const blob of [image.layer, image.config, image.manifest]) {
      expect(await contentDigest(blob.digest)).toBe(blob.digest);
    }
  });

  it('pushes the pulled image to a new repository with POST + monolithic PUT', async () => {
    // Tagged under the IP spelling: containerd has no distribution-source label for that host, so
    // it cannot mount and must upload every blob (HEAD 404, POST, PUT <Location>?digest=...).
    await ctrd.ctr('images', 'tag', `${host}/team/app:1`, `${ipHost}/other/copy:2`);
    await ctrd.ctr('images', 'push', '--plain-http', `${ipHost}/other/copy:2`);
    const m = await manifestOf('other/copy', '2');
    expect(m.digest).toBe(image.manifest.digest);
    expect(m.body).toBe(image.manifest.bytes.toString());
    expect(m.type).toBe('application/vnd.oci.image.manifest.v1+json');
    const pushed = (await events()).filter((e) => e.repository === 'other/copy' && e.action === 'oci.blob.push').map((e) => e.digest);
    expect(pushed.sort()).toEqual([image.layer.digest, image.config.digest].sort());
    for (const blob of [image.layer, image.config]) {
      const res = await fetch(`${reg.url}/v2/other/copy/blobs/${blob.digest}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(blob.bytes)).toBe(true);
    }
  });

  it('pushes to another repository of the source host by cross-repository mount', async () => {
    await ctrd.ctr('images', 'tag', `${host}/team/app:1`, `${host}/team/mounted:1`);
    await ctrd.ctr('images', 'push', '--plain-http', `${host}/team/mounted:1`);
    expect((await manifestOf('team/mounted', '1')).digest).toBe(image.manifest.digest);
    const mine = (await events()).filter((e) => e.repository === 'team/mounted' && e.action.startsWith('oci.blob.'));
    expect(mine.map((e) => `${e.action} ${e.digest}`).sort()).toEqual([`oci.blob.mount ${image.config.digest}`, `oci.blob.mount ${image.layer.digest}`].sort());
  });

  it('imports an OCI archive, pushes blobs new to the registry, and pulls them back', async () => {
    const fresh = makeRealImage({ os: 'linux', architecture: 'amd64' }, 64 * 1024);
    const ref = `${host}/team/imported:1`;
    writeImageLayout(join(work, 'imported'), ref, fresh);
    await runCommand('tar', ['-C', join(work, 'imported'), '-cf', join(work, 'imported.tar'), '.']);
    await ctrd.ctr('images', 'import', join(work, 'imported.tar'));
    await ctrd.ctr('images', 'push', '--plain-http', ref);
    expect((await manifestOf('team/imported', '1')).digest).toBe(fresh.manifest.digest);
    const sk = JSON.parse((await runCommand('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).stdout) as { Digest: string; Layers: string[] };
    expect(sk.Digest).toBe(fresh.manifest.digest);
    expect(sk.Layers).toEqual([fresh.layer.digest]);
    // Forget it locally (content is garbage-collected with the image), then pull it back.
    await ctrd.ctr('images', 'rm', '--sync', ref);
    await expect(ctrd.ctr('content', 'get', fresh.layer.digest)).rejects.toThrow(/not found/);
    await ctrd.ctr('images', 'pull', '--plain-http', ref);
    expect((await ctrd.ctr('images', 'ls', '-q')).stdout.split('\n')).toContain(ref);
    expect((await ctrd.ctr('snapshots', 'ls')).stdout).toContain(fresh.diffId);
  });

  it('pulls a multi-arch index pushed by skopeo with --all-platforms', async () => {
    const amd = makeRealImage({ os: 'linux', architecture: 'amd64' });
    const arm = makeRealImage({ os: 'linux', architecture: 'arm64' });
    const dir = join(work, 'multi');
    const index = writeIndexLayout(dir, 'm', [
      { platform: { os: 'linux', architecture: 'amd64' }, image: amd },
      { platform: { os: 'linux', architecture: 'arm64' }, image: arm },
    ]);
    await runCommand('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${dir}:m`, `docker://${host}/team/multi:1`]);
    await ctrd.ctr('images', 'pull', '--plain-http', '--all-platforms', `${host}/team/multi:1`);
    const row = (await ctrd.ctr('images', 'ls')).stdout.split('\n').find((l) => l.startsWith(`${host}/team/multi:1 `));
    expect(row).toContain(index.digest);
    expect(row).toContain('application/vnd.oci.image.index.v1+json');
    expect(row).toMatch(/linux\/amd64,linux\/arm64/);
    for (const b of [arm.layer, arm.manifest, amd.layer]) {
      expect(await contentDigest(b.digest)).toBe(b.digest);
    }
  });
});
