/**
 * The OCI form of an entry version: repository `_registry/{family}`, tag `{id}`, one layer of
 * deterministic CBOR. The manifest carries no timestamps, so the same entry at the same version
 * always has the same digest, wherever it is built or mirrored.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { BlobDriver } from '../data/driver.js';
import type { Family } from '../governance/contracts.js';
import type { NewManifest } from '../meta/registry-store.js';
import { encodeDeterministic } from './cbor.js';

export const ENTRY_LAYER_MEDIA_TYPE = 'application/vnd.artifact-store.registry.entry.v1+cbor';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
const EMPTY = Buffer.from('{}');

export const REGISTRY_NAMESPACE = '_registry';
export const registryRepository = (family: Family): string => `${REGISTRY_NAMESPACE}/${family}`;
export const familyArtifactType = (family: Family): string => `application/vnd.artifact-store.registry.${family}.v1`;

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface EntryArtifact {
  layer: Buffer;
  layerDigest: string;
  config: Buffer;
  configDigest: string;
  manifest: NewManifest;
}

export function buildArtifact(family: Family, version: number, entry: Record<string, unknown> & { id: string }): EntryArtifact {
  const layer = encodeDeterministic(entry);
  const layerDigest = sha256(layer);
  const configDigest = sha256(EMPTY);
  const annotations = {
    'dev.artifact-store.family': family,
    'dev.artifact-store.entry.id': entry.id,
    'dev.artifact-store.entry.version': String(version),
  };
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: familyArtifactType(family),
    config: { mediaType: EMPTY_MEDIA_TYPE, digest: configDigest, size: EMPTY.length },
    layers: [{ mediaType: ENTRY_LAYER_MEDIA_TYPE, digest: layerDigest, size: layer.length, annotations: { 'org.opencontainers.image.title': `${entry.id}.cbor` } }],
    annotations,
  };
  const payload = Buffer.from(JSON.stringify(doc));
  return {
    layer,
    layerDigest,
    config: EMPTY,
    configDigest,
    manifest: {
      digest: sha256(payload),
      mediaType: OCI_MANIFEST,
      payload,
      size: payload.length,
      artifactType: doc.artifactType,
      subject: null,
      annotations,
      references: [
        { digest: configDigest, kind: 'blob' },
        { digest: layerDigest, kind: 'blob' },
      ],
    },
  };
}

/** Stores bytes under their digest through an upload session (content-addressed: idempotent). */
export async function writeBlob(driver: BlobDriver, bytes: Buffer, digest: string): Promise<void> {
  if (await driver.stat(digest)) return;
  const id = randomUUID();
  let state = await driver.createUpload(id);
  try {
    state = await driver.append(id, state, (async function* () {
      yield bytes;
    })());
    await driver.commit(id, state, digest);
  } catch (err) {
    await driver.abort(id, state).catch(() => undefined);
    throw err;
  }
}
