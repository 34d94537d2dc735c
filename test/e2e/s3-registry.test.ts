/**
 * The registry process configured with an S3 bucket (a real s3rver process over HTTP): the
 * conformance suite and a skopeo round trip behave as they do on local disk.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../oci-conformance/config.js';
import { runConformance } from '../../oci-conformance/suite.js';
import { randomBlob, sha256 } from '../helpers/http.js';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';
import { registryS3Env, startS3Server, type S3Server } from '../helpers/s3-server.js';

const run = promisify(execFile);
let s3: S3Server;
let reg: Awaited<ReturnType<typeof startRegistryProcess>>;
const work = mkdtempSync(join(tmpdir(), 'as-s3-'));

beforeAll(async () => {
  s3 = await startS3Server();
  reg = await startRegistryProcess(s3Env());
}, 60_000);

const s3Env = (): Record<string, string> => ({
  ...registryS3Env(s3),
});
afterAll(async () => {
  await reg?.stop();
  await s3?.stop();
  removeDir(work);
});

describe('registry on S3', () => {
  it('passes the conformance suite, optional checks included', async () => {
    const cfg = configFromEnv({ OCI_ROOT_URL: reg.url, OCI_NAMESPACE: 's3/conformance', OCI_REQUIRE_OPTIONAL: '1', OCI_SEED: 's3' });
    const results = await runConformance(cfg);
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => !r.ok || r.skipped).map((r) => `${r.name}: ${r.detail ?? ''}`)).toEqual([]);
  }, 300_000);

  it('round-trips a multi-arch image with skopeo', async () => {
    const host = reg.url.replace('http://', '');
    const { top } = writeLayout(join(work, 'multi'), 'm', [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    await run('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${join(work, 'multi')}:m`, `docker://${host}/s3/multi:1`], { timeout: 60_000 });
    await run('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${host}/s3/multi:1`, `oci:${join(work, 'back')}:m`], { timeout: 60_000 });
    const index = JSON.parse(readFileSync(join(work, 'back', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(top.digest);
  }, 120_000);

  it('chunked upload across part boundaries, then ranged reads', async () => {
    const blob = randomBlob(11 * 1024 * 1024 + 17);
    const post = await fetch(`${reg.url}/v2/s3/chunks/blobs/uploads/`, { method: 'POST' });
    let loc = post.headers.get('location')!;
    for (let off = 0; off < blob.length; off += 3 * 1024 * 1024) {
      const chunk = blob.subarray(off, off + 3 * 1024 * 1024);
      const res = await fetch(`${reg.url}${loc}`, { method: 'PATCH', body: chunk, headers: { 'Content-Range': `${off}-${off + chunk.length - 1}` } });
      expect(res.status).toBe(202);
      loc = res.headers.get('location')!;
    }
    expect((await fetch(`${reg.url}${loc}?digest=${sha256(blob)}`, { method: 'PUT' })).status).toBe(201);
    const ranged = await fetch(`${reg.url}/v2/s3/chunks/blobs/${sha256(blob)}`, { headers: { Range: 'bytes=5242870-5242889' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(blob.subarray(5242870, 5242890))).toBe(true);
    const whole = await fetch(`${reg.url}/v2/s3/chunks/blobs/${sha256(blob)}`);
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(blob));
  }, 120_000);

  it('can answer blob GET with a 307 to a short-lived presigned URL', async () => {
    const redirecting = await startRegistryProcess({ ...s3Env(), ARTIFACT_STORE_S3_REDIRECT: 'true' });
    try {
      const blob = randomBlob(100_000);
      expect((await fetch(`${redirecting.url}/v2/s3/redirect/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob })).status).toBe(201);
      const res = await fetch(`${redirecting.url}/v2/s3/redirect/blobs/${sha256(blob)}`, { redirect: 'manual' });
      expect(res.status).toBe(307);
      const location = res.headers.get('location')!;
      expect(location).toContain('X-Amz-Expires=');
      const direct = await fetch(location);
      expect(sha256(Buffer.from(await direct.arrayBuffer()))).toBe(sha256(blob));
      // HEAD still answers from the registry, with the digest and size
      const head = await fetch(`${redirecting.url}/v2/s3/redirect/blobs/${sha256(blob)}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe('100000');
    } finally {
      await redirecting.stop();
    }
  }, 60_000);
});
