/**
 * Builds OCI image layouts on disk (image-spec image-layout.md) for real clients to push:
 * single images and multi-arch indexes with random gzip'd tar layers.
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

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const blobOf = (bytes: Buffer): Blob => ({ digest: sha(bytes), size: bytes.length, bytes });

/** A one-file tar archive (ustar), enough for a valid layer. */
function tarOf(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.fill(' ', 148, 156);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

export function makeImage(platform: { os: string; architecture: string }, layerBytes = 2048): { manifest: Blob; blobs: Blob[] } {
  const tar = tarOf('hello.txt', randomBytes(layerBytes));
  const layer = blobOf(gzipSync(tar));
  // diff_ids name the uncompressed layer: clients that unpack (containerd, podman) check them.
  const config = blobOf(Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [sha(tar)] }, config: {} })));
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
  return { manifest, blobs: [layer, config] };
}

/** Writes an OCI layout whose index.json names `ref`: a single image, or an index of several platforms. */
export function writeLayout(dir: string, ref: string, platforms: { os: string; architecture: string }[]): { top: Blob } {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Blob): void => writeFileSync(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
  const images = platforms.map((p) => ({ p, ...makeImage(p) }));
  for (const img of images) {
    img.blobs.forEach(put);
    put(img.manifest);
  }
  let top: Blob;
  let topType: string;
  if (images.length === 1) {
    top = images[0]!.manifest;
    topType = 'application/vnd.oci.image.manifest.v1+json';
  } else {
    topType = 'application/vnd.oci.image.index.v1+json';
    top = blobOf(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: topType,
          manifests: images.map((i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: i.manifest.digest, size: i.manifest.size, platform: i.p })),
        }),
      ),
    );
    put(top);
  }
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: topType, digest: top.digest, size: top.size, annotations: { 'org.opencontainers.image.ref.name': ref } }] }),
  );
  return { top };
}
