/**
 * Two registry PROCESSES on one data directory (two SQLite connections, truly in parallel on two
 * cores) activating different bundles in one scope at the same time: every request either
 * applies or is refused as a retryable CONFLICT, and afterwards exactly one bundle is ACTIVE in
 * the scope, the same one both servers resolve, with the highest applied event sequence.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, errorOf, passReceipt, pushBundle, pushReceipt } from '../helpers/bundles.js';
import { removeDir } from '../helpers/registry.js';

interface Server {
  url: string;
  proc: ChildProcess;
}
let a: Server;
let b: Server;
const dir = mkdtempSync(join(tmpdir(), 'as-bundles-2proc-'));
const N = 6;

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });

/** `node --import tsx src/main.ts` on the shared data directory (no build needed). */
async function startProcess(): Promise<Server> {
  const port = await freePort();
  let output = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, ARTIFACT_STORE_PORT: String(port), ARTIFACT_STORE_HOST: '127.0.0.1', ARTIFACT_STORE_DATA_DIR: dir, ARTIFACT_STORE_LOG_LEVEL: 'warn', ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_RATE_LIMIT_PER_SECOND: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 45_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`registry exited early:\n${output}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return { url, proc };
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`registry did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopProcess(s: Server | undefined): Promise<void> {
  if (!s || s.proc.exitCode !== null) return;
  const exited = new Promise((r) => s.proc.once('exit', r));
  s.proc.kill('SIGTERM');
  await exited;
}

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
  await stopProcess(a);
  await stopProcess(b);
  removeDir(dir);
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
