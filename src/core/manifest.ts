/**
 * Manifest parsing and validation (image-spec manifest.md, image-index.md, descriptor.md, and
 * Docker schema2). Pure: it checks structure and extracts what the registry indexes; whether
 * the referenced content exists is the caller's business.
 */
import { ociError } from '../errors/catalogue.js';
import { tryParseDigest } from './digest.js';
import { manifestKind, MEDIA_TYPES, type ManifestKind } from './media-types.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ParsedManifest {
  kind: ManifestKind;
  mediaType: string;
  /** Blobs the manifest needs (config and layers), excluding foreign layers served from `urls`. */
  blobs: Descriptor[];
  /** Child manifests (index entries). */
  children: Descriptor[];
  subject: Descriptor | null;
  /** `artifactType`, else the config's media type (referrers API rule). */
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

const invalid = (message: string, detail?: unknown) => ociError('MANIFEST_INVALID', message, { detail });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseAnnotations(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) throw invalid(`${where}.annotations must map strings to strings`);
  return v as Record<string, string>;
}

function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, urls, artifactType } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}.mediaType is required`);
  if (typeof digest !== 'string' || !tryParseDigest(digest)) throw invalid(`${where}.digest is not a valid digest`, { digest });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  if (urls !== undefined && (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string'))) throw invalid(`${where}.urls must be strings`);
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
  const d: Descriptor = { mediaType, digest, size };
  if (urls !== undefined) d.urls = urls as string[];
  if (artifactType !== undefined) d.artifactType = artifactType;
  const annotations = parseAnnotations(v.annotations, where);
  if (annotations) d.annotations = annotations;
  return d;
}

function descriptorList(v: unknown, where: string): Descriptor[] {
  if (!Array.isArray(v)) throw invalid(`${where} must be an array`);
  return v.map((d, i) => parseDescriptor(d, `${where}[${i}]`));
}

/** Content-Type parameters (`; charset=…`) are not part of the media type. */
const bareType = (contentType: string | undefined): string | undefined => contentType?.split(';')[0]?.trim().toLowerCase() || undefined;

export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  if (doc.schemaVersion !== 2) throw invalid('only schemaVersion 2 manifests are supported', { schemaVersion: doc.schemaVersion ?? null });

  const header = bareType(contentType);
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (doc.mediaType !== undefined && declared === undefined) throw invalid('mediaType must be a string');
  if (declared && header && declared !== header) throw invalid('manifest mediaType does not match Content-Type', { mediaType: declared, contentType: header });
  // An OCI manifest may omit mediaType; fall back to the header, then to the document's shape.
  const mediaType = declared ?? header ?? (Array.isArray(doc.manifests) ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest);
  const kind = manifestKind(mediaType);
  if (!kind) throw invalid('unsupported manifest media type', { mediaType });

  const artifactTypeField = doc.artifactType;
  if (artifactTypeField !== undefined && typeof artifactTypeField !== 'string') throw invalid('artifactType must be a string');
  const subject = doc.subject === undefined ? null : parseDescriptor(doc.subject, 'subject');
  const annotations = parseAnnotations(doc.annotations, 'manifest') ?? null;

  if (kind === 'image') {
    if (doc.manifests !== undefined) throw invalid('an image manifest must not have manifests');
    const config = parseDescriptor(doc.config, 'config');
    const layers = doc.layers === undefined && mediaType === MEDIA_TYPES.ociManifest ? [] : descriptorList(doc.layers, 'layers');
    const blobs = [config, ...layers.filter((l) => !l.urls || l.urls.length === 0)];
    // An empty artifactType counts as absent (referrers API rule).
    return { kind, mediaType, blobs, children: [], subject, artifactType: artifactTypeField || config.mediaType, annotations };
  }
  if (doc.layers !== undefined || doc.config !== undefined) throw invalid('an index must not have config or layers');
  const children = descriptorList(doc.manifests, 'manifests');
  return { kind, mediaType, blobs: [], children, subject, artifactType: artifactTypeField || null, annotations };
}
