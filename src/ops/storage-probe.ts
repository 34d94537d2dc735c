/**
 * Readiness of the blob storage: a `read` of a digest no one stores (a GET on S3, an open on
 * disk). "Not found" is healthy; an error (S3 unreachable, permission denied, no such bucket) is
 * not. Not `stat`: S3 answers a HEAD in a missing bucket with a bare 404, indistinguishable
 * from a missing key, so a registry pointed at a bucket that does not exist said "ready"; a
 * GET's error body names NoSuchBucket.
 * The result is cached so a load balancer polling /readyz does not become storage traffic,
 * and a probe that hangs counts as a failure after `timeoutMs`.
 */
import { Writable } from 'node:stream';
import type { BlobDriver } from '../data/driver.js';
import { BlobNotFoundError } from '../data/errors.js';

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
        driver.read(ABSENT_DIGEST).then(
          // Never stored; should it exist after all, release it (drains into nothing).
          (source) => source.pipeTo(new Writable({ write: (_chunk, _enc, done) => done() })),
          (err: unknown) => {
            if (!(err instanceof BlobNotFoundError)) throw err;
          },
        ),
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
