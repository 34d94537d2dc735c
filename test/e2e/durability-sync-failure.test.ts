/**
 * A failed WAL sync is final (src/meta/write-batcher.ts, "fsyncgate"): through a real registry,
 * the first write whose WAL sync fails gets a retryable 503, so does every write after it, and
 * /readyz says why; after a restart the same write succeeds. The failure is real, in the
 * production sync path: the WAL's path is made a symlink loop before the batcher first opens it
 * (SQLite keeps using its own descriptor), so opening it for fdatasync fails with ELOOP.
 */
import { existsSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pushBlob, pushImage, randomBlob, sha256 } from '../helpers/http.js';
import { startTestRegistry } from '../helpers/registry.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;

describe('a failed WAL sync', () => {
  // SQLite's WAL file is broken on disk here; PostgreSQL's WAL is the server's, out of the test's reach.
  it.skipIf(onPostgres)('refuses writes with a retryable 503 and makes /readyz not ready until a restart', async () => {
    // No periodic checkpoint: nothing may sync the WAL before the test breaks its path.
    let reg = await startTestRegistry({ checkpointIntervalSeconds: 0 });
    try {
      const wal = join(reg.dataDir, 'metadata.db-wal');
      expect(existsSync(wal)).toBe(true);
      renameSync(wal, `${wal}.held`);
      symlinkSync(wal, wal); // points at itself: open() fails with ELOOP

      const blob = randomBlob(500);
      const upload = () => fetch(`${reg.url}/v2/s/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob, headers: { 'Content-Type': 'application/octet-stream' } });
      for (let i = 0; i < 2; i++) {
        const res = await upload();
        const body = (await res.json()) as { errors: { code: string; message: string }[] };
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('30');
        expect(body.errors[0]?.code).toBe('UNAVAILABLE');
        expect(body.errors[0]?.message).toMatch(/could not be synced to disk \(.*ELOOP.*restarted/);
      }
      const ready = await fetch(`${reg.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'database not durable', reason: expect.stringMatching(/ELOOP/) });
      expect((await fetch(`${reg.url}/healthz`)).status).toBe(200); // alive: the operator restarts it

      // Put the WAL back so SQLite's own descriptor and the path agree again, then restart.
      unlinkSync(wal);
      renameSync(`${wal}.held`, wal);
      reg = await reg.restart();
      expect((await fetch(`${reg.url}/readyz`)).status).toBe(200);
      expect((await upload()).status).toBe(201); // the retry succeeds (pushes are idempotent)
      await pushImage(reg.url, 's/app', 'v1');
      await pushBlob(reg.url, 's/other', randomBlob(10));
    } finally {
      await reg.stop();
    }
  });
});
