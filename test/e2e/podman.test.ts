/**
 * Real OCI client: podman 4.3 (Debian's `podman` package), rootful, against the registry running
 * as its own process. Storage is vfs in a temp dir (no overlay, fuse or user namespaces), events go
 * to a file and cgroups to cgroupfs (no systemd); only pulls and pushes, no container is run.
 *
 * What podman exercises (containers/image, like skopeo, but from local containers-storage):
 * pulls that verify diff_ids while storing layers, pushes that mount layers it remembers from
 * another repository (blob-info cache), pushes of layers it re-compresses on the fly (POST, PATCH
 * of unknown length, PUT ?digest=), conversion to Docker schema 2 on push, platform choice in an
 * index, and manifest lists it builds itself. Its blob-info cache lives in
 * /var/lib/containers/cache (shared with skopeo; no flag moves it); everything else is temporary.
 * CI installs podman and skopeo (.ci/run); elsewhere `apt-get install podman skopeo`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePodman, makeRealImage, requireBinary, runCommand, sha256, writeImageLayout, writeIndexLayout, type Podman, type RealImage } from '../helpers/clients.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';

let reg: Awaited<ReturnType<typeof startRegistryProcess>>;
let pm: Podman;
let host: string;
// Lower case only: podman names an image pulled from `oci:<dir>` after the dir's path.
const work = join(tmpdir(), `as-podman-work-${randomBytes(6).toString('hex')}`);
mkdirSync(work);
let image: RealImage;
/** The arm64 image of the multi-arch index pushed in one test and reused by the next. */
let arm: RealImage;

interface RegistryEvent {
  action: string;
  repository: string | null;
  digest: string | null;
}

async function blobEvents(repo: string): Promise<string[]> {
  const res = await fetch(`${reg.url}/api/v1/events?limit=1000`);
  expect(res.status).toBe(200);
  const { events } = (await res.json()) as { events: RegistryEvent[] };
  return events.filter((e) => e.repository === repo && e.action.startsWith('oci.blob.')).map((e) => `${e.action} ${e.digest}`);
}

const ALL_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** The manifest as the registry serves it; checks HEAD agrees and the digest is the body's. */
async function manifestOf(repo: string, ref: string): Promise<{ digest: string; type: string; json: Record<string, unknown> }> {
  const head = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: 'HEAD', headers: { accept: ALL_TYPES } });
  expect(head.status).toBe(200);
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: ALL_TYPES } });
  expect(res.status).toBe(200);
  const body = Buffer.from(await res.arrayBuffer());
  const digest = res.headers.get('docker-content-digest')!;
  expect(digest).toBe(sha256(body));
  expect(head.headers.get('docker-content-digest')).toBe(digest);
  expect(head.headers.get('content-type')).toBe(res.headers.get('content-type'));
  return { digest, type: res.headers.get('content-type')!, json: JSON.parse(body.toString()) as Record<string, unknown> };
}

/** `podman image inspect` of a local image: manifest digest, image ID (config digest), platform. */
async function inspect(ref: string): Promise<{ Digest: string; Id: string; Architecture: string; RepoDigests: string[] }> {
  const out = (await pm.podman('image', 'inspect', ref)).stdout;
  return (JSON.parse(out) as { Digest: string; Id: string; Architecture: string; RepoDigests: string[] }[])[0]!;
}

beforeAll(async () => {
  requireBinary('skopeo', 'skopeo');
  reg = await startRegistryProcess();
  host = `localhost:${new URL(reg.url).port}`;
  pm = makePodman();
  image = makeRealImage();
  writeImageLayout(join(work, 'app'), 'v1', image);
  await runCommand('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(work, 'app')}:v1`, `docker://${host}/team/app:1`]);
});

afterAll(async () => {
  pm?.stop();
  await reg?.stop();
  removeDir(work);
});

describe('podman against the registry', () => {
  it('pulls an image pushed by skopeo into containers-storage', async () => {
    await pm.podman('pull', '--tls-verify=false', `${host}/team/app:1`);
    const info = await inspect(`${host}/team/app:1`);
    expect(info.Digest).toBe(image.manifest.digest);
    expect(info.Id).toBe(image.config.digest.slice(7));
    expect(info.Architecture).toBe('amd64');
    expect(info.RepoDigests).toContain(`${host}/team/app@${image.manifest.digest}`);
  });

  it('pushes to a new repository (layer mounted, config uploaded) with the digest preserved, and pulls it back', async () => {
    const digestFile = join(work, 'pushed.digest');
    await pm.podman('push', '--tls-verify=false', '--digestfile', digestFile, `${host}/team/app:1`, `docker://${host}/team/pushed:2`);
    expect(readFileSync(digestFile, 'utf8').trim()).toBe(image.manifest.digest);
    const m = await manifestOf('team/pushed', '2');
    expect(m.digest).toBe(image.manifest.digest);
    expect(m.type).toBe('application/vnd.oci.image.manifest.v1+json');
    // The layer came from team/app by cross-repository mount (podman's blob-info cache knew it was
    // there); the config, which c/image never mounts, went through POST, PATCH, PUT.
    expect((await blobEvents('team/pushed')).sort()).toEqual([`oci.blob.mount ${image.layer.digest}`, `oci.blob.push ${image.config.digest}`].sort());

    await pm.podman('rmi', '--force', `${host}/team/app:1`);
    await pm.podman('pull', '--tls-verify=false', `${host}/team/pushed:2`);
    const info = await inspect(`${host}/team/pushed:2`);
    expect(info.Digest).toBe(image.manifest.digest);
    expect(info.Id).toBe(image.config.digest.slice(7));
  });

  it('pushes an image it never pulled from the registry: layer re-compressed and uploaded with POST, PATCH, PUT', async () => {
    const fresh = makeRealImage({ os: 'linux', architecture: 'amd64' }, 256 * 1024);
    writeImageLayout(join(work, 'fresh'), 'v1', fresh);
    // containers-storage keeps layers uncompressed, so the push gzips the layer again: a blob the
    // registry has never seen, streamed with a PATCH of unknown length.
    const id = (await pm.podman('pull', '-q', `oci:${join(work, 'fresh')}:v1`)).stdout.trim().split('\n').pop()!;
    expect(id).toBe(fresh.config.digest.slice(7));
    const digestFile = join(work, 'fresh.digest');
    await pm.podman('push', '--tls-verify=false', '--digestfile', digestFile, id, `docker://${host}/team/fresh:1`);
    const m = await manifestOf('team/fresh', '1');
    expect(readFileSync(digestFile, 'utf8').trim()).toBe(m.digest);
    expect((m.json.config as { digest: string }).digest).toBe(fresh.config.digest);
    const [layer] = m.json.layers as { digest: string; size: number }[];
    expect((await blobEvents('team/fresh')).sort()).toEqual([`oci.blob.push ${fresh.config.digest}`, `oci.blob.push ${layer!.digest}`].sort());
    const res = await fetch(`${reg.url}/v2/team/fresh/blobs/${layer!.digest}`);
    expect(res.status).toBe(200);
    const gz = Buffer.from(await res.arrayBuffer());
    expect(gz.length).toBe(layer!.size);
    expect(sha256(gz)).toBe(layer!.digest);
    expect(sha256(gunzipSync(gz))).toBe(fresh.diffId);
  });

  it('pushes as Docker schema 2 (--format v2s2) and pulls that back by digest', async () => {
    const digestFile = join(work, 'docker.digest');
    await pm.podman('push', '--tls-verify=false', '--format', 'v2s2', '--digestfile', digestFile, `${host}/team/pushed:2`, `docker://${host}/team/docker:1`);
    const m = await manifestOf('team/docker', '1');
    expect(m.type).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.json.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect((m.json.config as { mediaType: string; digest: string }).mediaType).toBe('application/vnd.docker.container.image.v1+json');
    expect((m.json.config as { digest: string }).digest).toBe(image.config.digest);
    expect((m.json.layers as { mediaType: string; digest: string }[]).map((l) => `${l.mediaType} ${l.digest}`)).toEqual([
      `application/vnd.docker.image.rootfs.diff.tar.gzip ${image.layer.digest}`,
    ]);
    expect(readFileSync(digestFile, 'utf8').trim()).toBe(m.digest);
    await pm.podman('pull', '--tls-verify=false', `${host}/team/docker@${m.digest}`);
    // Same config, so the same local image: podman adds the new manifest digest to its RepoDigests.
    const info = await inspect(`${host}/team/docker@${m.digest}`);
    expect(info.Id).toBe(image.config.digest.slice(7));
    expect(info.RepoDigests).toContain(`${host}/team/docker@${m.digest}`);
  });

  it('pulls one platform out of a multi-arch index (--arch arm64)', async () => {
    const amd = makeRealImage({ os: 'linux', architecture: 'amd64' });
    arm = makeRealImage({ os: 'linux', architecture: 'arm64' });
    const dir = join(work, 'multi');
    const index = writeIndexLayout(dir, 'm', [
      { platform: { os: 'linux', architecture: 'amd64' }, image: amd },
      { platform: { os: 'linux', architecture: 'arm64' }, image: arm },
    ]);
    await runCommand('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${dir}:m`, `docker://${host}/team/multi:1`]);
    expect((await manifestOf('team/multi', '1')).digest).toBe(index.digest);
    await pm.podman('pull', '--tls-verify=false', '--arch', 'arm64', `${host}/team/multi:1`);
    const info = await inspect(`${host}/team/multi:1`);
    expect(info.Architecture).toBe('arm64');
    expect(info.Id).toBe(arm.config.digest.slice(7));
    // podman records the digest it was asked for (the index) and the instance it chose.
    expect(info.Digest).toBe(index.digest);
    expect(info.RepoDigests.sort()).toEqual([`${host}/team/multi@${arm.manifest.digest}`, `${host}/team/multi@${index.digest}`].sort());
  });

  it('builds a manifest list locally and pushes it with its images (manifest push --all)', async () => {
    await pm.podman('manifest', 'create', 'as-list');
    await pm.podman('manifest', 'add', '--tls-verify=false', 'as-list', `docker://${host}/team/pushed:2`);
    // By digest: podman resolves a tag naming an index to its own platform's instance. The
    // entry's platform comes from the arm64 image's config.
    await pm.podman('manifest', 'add', '--tls-verify=false', 'as-list', `docker://${host}/team/multi@${arm.manifest.digest}`);
    const digestFile = join(work, 'list.digest');
    await pm.podman('manifest', 'push', '--tls-verify=false', '--all', '--format', 'oci', '--digestfile', digestFile, 'as-list', `docker://${host}/team/list:1`);
    const m = await manifestOf('team/list', '1');
    expect(readFileSync(digestFile, 'utf8').trim()).toBe(m.digest);
    expect(m.type).toBe('application/vnd.oci.image.index.v1+json');
    const entries = (m.json.manifests as { digest: string; platform: { architecture: string } }[]).map((e) => `${e.platform.architecture} ${e.digest}`);
    expect(entries.sort()).toEqual([`amd64 ${image.manifest.digest}`, `arm64 ${arm.manifest.digest}`].sort());
    // Every child manifest was pushed into team/list before the index (it refers to them).
    for (const e of m.json.manifests as { digest: string }[]) expect((await manifestOf('team/list', e.digest)).digest).toBe(e.digest);
  });
});
