/** Tiny helpers for speaking the distribution API in tests. */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { expect } from 'vitest';

export const sha256 = (b: Uint8Array | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const randomBlob = (n: number): Buffer => randomBytes(n);

export async function expectError(res: Response, status: number, code: string): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text) as { errors: { code: string; message: string }[] };
  expect(body.errors[0]?.code).toBe(code);
  expect(typeof body.errors[0]?.message).toBe('string');
}

export async function pushBlob(url: string, repo: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(bytes);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes, headers: { 'Content-Type': 'application/octet-stream', ...headers } });
  expect(res.status, await res.text()).toBe(201);
  return digest;
}

export function imageManifest(config: { digest: string; size: number }, layers: { digest: string; size: number }[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
      ...extra,
    }),
  );
}

/** Pushes a config + one layer + manifest under `tag`; returns the manifest digest and bytes. */
export async function pushImage(url: string, repo: string, tag: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<{ digest: string; bytes: Buffer; layer: string; config: string }> {
  const layer = randomBlob(1000);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const layerDigest = await pushBlob(url, repo, layer, headers);
  const configDigest = await pushBlob(url, repo, config, headers);
  const bytes = imageManifest({ digest: configDigest, size: config.length }, [{ digest: layerDigest, size: layer.length }], extra);
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', ...headers } });
  expect(res.status, await res.text()).toBe(201);
  return { digest: sha256(bytes), bytes, layer: layerDigest, config: configDigest };
}

/** A request whose path is sent exactly as written (fetch would resolve `..` and `//`). */
export function rawRequest(base: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
