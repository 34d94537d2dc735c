/**
 * Issue #13's target: `GET /api/v1/resolve` p99 under 2 ms at 64 concurrent clients. The server
 * runs as its own process (the built dist/, as operators run it) so the client's event loop does
 * not inflate the server's latency; a manifest GET at the same concurrency is measured beside it
 * as the machine's reference. Reports p50/p99; asserts only that every answer was right.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, passReceipt, pushBundle, pushReceipt } from '../../test/helpers/bundles.js';
import { pushImage } from '../../test/helpers/http.js';
import { startRegistryProcess, type RegistryProcess } from '../../test/helpers/registry.js';

const CLIENTS = 64;
const REQUESTS = Number(process.env.RESOLVE_BENCH_REQUESTS ?? 20_000);

let reg: RegistryProcess;
beforeAll(async () => {
  reg = await startRegistryProcess({ ARTIFACT_STORE_LOG_LEVEL: 'warn' });
  expect((await api(reg.url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0' } })).status).toBe(200);
  const b = await pushBundle(reg.url, 'ml/fraud', bundleConfig('scorer', '1.0.0'));
  await pushReceipt(reg.url, 'ml/fraud', b, passReceipt());
  expect((await api(reg.url, 'POST', '/api/v1/bundles', { repository: 'ml/fraud', digest: b.digest })).status).toBe(201);
  for (const to of ['CANDIDATE', 'APPROVED']) expect((await api(reg.url, 'POST', '/api/v1/bundles/scorer/1.0.0/transitions', { to, reason: 'bench' })).status).toBe(200);
  const act = await api(reg.url, 'POST', '/api/v1/activations', { scope: { environment: 'prod', model_family: 'fraud' }, bundle_id: 'scorer', bundle_version: '1.0.0', reason: 'bench' });
  expect(act.status).toBe(200);
  await pushImage(reg.url, 'ml/app', 'v1');
}, 120_000);
afterAll(async () => {
  await reg?.stop();
});

async function hammer(path: string, check: (status: number, body: string) => boolean): Promise<{ p50: number; p99: number; rate: number }> {
  const latencies: number[] = [];
  let next = 0;
  let wrong = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < REQUESTS) {
        next++;
        const t = performance.now();
        const res = await fetch(`${reg.url}${path}`);
        const body = await res.text();
        latencies.push(performance.now() - t);
        if (!check(res.status, body)) wrong++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  expect(wrong).toBe(0);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { p50: at(0.5), p99: at(0.99), rate: latencies.length / seconds };
}

describe(`resolve at ${CLIENTS} concurrent clients`, () => {
  it('reports p50/p99 beside a manifest GET', async () => {
    const warm = await hammer('/api/v1/resolve?environment=prod&model_family=fraud', (s) => s === 200);
    void warm;
    const resolve = await hammer('/api/v1/resolve?environment=prod&model_family=fraud', (s, b) => s === 200 && b.includes('"bundle_id":"scorer"'));
    const manifest = await hammer('/v2/ml/app/manifests/v1', (s) => s === 200);
    const fmt = (r: { p50: number; p99: number; rate: number }) => `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${Math.round(r.rate)} req/s`;
    process.stdout.write(`resolve @c${CLIENTS}: ${fmt(resolve)}\nmanifest GET @c${CLIENTS}: ${fmt(manifest)}\n`);
  });
});
