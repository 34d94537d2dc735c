/** Reading small stored blobs (configs, receipts, signature layers) for governance checks. */
import type { BlobDriver } from '../data/driver.js';
import { ociError } from '../errors/catalogue.js';

/** Reads a whole blob of at most `max` bytes; larger blobs are refused with MANIFEST_INVALID. */
export async function readSmallBlob(driver: BlobDriver, digest: string, max = 4 * 1024 * 1024): Promise<Buffer> {
  const stat = await driver.stat(digest);
  if (!stat) throw ociError('MANIFEST_BLOB_UNKNOWN', undefined, { detail: { digest } });
  if (stat.size > max) throw ociError('MANIFEST_INVALID', `blob ${digest} is larger than ${max} bytes`, { detail: { digest, size: stat.size } });
  const chunks: Buffer[] = [];
  for await (const chunk of await driver.read(digest)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Reads and parses a small JSON blob; invalid JSON is null. */
export async function readJsonBlob(driver: BlobDriver, digest: string, max?: number): Promise<unknown> {
  const bytes = await readSmallBlob(driver, digest, max);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return null;
  }
}
