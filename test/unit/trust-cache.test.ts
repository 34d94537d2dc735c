/**
 * Verdict caching: a repeated question is answered from the cache (same object, microseconds);
 * a push/delete in the repository or a policy change makes the next answer fresh.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlobDriver } from '../../src/data/driver.js';
import { openDatabase } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { TrustEvaluator } from '../../src/trust/evaluator.js';
import { TrustPolicyStore } from '../../src/trust/policy-store.js';
import { removeDir } from '../helpers/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'as-trust-cache-'));
const db = openDatabase(join(dir, 'metadata.db'));
afterAll(() => {
  db.$client.close();
  removeDir(dir);
});

describe('trust verdict cache', () => {
  const store = new RegistryStore(db);
  const policies = new TrustPolicyStore(db);
  const evaluator = new TrustEvaluator(db, store, {} as BlobDriver, policies, undefined);
  const digest = `sha256:${'ab'.repeat(32)}`;

  it('answers a repeated question from the cache and recomputes after a push or a policy change', async () => {
    policies.put('ns', { mode: 'enforce', enforceOnPull: true, keys: [], identities: [] }, 'test');
    const first = await evaluator.explain('ns/app', digest);
    expect(first).toMatchObject({ decision: 'unsigned', policy: { namespace: 'ns', mode: 'enforce', version: 1 } });
    expect(await evaluator.explain('ns/app', digest)).toBe(first);
    evaluator.invalidate('ns/app');
    const afterPush = await evaluator.explain('ns/app', digest);
    expect(afterPush).not.toBe(first);
    expect(await evaluator.explain('ns/app', digest)).toBe(afterPush);
    evaluator.invalidate('ns/other'); // another repository's push does not matter
    expect(await evaluator.explain('ns/app', digest)).toBe(afterPush);
    policies.put('ns', { mode: 'warn', enforceOnPull: false, keys: [], identities: [] }, 'test');
    const afterPolicy = await evaluator.explain('ns/app', digest);
    expect(afterPolicy).not.toBe(afterPush);
    expect(afterPolicy.policy).toMatchObject({ mode: 'warn', version: 2 });
  });

  it('a cached answer costs a policy-version lookup (measured)', async () => {
    await evaluator.explain('ns/app', digest);
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await evaluator.explain('ns/app', digest);
    const perCallUs = ((performance.now() - t0) / n) * 1000;
    console.log(`trust cache: cached explain ${perCallUs.toFixed(1)} µs per call`);
    expect(perCallUs).toBeLessThan(500);
  });
});
