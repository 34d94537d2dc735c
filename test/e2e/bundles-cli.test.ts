/** `artifact-store bundle …` for scripts: publish, transition, activate, resolve, rollback, and refusals with their codes. */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, passReceipt, pushBundle, pushReceipt, type Pushed } from '../helpers/bundles.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let v1: Pushed;
let v2: Pushed;

beforeAll(async () => {
  reg = await startTestRegistry();
  for (const v of ['1.0.0', '2.0.0']) {
    const b = await pushBundle(reg.url, 'ml/cli', bundleConfig('clibundle', v));
    await pushReceipt(reg.url, 'ml/cli', b, passReceipt());
    if (v === '1.0.0') v1 = b;
    else v2 = b;
  }
  expect((await api(reg.url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.3.0' } })).status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

/** The CLI from source (`node --import tsx src/cli.ts`), on the running registry's data directory. */
function cli(args: string[]): Promise<{ code: number; json: any; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: reg.dataDir, ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_LOG_LEVEL: 'silent' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, json: parseOrThrow(stdout), stderr }),
    );
  });
}

describe('bundle CLI', () => {
  it('publishes, approves, activates, resolves and rolls back; the server sees the same state', async () => {
    expect((await cli(['bundle', 'publish', 'ml/cli', v1.digest])).json).toMatchObject({ status: 'ACCEPTED', bundle_id: 'clibundle', bundle_version: '1.0.0', state: 'REGISTERED' });
    expect((await cli(['bundle', 'publish', 'ml/cli', v1.digest])).json).toMatchObject({ status: 'DUPLICATE' });
    for (const to of ['CANDIDATE', 'APPROVED']) expect((await cli(['bundle', 'transition', 'clibundle', '1.0.0', to, '--reason', 'ok'])).json).toMatchObject({ state: to, changed: true });
    expect((await api(reg.url, 'POST', '/api/v1/bundles', { repository: 'ml/cli', digest: v2.digest })).status).toBe(201);
    for (const to of ['CANDIDATE', 'APPROVED']) expect((await api(reg.url, 'POST', '/api/v1/bundles/clibundle/2.0.0/transitions', { to })).status).toBe(200);

    const a1 = await cli(['bundle', 'activate', 'clibundle', '1.0.0', 'prod', 'fraud', '--reason', 'first']);
    expect(a1.json).toMatchObject({ scope: { environment: 'prod', model_family: 'fraud' }, bundle_version: '1.0.0', changed: true });
    const a2 = await api(reg.url, 'POST', '/api/v1/activations', { scope: { environment: 'prod', model_family: 'fraud' }, bundle_id: 'clibundle', bundle_version: '2.0.0' });
    expect((await cli(['bundle', 'resolve', 'prod', 'fraud', '--tenant', 'acme'])).json).toMatchObject({ fallback: true, bundle_version: '2.0.0', event_seq: a2.body.event_seq, digest: v2.digest });
    const rb = await cli(['bundle', 'rollback', 'prod', 'fraud', '--reason', 'regression']);
    expect(rb.json).toMatchObject({ bundle_version: '1.0.0' });
    // The running server answers from the same database, with the CLI's event.
    expect((await api(reg.url, 'GET', '/api/v1/resolve?environment=prod&model_family=fraud')).body).toMatchObject({ bundle_version: '1.0.0', event_seq: rb.json.event_seq });
    const hist = (await api(reg.url, 'GET', '/api/v1/bundles/clibundle/1.0.0')).body.history;
    expect(hist.at(-1)).toMatchObject({ action: 'bundle.rollback', reason: 'regression', actor: expect.stringMatching(/^cli:/) });
  }, 240_000); // each CLI call starts a registry from source: seconds apiece on a loaded machine

  it('exits 2 with the product code on refusals (INVALID_TRANSITION, INVALID_PAYLOAD)', async () => {
    const none = await cli(['bundle', 'rollback', 'nowhere', 'fraud']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^INVALID_TRANSITION: /);
    expect((await cli(['bundle', 'resolve', '', 'fraud'])).stderr).toMatch(/^INVALID_PAYLOAD: /);
  }, 120_000);
});

function parseOrThrow(stdout: string): any {
  if (!stdout.trim()) return null;
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(`CLI printed more than JSON:\n${stdout}`);
  }
}
