// Deterministic pseudo-random test data and digests.
//
// Every blob is the AES-256-CTR keystream (encryption of zeros) under a key
// derived from a seed string, so the same seed always yields the same bytes,
// different seeds yield unrelated bytes, and nothing is compressible or
// deduplicable. Data is generated in fixed-size chunks so client memory stays
// flat no matter how large the blob is.

import { createCipheriv, createHash, type Cipher } from "node:crypto";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Chunk size used when streaming large blobs. */
export const STREAM_CHUNK = 4 * MiB;

const zeroCache = new Map<number, Buffer>();
function zeros(n: number): Buffer {
  let z = zeroCache.get(n);
  if (!z) {
    z = Buffer.alloc(n);
    if (zeroCache.size < 8) zeroCache.set(n, z);
  }
  return z;
}

function keystream(seed: string): Cipher {
  const key = createHash("sha256").update(`artifact-store-bench:${seed}`).digest();
  return createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** A deterministic blob of `size` bytes derived from `seed`. */
export class BlobSource {
  private digestCache: string | undefined;

  constructor(
    readonly seed: string,
    readonly size: number,
  ) {}

  /** Sequential chunks of exactly `chunkSize` bytes (the last may be shorter). */
  *chunks(chunkSize: number = STREAM_CHUNK): Generator<Buffer> {
    const ks = keystream(this.seed);
    let left = this.size;
    while (left > 0) {
      const n = Math.min(chunkSize, left);
      yield ks.update(zeros(n));
      left -= n;
    }
  }

  /** Whole blob in memory; only for small blobs. */
  bytes(): Buffer {
    if (this.size > 64 * MiB) throw new Error(`refusing to materialise ${this.size} bytes`);
    return keystream(this.seed).update(zeros(this.size));
  }

  /** sha256 digest, computed by streaming (call before timing starts). */
  digest(): string {
    if (this.digestCache === undefined) {
      if (this.size <= 64 * MiB) {
        this.digestCache = sha256(this.bytes());
      } else {
        const h = createHash("sha256");
        for (const c of this.chunks()) h.update(c);
        this.digestCache = `sha256:${h.digest("hex")}`;
      }
    }
    return this.digestCache;
  }
}

/** Streaming digest verifier for pulled bodies. */
export class DigestSink {
  private readonly hash = createHash("sha256");
  bytes = 0;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  digest(): string {
    return `sha256:${this.hash.digest("hex")}`;
  }
}

export const MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function descriptor(mediaType: string, data: Buffer): Descriptor {
  return { mediaType, digest: sha256(data), size: data.length };
}

/** A small, valid OCI image config (JSON). */
export function imageConfig(seed: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Env: [`BENCH_SEED=${seed}`] },
      rootfs: { type: "layers", diff_ids: [sha256(seed)] },
    }),
  );
}

/** Serialized OCI image manifest referencing `config` and `layers`. */
export function imageManifest(
  config: Descriptor,
  layers: Descriptor[],
  annotations?: Record<string, string>,
): Buffer {
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MT_OCI_MANIFEST,
    config,
    layers,
  };
  if (annotations) m.annotations = annotations;
  return Buffer.from(JSON.stringify(m));
}

export function formatBytes(n: number): string {
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}
