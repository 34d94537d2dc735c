/**
 * Two registry PROCESSES on one data directory (two SQLite connections, truly in parallel on two
 * cores) activating different bundles in one scope at the same time: every request either
 * applies or is refused as a retryable CONFLICT, and afterwards exactly one bundle is ACTIVE in
 * the scope, the same one both servers resolve, with the highest applied event sequence.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, errorOf, passReceipt, pushBundle, pushReceipt } from '../helpers/bundles.js';
import { removeDir, startRegistryProcess, type RegistryProcess } from '../helpers/registry.js';

let a: RegistryProcess;
let b: RegistryProcess;
const dir = mkdtempSync(join(tmpdir(), 'as-bundles-2proc-'));
const N = 6;

/** `node --import tsx src/main.ts` on the shared data directory (no build needed). */
const startProcess = (): Promise<RegistryProcess> =>
  startRegistryProcess({ ARTIFACT_STORE_DATA_DIR: dir, ARTIFACT_STORE_LOG_LEVEL: 'warn' }, { entry: ['--import', 'tsx', 'src/main.ts'], readyPath: '/readyz', startupMs: 45_000, pollMs: 200 });

beforeAll(async () => {
  // One after the other: the first applies the migrations.
  a = await startProcess();
  b = await startProcess();
  expect((await api(a.url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0' } })).status).toBe(200);
  for (let i = 0; i < N; i++) {
    const p = await pushBundle(a.url, 'ml/race', bundleConfig('duel', `1.0.${i}`));
    await pushReceipt(a.url, 'ml/race', p, passReceipt());
    expect((await api(a.url, 'POST', '/api/v1/bundles', { repository: 'ml/race', digest: p.digest })).status).toBe(201);
    for (const to of ['CANDIDATE', 'APPROVED']) expect((await api(b.url, 'POST', `/api/v1/bundles/duel/1.0.${i}/transitions`, { to })).status).toBe(200);
  }
});
afterAll(async () => {
  for (const s of [a, b]) await s?.stop();
  removeDir(dir); // a given data directory: stop() leaves it
});

describe('activation across two processes sharing a database', () => {
  it('leaves exactly one ACTIVE bundle per scope, whatever the interleaving', async () => {
    for (let round = 0; round < 3; round++) {
      const scope = { environment: `duel-${round}`, model_family: 'fraud' };
      const results = await Promise.all(
        Array.from({ length: N }, (_, i) => api(i % 2 ? b.url : a.url, 'POST', '/api/v1/activations', { scope, bundle_id: 'duel', bundle_version: `1.0.${i}`, reason: `round ${round}` })),
      );
      for (const r of results) if (r.status !== 200) expect(errorOf(r)).toMatchObject({ code: 'CONFLICT', retryable: true });
      const applied = results.filter((r) => r.status === 200);
      expect(applied.length).toBeGreaterThan(0);
      const winner = applied.reduce((x, y) => (x.body.event_seq > y.body.event_seq ? x : y)).body;
      for (const srv of [a, b]) {
        const res = await api(srv.url, 'GET', `/api/v1/resolve?environment=duel-${round}&model_family=fraud`);
        expect(res.body).toMatchObject({ bundle_version: winner.bundle_version, event_seq: winner.event_seq });
        const hist = await api(srv.url, 'GET', `/api/v1/activations?environment=duel-${round}&model_family=fraud`);
        expect(hist.body.active).toMatchObject({ bundle_version: winner.bundle_version });
        // Every applied activation is in the scope's history, in event order.
        const seqs = hist.body.history.filter((h: any) => h.to === 'ACTIVE').map((h: any) => h.event_seq);
        expect(seqs).toEqual(applied.map((r) => r.body.event_seq).sort((x, y) => x - y));
      }
    }
    // Across the rounds each bundle is ACTIVE iff it won some scope.
    const winners = new Set<string>();
    for (let round = 0; round < 3; round++) winners.add((await api(b.url, 'GET', `/api/v1/resolve?environment=duel-${round}&model_family=fraud`)).body.bundle_version);
    for (let i = 0; i < N; i++) {
      const state = (await api(a.url, 'GET', `/api/v1/bundles/duel/1.0.${i}`)).body.state;
      expect(state).toBe(winners.has(`1.0.${i}`) ? 'ACTIVE' : 'APPROVED');
    }
  });
});
