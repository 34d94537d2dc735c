/**
 * Our conformance suite (oci-conformance/) against the registry running as its own process,
 * with every optional check required: what Distribution may skip, we must do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../oci-conformance/config.js';
import { runConformance, type CheckResult } from '../../oci-conformance/suite.js';
import { startRegistryProcess } from './registry.js';

export function conformanceAgainst(label: string, env: () => Promise<Record<string, string>> | Record<string, string>): void {
  describe(`OCI conformance (${label})`, () => {
    let reg: Awaited<ReturnType<typeof startRegistryProcess>>;
    let results: CheckResult[] = [];
    beforeAll(async () => {
      reg = await startRegistryProcess(await env());
      const cfg = configFromEnv({ OCI_ROOT_URL: reg.url, OCI_NAMESPACE: 'conformance/test', OCI_REQUIRE_OPTIONAL: '1', OCI_SEED: 'ci' });
      results = await runConformance(cfg);
    }, 300_000);
    afterAll(async () => {
      await reg?.stop();
    });

    it('runs every check', () => {
      expect(results.length).toBeGreaterThan(50);
    });
    it('passes every check, optional ones included', () => {
      const failed = results.filter((r) => !r.ok || r.skipped).map((r) => `${r.workflow}: ${r.name} - ${r.detail ?? 'skipped'}`);
      expect(failed).toEqual([]);
    });
  });
}

