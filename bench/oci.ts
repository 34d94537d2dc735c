// OCI Distribution protocol helpers used by the workloads. Every upload is
// verified (Docker-Content-Digest + HEAD) and every pull is hashed.

import {
  BlobSource, DigestSink, KiB, MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_MANIFEST,
  descriptor, imageConfig, sha256, type Descriptor,
} from "./data.js";
import { header, type HttpClient, type Resp } from "./http.js";

export const BIG_TIMEOUT = 15 * 60_000;
export const SMALL_TIMEOUT = 60_000;

export function expect(res: Resp, codes: number[], what: string): void {
  if (!codes.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} (want ${codes.join("/")}) ${res.body.subarray(0, 300).toString().replace(/\s+/g, " ").trim()}`);
  }
}

function withDigest(client: HttpClient, location: string, digest: string): URL {
  const u = client.resolve(location).href;
  return new URL(`${u}${u.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`);
}

export function checkDigestHeader(res: Resp, digest: string, what: string): void {
  const got = header(res.headers, "docker-content-digest");
  if (got !== undefined && got !== digest) throw new Error(`${what}: Docker-Content-Digest ${got} != ${digest}`);
}

async function startUpload(client: HttpClient, repo: string): Promise<string> {
  const res = await client.request("POST", `/v2/${repo}/blobs/uploads/`, { headers: { "content-length": 0 }, timeoutMs: SMALL_TIMEOUT });
  expect(res, [202], `POST upload ${repo}`);
  const loc = header(res.headers, "location");
  if (!loc) throw new Error(`POST upload ${repo}: no Location`);
  return loc;
}

/** POST, then PUT ?digest= with the whole body. */
export async function pushMonolithic(client: HttpClient, repo: string, blob: BlobSource | Buffer, digest: string): Promise<void> {
  const loc = await startUpload(client, repo);
  const size = Buffer.isBuffer(blob) ? blob.length : blob.size;
  const res = await client.request("PUT", withDigest(client, loc, digest), {
    headers: { "content-type": "application/octet-stream", "content-length": size },
    body: Buffer.isBuffer(blob) ? blob : blob.chunks(),
    timeoutMs: BIG_TIMEOUT,
  });
  expect(res, [201], `PUT blob ${repo}`);
  checkDigestHeader(res, digest, `PUT blob ${repo}`);
}

/** POST, PATCH in `chunk`-sized pieces with Content-Range, then PUT ?digest=. */
export async function pushChunked(client: HttpClient, repo: string, blob: BlobSource, digest: string, chunk: number): Promise<void> {
  let loc = await startUpload(client, repo);
  let offset = 0;
  for (const piece of blob.chunks(chunk)) {
    const res = await client.request("PATCH", client.resolve(loc), {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": piece.length,
        "content-range": `${offset}-${offset + piece.length - 1}`,
      },
      body: piece,
      timeoutMs: BIG_TIMEOUT,
    });
    expect(res, [202], `PATCH ${repo} @${offset}`);
    offset += piece.length;
    loc = header(res.headers, "location") ?? loc;
  }
  const res = await client.request("PUT", withDigest(client, loc, digest), { headers: { "content-length": 0 }, timeoutMs: BIG_TIMEOUT });
  expect(res, [201], `PUT chunked ${repo}`);
  checkDigestHeader(res, digest, `PUT chunked ${repo}`);
}

export async function verifyBlob(client: HttpClient, repo: string, digest: string, size: number): Promise<void> {
  const res = await client.request("HEAD", `/v2/${repo}/blobs/${digest}`, { follow: true, timeoutMs: SMALL_TIMEOUT });
  expect(res, [200], `HEAD blob ${repo}@${digest}`);
  const len = Number(header(res.headers, "content-length"));
  if (len !== size) throw new Error(`HEAD blob ${digest}: Content-Length ${len} != ${size}`);
  checkDigestHeader(res, digest, `HEAD blob ${repo}`);
}

/** GET a blob, hashing the body as it streams; returns bytes received. */
/**
 * GET a blob. With `hash` (default) the body is hashed and compared with the digest. Timed
 * throughput pulls pass `hash: false` and count bytes only: hashing here would cap every
 * registry at this client's SHA-256 speed on the shared cores; each round first verifies the
 * same blob untimed.
 */
export async function pullBlob(client: HttpClient, repo: string, digest: string, size: number, hash = true): Promise<number> {
  const sink = new DigestSink();
  let bytes = 0;
  const res = await client.request("GET", `/v2/${repo}/blobs/${digest}`, {
    follow: true, sink: hash ? (c) => sink.update(c) : (c) => void (bytes += c.length), timeoutMs: BIG_TIMEOUT,
  });
  expect(res, [200], `GET blob ${repo}`);
  const got = hash ? sink.bytes : bytes;
  if (got !== size) throw new Error(`GET blob ${digest}: got ${got} bytes, want ${size}`);
  if (hash && sink.digest() !== digest) throw new Error(`GET blob: body hashes to ${sink.digest()}, want ${digest}`);
  return got;
}

export async function putManifest(client: HttpClient, repo: string, ref: string, body: Buffer): Promise<void> {
  const res = await client.request("PUT", `/v2/${repo}/manifests/${ref}`, {
    headers: { "content-type": MT_OCI_MANIFEST, "content-length": body.length }, body, timeoutMs: SMALL_TIMEOUT,
  });
  expect(res, [201], `PUT manifest ${repo}:${ref}`);
  checkDigestHeader(res, sha256(body), `PUT manifest ${repo}:${ref}`);
}

/** Push a config + layer so manifests in `repo` have their blobs; returns descriptors. */
export async function manifestBase(client: HttpClient, repo: string): Promise<{ config: Descriptor; layer: Descriptor }> {
  const cfg = imageConfig(repo);
  const layer = new BlobSource(`layer:${repo}`, 2 * KiB).bytes();
  const config = descriptor(MT_OCI_CONFIG, cfg);
  const layerD = descriptor(MT_OCI_LAYER, layer);
  await pushMonolithic(client, repo, cfg, config.digest);
  await pushMonolithic(client, repo, layer, layerD.digest);
  return { config, layer: layerD };
}
