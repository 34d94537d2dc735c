/**
 * Every storage key, in one place. Both drivers use the same layout (the S3 driver puts it
 * under its key prefix):
 *
 *   blobs/<algo>/<hex[0..2]>/<hex>     committed content, addressed by digest only
 *   uploads/<uuid>                     fs: the partial bytes of an upload session (a file)
 *   uploads/<uuid>/data                fs: the same, for sessions started before #17 (a
 *                                      directory per session cost an inode allocation and free
 *                                      per blob; FsDriver reads the layout from the session state)
 *   uploads/<uuid>/session             s3: marker written when the session starts
 *   uploads/<uuid>/parts/<n>.<nonce>   s3: one full part (a new nonce per append, so a failed
 *                                      append never overwrites what the saved state names)
 *   uploads/<uuid>/tail.<nonce>        s3: bytes received after the last full part
 *
 * Repository names never appear in keys: a repository "has" a blob only through metadata, so
 * no name (however it is spelled) can change which bytes a key points at.
 */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DIGEST_RE = /^(sha256|sha512|blake3):([a-f0-9]{64}|[a-f0-9]{128})$/;

export function isUploadId(id: string): boolean {
  return UUID_RE.test(id);
}

function checkedDigest(digest: string): [string, string] {
  const m = DIGEST_RE.exec(digest);
  if (!m) throw new Error(`not a content address: ${digest}`);
  return [m[1]!, m[2]!];
}

function checkedUpload(id: string): string {
  if (!isUploadId(id)) throw new Error(`not an upload id: ${id}`);
  return id;
}

export const keys = {
  blob(digest: string): string {
    const [algo, hex] = checkedDigest(digest);
    return `blobs/${algo}/${hex.slice(0, 2)}/${hex}`;
  },
  uploadDir: (id: string): string => `uploads/${checkedUpload(id)}`,
  uploadData: (id: string): string => `uploads/${checkedUpload(id)}/data`,
  uploadFile: (id: string): string => `uploads/${checkedUpload(id)}`,
  uploadMarker: (id: string): string => `uploads/${checkedUpload(id)}/session`,
  uploadPart: (id: string, index: number, nonce: string): string => `uploads/${checkedUpload(id)}/parts/${index}.${nonce}`,
  uploadTailPiece: (id: string, nonce: string): string => `uploads/${checkedUpload(id)}/tail.${nonce}`,
};
