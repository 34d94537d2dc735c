/**
 * Pull cost of trust enforcement: manifest GET of a signed image in a namespace with no policy
 * vs. one under `enforce` + `enforceOnPull` (cached verdicts), sequential latency and c64 rate,
 * against the same in-process registry. Prints the numbers; asserts only a loose bound because
 * CI machines are shared (the target is within 20% at c64).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, signDigestBundle, signDigestLegacyTag } from '../../test/helpers/cosign.js';
import { pushImage } from '../../test/helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../../test/helpers/registry.js';

let reg: TestRegistry;
const key = generateKey('p256');

beforeAll(async () => {
  reg = await startTestRegistry();
  for (const ns of ['plain', 'enforced']) {
    const img = await pushImage(reg.url, `${ns}/app`, 'v1');
    await signDigestLegacyTag(reg.url, `${ns}/app`, { digest: img.digest, size: img.bytes.length }, key);
    await signDigestBundle(reg.url, `${ns}/app`, { digest: img.digest, size: img.bytes.length }, key);
  }
  const res = await fetch(`${reg.url}/api/v1/namespaces/enforced/trust`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ mode: 'enforce', enforceOnPull: true, keys: [{ id: 'k', publicKey: key.publicKeyPem }] }) });
  expect(res.status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

async function get(ns: string): Promise<void> {
  const res = await fetch(`${reg.url}/v2/${ns}/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${ns}: ${res.status}`);
}

/** Alternates plain and enforced requests one by one, so machine load hits both alike. */
async function sequentialPairs(n: number): Promise<Record<'plain' | 'enforced', { p50: number; p99: number }>> {
  const times = { plain: [] as number[], enforced: [] as number[] };
  for (let i = 0; i < n; i++) {
    for (const ns of ['plain', 'enforced'] as const) {
      const t0 = performance.now();
      await get(ns);
      times[ns].push(performance.now() - t0);
    }
  }
  const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)]!;
  return { plain: { p50: pct(times.plain, 0.5), p99: pct(times.plain, 0.99) }, enforced: { p50: pct(times.enforced, 0.5), p99: pct(times.enforced, 0.99) } };
}

async function rate(ns: string, total: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) await get(ns);
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('pull latency with and without enforcement', () => {
  it('an enforced pull costs a cached lookup, not a verification', async () => {
    const t0 = performance.now();
    await get('enforced'); // first pull verifies both signatures
    const first = performance.now() - t0;
    await sequentialPairs(100); // warm up
    const seq = await sequentialPairs(1000);
    const c64: Record<string, number[]> = { plain: [], enforced: [] };
    for (let round = 0; round < 6; round++) for (const ns of ['plain', 'enforced']) c64[ns]!.push(await rate(ns, 1500, 64));
    const ratio = median(c64.enforced!) / median(c64.plain!);
    console.log(
      `trust bench: first enforced pull ${first.toFixed(1)} ms; sequential (interleaved) p50/p99 ms plain ${seq.plain.p50.toFixed(2)}/${seq.plain.p99.toFixed(2)}, enforced ${seq.enforced.p50.toFixed(2)}/${seq.enforced.p99.toFixed(2)}; ` +
        `c64 req/s (6 alternating rounds) plain ${c64.plain!.map((r) => r.toFixed(0)).join(',')} enforced ${c64.enforced!.map((r) => r.toFixed(0)).join(',')} (median ratio ${ratio.toFixed(2)})`,
    );
    expect(ratio).toBeGreaterThan(0.5);
  }, 120_000);
});
