/**
 * Readiness of the blob storage: `stat` of a digest no one stores (a cheap HEAD on S3, a
 * stat on disk). "Not found" is healthy; an error (S3 unreachable, permission denied) is not.
 * The result is cached so a load balancer polling /readyz does not become storage traffic,
 * and a probe that hangs counts as a failure after `timeoutMs`.
 */
import type { BlobDriver } from '../data/driver.js';

/** All zeros: not the digest of any content anyone can push. */
const ABSENT_DIGEST = 'sha256:0000000000000000000000000000000000000000000000000000000000000000';

export function storageProbe(driver: BlobDriver, cacheMs = 5_000, timeoutMs = 3_000): () => Promise<string | null> {
  let checkedAt = -Infinity;
  let last: string | null = null;
  let running: Promise<string | null> | null = null;
  const probe = async (): Promise<string | null> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        driver.stat(ABSENT_DIGEST),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return null;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timer);
    }
  };
  return async () => {
    if (performance.now() - checkedAt < cacheMs) return last;
    // Concurrent probes share one storage call.
    running ??= probe().then((r) => {
      last = r;
      checkedAt = performance.now();
      running = null;
      return r;
    });
    return running;
  };
}
