/**
 * Which manifests `enforceOnPull` may leave readable without a trusted signature. Signatures,
 * attestations, SBOMs and other referrers must stay readable so clients can verify — but
 * `subject`, `artifactType` and layer media types are all chosen by the pusher, so "has a subject"
 * or "calls itself a signature" alone would let anyone with push rights ship an unsigned image
 * past enforcement. A manifest is exempt only if it also carries nothing a runtime deploys:
 * no container filesystem layer, Helm chart or Wasm module.
 */
const DEPLOYABLE_LAYER = [
  'application/vnd.oci.image.layer.', // incl. .nondistributable.
  'application/vnd.docker.image.rootfs.',
  'application/vnd.cncf.helm.chart.content.',
  'application/vnd.wasm.content.layer.',
  'application/vnd.module.wasm.content.layer.',
];

/** True when the manifest has a layer a runtime would unpack or execute (an index has none itself). */
export function carriesDeployableLayers(payload: Buffer): boolean {
  let doc: { layers?: unknown };
  try {
    doc = JSON.parse(payload.toString('utf8')) as { layers?: unknown };
  } catch {
    return true; // unreadable: never exempt
  }
  if (!Array.isArray(doc.layers)) return false;
  return doc.layers.some((l) => {
    const type = typeof l === 'object' && l !== null ? (l as { mediaType?: unknown }).mediaType : undefined;
    return typeof type !== 'string' || DEPLOYABLE_LAYER.some((p) => type.startsWith(p));
  });
}
