/**
 * Which manifests `enforceOnPull` may leave readable without a trusted signature. Signatures,
 * attestations, SBOMs and other referrers must stay readable so clients can verify — but
 * `subject`, `artifactType` and layer media types are all chosen by the pusher, so "has a subject"
 * or "calls itself a signature" alone would let anyone with push rights ship an unsigned image
 * (or Flux, Tekton, OPA, Wasm, SIF … content: too many formats to deny one by one) past
 * enforcement. So the exemption is an allowlist: every layer must be a document — JSON, XML,
 * plain text, SPDX tag-value or a signature envelope (COSE) — which no runtime unpacks or executes.
 */
const DOCUMENT_TYPES = new Set(['application/json', 'application/xml', 'text/plain', 'text/spdx', 'application/cose', 'application/vnd.cyclonedx']);

function isDocumentType(mediaType: string): boolean {
  const type = mediaType.split(';', 1)[0]!.trim().toLowerCase();
  return DOCUMENT_TYPES.has(type) || type.endsWith('+json') || type.endsWith('+xml');
}

/**
 * True when some layer is not a document, so a runtime might unpack or execute it (an index,
 * or a manifest without layers, carries none itself).
 */
export function carriesDeployableLayers(payload: Buffer): boolean {
  let doc: { layers?: unknown };
  try {
    doc = JSON.parse(payload.toString('utf8')) as { layers?: unknown };
  } catch {
    return true; // unreadable: never exempt
  }
  if (doc.layers === undefined) return false;
  if (!Array.isArray(doc.layers)) return true;
  return !doc.layers.every((l) => {
    const type = typeof l === 'object' && l !== null ? (l as { mediaType?: unknown }).mediaType : undefined;
    return typeof type === 'string' && isDocumentType(type);
  });
}
