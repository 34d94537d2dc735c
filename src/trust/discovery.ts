/**
 * Finds every signature and attestation layer of a subject digest in the four shapes cosign
 * writes (research: trust-formats.md §1): legacy `sha256-<hex>.sig` / `.att` tags, cosign 2.x
 * OCI 1.1 referrers (config media type as artifact type) and sigstore bundle referrers.
 * Bounded: at most MAX_REFERRERS referrers and MAX_CANDIDATES layers per decision.
 */
import type { RegistryStore } from '../meta/registry-store.js';
import { BUNDLE_PREFIX, DSSE_ENVELOPE, SIMPLE_SIGNING, type LayerFormat } from './verify.js';

export const COSIGN_SIG_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const COSIGN_ATT_ARTIFACT = 'application/vnd.dev.cosign.artifact.att.v1+json';
export const MAX_REFERRERS = 256;
export const MAX_CANDIDATES = 128;

/** Where a signature was found. */
export type SignatureKind = 'legacy-sig-tag' | 'legacy-att-tag' | 'oci-referrer' | 'sigstore-bundle';

export interface Candidate {
  kind: SignatureKind;
  /** The signature manifest's digest and the layer's index in it. */
  manifestDigest: string;
  layer: number;
  format: LayerFormat;
  blobDigest: string;
  annotations: Record<string, string>;
  fallbackCategory: 'signature' | 'attestation';
}

export interface Discovery {
  candidates: Candidate[];
  /** True when more signatures exist than were examined (the explanation says so). */
  truncated: boolean;
}

interface Layer {
  mediaType?: unknown;
  digest?: unknown;
  annotations?: unknown;
}

function layersOf(payload: Buffer): Layer[] {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as { layers?: unknown };
    return Array.isArray(doc.layers) ? (doc.layers as Layer[]) : [];
  } catch {
    return [];
  }
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof v !== 'object' || v === null) return out;
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

function formatOf(mediaType: string): LayerFormat | undefined {
  if (mediaType === SIMPLE_SIGNING) return 'simplesigning';
  if (mediaType === DSSE_ENVELOPE) return 'dsse';
  if (mediaType.startsWith(BUNDLE_PREFIX)) return 'bundle';
  return undefined;
}

/** Whether a manifest is itself a signature/attestation (all its layers are signature layers). */
export function isSignatureManifest(payload: Buffer): boolean {
  const layers = layersOf(payload);
  return layers.length > 0 && layers.every((l) => typeof l.mediaType === 'string' && formatOf(l.mediaType) !== undefined);
}

/** The legacy tag cosign derives from a digest: `sha256:<hex>` → `sha256-<hex>.sig`. */
export const legacyTag = (digest: string, suffix: 'sig' | 'att'): string => `${digest.replace(':', '-')}.${suffix}`;

export function discover(store: RegistryStore, repository: string, digest: string): Discovery {
  const candidates: Candidate[] = [];
  let truncated = false;
  const seen = new Set<string>();

  const addManifest = (manifestDigest: string, payload: Buffer, kind: SignatureKind, accept: (f: LayerFormat) => boolean, fallbackCategory: Candidate['fallbackCategory']): void => {
    if (seen.has(manifestDigest)) return;
    seen.add(manifestDigest);
    layersOf(payload).forEach((l, i) => {
      if (typeof l.mediaType !== 'string' || typeof l.digest !== 'string') return;
      const format = formatOf(l.mediaType);
      if (!format || !accept(format)) return;
      if (candidates.length >= MAX_CANDIDATES) {
        truncated = true;
        return;
      }
      candidates.push({ kind, manifestDigest, layer: i, format, blobDigest: l.digest, annotations: stringMap(l.annotations), fallbackCategory });
    });
  };

  const repoId = store.repositoryId(repository);
  if (repoId === undefined) return { candidates, truncated };

  for (const suffix of ['sig', 'att'] as const) {
    const m = store.manifestByTag(repository, legacyTag(digest, suffix));
    if (m) addManifest(m.digest, m.payload, suffix === 'sig' ? 'legacy-sig-tag' : 'legacy-att-tag', (f) => (suffix === 'sig' ? f === 'simplesigning' : f === 'dsse'), suffix === 'sig' ? 'signature' : 'attestation');
  }

  const referrers = store.referrers(repoId, digest, MAX_REFERRERS + 1);
  if (referrers.length > MAX_REFERRERS) truncated = true;
  for (const r of referrers.slice(0, MAX_REFERRERS)) {
    const type = r.artifactType ?? '';
    let kind: SignatureKind;
    let accept: (f: LayerFormat) => boolean;
    let category: Candidate['fallbackCategory'] = 'signature';
    if (type === COSIGN_SIG_ARTIFACT) [kind, accept] = ['oci-referrer', (f) => f === 'simplesigning'];
    else if (type === COSIGN_ATT_ARTIFACT) [kind, accept, category] = ['oci-referrer', (f) => f === 'dsse', 'attestation'];
    else if (type.startsWith(BUNDLE_PREFIX)) [kind, accept] = ['sigstore-bundle', (f) => f === 'bundle'];
    else continue; // SBOMs, evidence and other referrers are not signatures
    const m = store.manifestByDigest(repository, r.digest);
    if (m) addManifest(m.digest, m.payload, kind, accept, category);
  }
  return { candidates, truncated };
}
