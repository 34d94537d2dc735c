/** Media types the registry understands as manifests. */
export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export type ManifestKind = 'image' | 'index';

const KINDS: Record<string, ManifestKind> = {
  [MEDIA_TYPES.ociManifest]: 'image',
  [MEDIA_TYPES.dockerManifest]: 'image',
  [MEDIA_TYPES.ociIndex]: 'index',
  [MEDIA_TYPES.dockerManifestList]: 'index',
};

export const manifestKind = (mediaType: string): ManifestKind | undefined => KINDS[mediaType];
