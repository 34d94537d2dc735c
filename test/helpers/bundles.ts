/** Pushing bundles and gate receipts over the distribution API the way oras would, and calling /api/v1. */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { pushBlob, sha256 } from './http.js';

export const MODEL_BUNDLE = 'application/vnd.artifact-store.model-bundle.v1';
export const POLICY_BUNDLE = 'application/vnd.artifact-store.policy-bundle.v1';
export const BUNDLE_CONFIG = 'application/vnd.artifact-store.bundle.config.v1+json';
export const GATE_RECEIPT = 'application/vnd.artifact-store.gate-receipt.v1';
export const GATE_RECEIPT_LAYER = 'application/vnd.artifact-store.gate-receipt.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };

export function bundleConfig(id: string, version: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    bundle_id: id,
    bundle_version: version,
    kind: 'model',
    model_family: 'fraud',
    required_feature_groups: { features: '^1.2.0' },
    config_hash: `sha256:${'a'.repeat(64)}`,
    provenance: { training_run: 'runs/42', evaluation_report: 'reports/42', dataset_manifests: ['datasets/a@sha256:1'] },
    ...extra,
  };
}

export interface Pushed {
  digest: string;
  size: number;
  config: string;
  layers: string[];
}

/** PUT by tag, or by digest when `ref` is undefined. */
async function putManifest(url: string, repo: string, ref: string | undefined, manifest: unknown, headers: Record<string, string>): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref ?? sha256(bytes)}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': OCI_MANIFEST, ...headers } });
  expect(res.status, await res.text()).toBe(201);
  return { digest: sha256(bytes), size: bytes.length };
}

/** A bundle: the config document as config blob, one random "model file" layer. */
export async function pushBundle(
  url: string,
  repo: string,
  config: unknown,
  opts: { artifactType?: string; configMediaType?: string; tag?: string; headers?: Record<string, string> } = {},
): Promise<Pushed> {
  const headers = opts.headers ?? {};
  const configBytes = Buffer.from(typeof config === 'string' ? config : JSON.stringify(config));
  const model = randomBytes(256);
  const configDigest = await pushBlob(url, repo, configBytes, headers);
  const layerDigest = await pushBlob(url, repo, model, headers);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: opts.artifactType ?? MODEL_BUNDLE,
    config: { mediaType: opts.configMediaType ?? BUNDLE_CONFIG, digest: configDigest, size: configBytes.length },
    layers: [{ mediaType: 'application/vnd.onnx.model', digest: layerDigest, size: model.length, annotations: { 'org.opencontainers.image.title': 'model.onnx' } }],
  };
  const m = await putManifest(url, repo, opts.tag ?? `b-${randomBytes(4).toString('hex')}`, manifest, headers);
  return { ...m, config: configDigest, layers: [layerDigest] };
}

/** A gate receipt referring to `subject` (oras attach --artifact-type …gate-receipt.v1). */
export async function pushReceipt(
  url: string,
  repo: string,
  subject: { digest: string; size: number },
  receipt: unknown,
  headers: Record<string, string> = {},
): Promise<Pushed> {
  const body = Buffer.from(typeof receipt === 'string' ? receipt : JSON.stringify(receipt));
  const emptyDigest = await pushBlob(url, repo, EMPTY.bytes, headers);
  const layer = await pushBlob(url, repo, body, headers);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: GATE_RECEIPT,
    config: { mediaType: EMPTY.mediaType, digest: emptyDigest, size: EMPTY.bytes.length },
    layers: [{ mediaType: GATE_RECEIPT_LAYER, digest: layer, size: body.length }],
    subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
  };
  const m = await putManifest(url, repo, undefined, manifest, headers);
  return { ...m, config: emptyDigest, layers: [layer] };
}

export const passReceipt = (gate = 'offline-eval') => ({ result: 'PASS', gate, evaluated_at: '2026-11-30T12:00:00Z', nonce: randomBytes(4).toString('hex') });
export const failReceipt = (gate = 'offline-eval') => ({ result: 'FAIL', gate, evaluated_at: '2026-11-30T12:00:00Z', nonce: randomBytes(4).toString('hex') });

export interface ApiResult {
  status: number;
  body: any;
}

/** One /api/v1 call with a JSON body; returns the status and parsed body. */
export async function api(url: string, method: string, path: string, body?: unknown, auth?: string): Promise<ApiResult> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) headers.Authorization = auth;
  const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The single error of an /api/v1 error body. */
export function errorOf(r: ApiResult): { code: string; message: string; detail?: any; retryable: boolean } {
  expect(r.body?.errors?.length, JSON.stringify(r.body)).toBe(1);
  return r.body.errors[0];
}
