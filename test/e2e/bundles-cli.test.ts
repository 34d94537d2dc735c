/** `artifact-store bundle …` for scripts: publish, transition, activate, resolve, rollback, and refusals with their codes. */
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
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

/**
 * The bundle commands in-process (the same function the CLI dispatches to, on the running
 * registry's data directory), as the CLI prints them: JSON, or `CODE: message` and exit 2.
 */
async function cli(args: string[]): Promise<{ code: number; json: any; stderr: string }> {
  const { runBundleCommand } = await import('../../src/bundles/cli.js');
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { reason: { type: 'string' }, tenant: { type: 'string' } } });
  Object.assign(process.env, { ARTIFACT_STORE_DATA_DIR: reg.dataDir, ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_LOG_LEVEL: 'silent' });
  try {
    const out = await runBundleCommand(positionals[1]!, positionals.slice(2), values, 'cli:test');
    return { code: 0, json: JSON.parse(JSON.stringify(out)), stderr: '' };
  } catch (err) {
    return { code: 2, json: null, stderr: (err as Error).message };
  }
}

/** The real command line once: `node --import tsx src/cli.ts …` (slow: a cold start from source). */
function spawnCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: reg.dataDir, ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_LOG_LEVEL: 'silent' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
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
    expect(hist.at(-1)).toMatchObject({ action: 'bundle.rollback', reason: 'regression', actor: 'cli:test' });

    // The command line itself: JSON on stdout, the operator as actor.
    const real = await spawnCli(['bundle', 'resolve', 'prod', 'fraud', '--tenant', 'acme']);
    expect(real.code, real.stderr).toBe(0);
    expect(JSON.parse(real.stdout)).toMatchObject({ fallback: true, bundle_version: '1.0.0', event_seq: rb.json.event_seq });
    const refused = await spawnCli(['bundle', 'rollback', 'nowhere', 'fraud']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^INVALID_TRANSITION: /);
  }, 180_000); // the two real command lines start from source: seconds apiece on a loaded machine

  it('exits 2 with the product code on refusals (INVALID_TRANSITION, INVALID_PAYLOAD)', async () => {
    const none = await cli(['bundle', 'rollback', 'nowhere', 'fraud']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^INVALID_TRANSITION: /);
    expect((await cli(['bundle', 'resolve', '', 'fraud'])).stderr).toMatch(/^INVALID_PAYLOAD: /);
  });
});
