/** Pushing evidence artifacts the way oras does, for the evidence tests. */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { pushBlob, sha256 } from '../helpers/http.js';

export const EVIDENCE = 'application/vnd.artifact-store.evidence.v1';
export const TYPE_ANNOTATION = 'dev.artifact-store.evidence.type';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export function evidenceManifest(subject: { digest: string; size: number } | null, type: string | undefined, layer: { digest: string; size: number }, config: { digest: string; size: number }): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: EVIDENCE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', ...config },
      layers: [{ mediaType: 'application/spdx+json', ...layer }],
      ...(subject ? { subject: { mediaType: MANIFEST, ...subject } } : {}),
      ...(type !== undefined ? { annotations: { [TYPE_ANNOTATION]: type } } : {}),
    }),
  );
}

/** PUTs an evidence manifest for `subject`; returns the response and what was pushed (status not checked). */
export async function putEvidence(url: string, repo: string, subject: { digest: string; size: number } | null, type: string | undefined, headers: Record<string, string> = {}) {
  const layerBytes = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: randomUUID() }));
  const configBytes = Buffer.from('{}');
  const layer = { digest: await pushBlob(url, repo, layerBytes, headers), size: layerBytes.length };
  const config = { digest: await pushBlob(url, repo, configBytes, headers), size: configBytes.length };
  const bytes = evidenceManifest(subject, type, layer, config);
  const digest = sha256(bytes);
  const res = await fetch(`${url}/v2/${repo}/manifests/${digest}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': MANIFEST, ...headers } });
  return { res, digest, layer: layer.digest, config: config.digest };
}

export async function pushEvidence(url: string, repo: string, subject: { digest: string; size: number }, type: string | undefined, headers: Record<string, string> = {}) {
  const r = await putEvidence(url, repo, subject, type, headers);
  expect(r.res.status, await r.res.text()).toBe(201);
  return r;
}

export const del = (url: string, path: string, headers: Record<string, string> = {}) => fetch(`${url}${path}`, { method: 'DELETE', headers });

export async function json(res: Response): Promise<any> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`not JSON (${res.status}): ${text}`);
  }
}

export async function postHold(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/api/v1/holds`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers } });
}
