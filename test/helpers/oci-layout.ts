/**
 * Builds OCI image layouts on disk (image-spec image-layout.md) for real clients to push, with
 * images that runtimes can unpack: the uncompressed tar's digest is the config's
 * rootfs.diff_ids entry, which containerd and containers/storage verify on extraction.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
}

export const blobOf = (bytes: Buffer): Blob => ({ digest: sha256(bytes), size: bytes.length, bytes });

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function tarHeader(name: string, size: number, type: '0' | '5', mode: string): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write(`${mode}\0`, 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(size.toString(8).padStart(11, '0') + '\0', 124);
  header.write('14500000000\0', 136); // mtime: 2020-ish, fixed
  header.fill(' ', 148, 156);
  header.write(type, 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return header;
}

/** A tar with one directory and one file inside it (ustar). */
function tarOf(dir: string, file: string, content: Buffer): Buffer {
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([tarHeader(`${dir}/`, 0, '5', '0000755'), tarHeader(`${dir}/${file}`, content.length, '0', '0000644'), content, pad, Buffer.alloc(1024)]);
}

export interface RealImage {
  manifest: Blob;
  config: Blob;
  layer: Blob;
  /** Digest of the uncompressed layer tar (the config's rootfs.diff_ids[0]). */
  diffId: string;
  /** Random content of /data/hello.txt inside the image. */
  content: Buffer;
}

/** An image a container runtime accepts: gzip'd tar layer whose diff_id is right, and a full config. */
export function makeRealImage(platform: { os: string; architecture: string } = { os: 'linux', architecture: 'amd64' }, contentBytes = 4096): RealImage {
  const content = randomBytes(contentBytes);
  const tar = tarOf('data', 'hello.txt', content);
  const diffId = sha256(tar);
  const layer = blobOf(gzipSync(tar));
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        created: '2024-01-01T00:00:00Z',
        architecture: platform.architecture,
        os: platform.os,
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [diffId] },
        history: [{ created: '2024-01-01T00:00:00Z', created_by: 'artifact-store e2e test' }],
      }),
    ),
  );
  const manifest = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
      }),
    ),
  );
  return { manifest, config, layer, diffId, content };
}

/** Writes `image` as an OCI layout (image-spec image-layout.md) whose index.json names it `ref`. */
export function writeImageLayout(dir: string, ref: string, image: RealImage): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [image.layer, image.config, image.manifest]) writeFileSync(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: image.manifest.digest,
          size: image.manifest.size,
          annotations: { 'org.opencontainers.image.ref.name': ref },
        },
      ],
    }),
  );
}

/**
 * Writes a multi-platform OCI layout: every image's blobs plus an image index (with platforms)
 * that index.json names `ref`. Returns the index blob.
 */
export function writeIndexLayout(dir: string, ref: string, images: { platform: { os: string; architecture: string }; image: RealImage }[]): Blob {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  for (const { image } of images) for (const b of [image.layer, image.config, image.manifest]) writeFileSync(join(blobs, b.digest.slice(7)), b.bytes);
  const index = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: images.map(({ platform, image }) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifest.digest, size: image.manifest.size, platform })),
      }),
    ),
  );
  writeFileSync(join(blobs, index.digest.slice(7)), index.bytes);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: index.size, annotations: { 'org.opencontainers.image.ref.name': ref } }],
    }),
  );
  return index;
}

/** Digest of a file or of a command's stdout, computed by streaming (binary-safe). */

/** An OCI layout whose index.json names `ref`: one image, or an index over several platforms. */
export function writeLayout(dir: string, ref: string, platforms: { os: string; architecture: string }[]): { top: Blob } {
  if (platforms.length === 1) {
    const image = makeRealImage(platforms[0]);
    writeImageLayout(dir, ref, image);
    return { top: image.manifest };
  }
  return { top: writeIndexLayout(dir, ref, platforms.map((platform) => ({ platform, image: makeRealImage(platform) }))) };
}
