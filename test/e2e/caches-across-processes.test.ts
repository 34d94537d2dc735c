/**
 * In-memory views with two registry processes on one database (issue #15): what one process
 * writes, the other answers from within a second or two, not after a restart. Governed
 * namespaces (families catalogue) and trust decisions (a signature pushed through the other
 * process). SQLite file, or PostgreSQL with ARTIFACT_STORE_TEST_POSTGRES_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, signDigestReferrer } from '../helpers/cosign.js';
import { pushImage } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let a: TestRegistry;
let b: TestRegistry;
beforeAll(async () => {
  a = await startTestRegistry();
  b = await startTestRegistry({}, a.dataDir);
});
afterAll(async () => {
  await b.stop();
  await a.stop();
});

/** Polls `read` until it returns `want` (the other process's view catches up), or fails after `ms`. */
async function eventually<T>(read: () => Promise<T>, want: T, ms = 5000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const got = await read();
    if (JSON.stringify(got) === JSON.stringify(want)) return Date.now() - started;
    if (Date.now() - started > ms) expect(got).toEqual(want);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const put = (url: string, body: unknown): Promise<Response> => fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

describe('per-process views follow another process writes', () => {
  it('a namespace governed through one process is governed on the other', async () => {
    const governed = async (reg: TestRegistry) => ((await (await fetch(`${reg.url}/api/v1/namespaces/gov/governance`)).json()) as { governed: boolean }).governed;
    expect(await governed(b)).toBe(false);
    expect((await put(`${a.url}/api/v1/namespaces/gov/governance`, { governed: true })).status).toBe(200);
    await eventually(() => governed(b), true);
    // The push path reads the same view: an unregistered artifact type is refused on B now.
    const refused = await pushImage(b.url, 'gov/app', 'v1', { artifactType: 'application/vnd.example.unregistered' }).then(
      () => null,
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/not registered/);
    expect((await put(`${a.url}/api/v1/namespaces/gov/governance`, { governed: false })).status).toBe(200);
    await eventually(() => governed(b), false);
  });

  it('a trust decision cached on one process changes when a signature is pushed through the other', async () => {
    const key = generateKey('p256');
    expect((await put(`${a.url}/api/v1/namespaces/sig/trust`, { mode: 'enforce', enforceOnPull: true, keys: [{ id: 'k', publicKey: key.publicKeyPem }] })).status).toBe(200);
    const img = await pushImage(a.url, 'sig/app', 'v1');
    const pull = async (reg: TestRegistry) => (await fetch(`${reg.url}/v2/sig/app/manifests/${img.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).status;
    // Wait for B to see the policy, then let it cache its "untrusted" decision.
    await eventually(() => pull(b), 403);
    expect(await pull(b)).toBe(403);
    await signDigestReferrer(a.url, 'sig/app', { digest: img.digest, size: img.bytes.length }, key);
    await eventually(() => pull(b), 200);
  });
});
