// Runs the conformance checks against a registry and reports one result per check.

import { CheckFailure, Skip, describeError } from './assert.js';
import type { ConformanceConfig, Workflow } from './config.js';
import { Context, type Check } from './context.js';
import { pullChecks } from './checks-pull.js';
import { pushBlobChecks } from './checks-push-blobs.js';
import { pushManifestChecks } from './checks-push-manifests.js';
import { discoveryChecks } from './checks-discovery.js';
import { referrersChecks } from './checks-referrers.js';
import { managementChecks } from './checks-management.js';

export interface CheckResult {
  name: string;
  workflow: string;
  /** False only for failures; skipped checks are ok (nothing wrong was observed). */
  ok: boolean;
  detail?: string;
  skipped?: boolean;
}

export const OPTIONAL_PREFIX = '[optional] ';

/** All checks in execution order (content management last: it deletes things). */
export function allChecks(cfg: ConformanceConfig): Check[] {
  return [
    ...pullChecks,
    ...pushBlobChecks,
    ...pushManifestChecks,
    ...discoveryChecks,
    ...referrersChecks,
    ...managementChecks(cfg),
  ];
}

export function displayName(check: Check): string {
  return check.optional ? `${OPTIONAL_PREFIX}${check.name}` : check.name;
}

function message(e: unknown): string {
  return e instanceof CheckFailure || e instanceof Skip ? e.message : `unexpected error: ${describeError(e)}`;
}

export async function runConformance(
  cfg: ConformanceConfig,
  log: (line: string) => void = () => {},
): Promise<CheckResult[]> {
  const ctx = new Context(cfg, log);
  const results: CheckResult[] = [];
  const report = (r: CheckResult) => {
    results.push(r);
    const tag = r.skipped ? 'SKIP' : r.ok ? 'PASS' : 'FAIL';
    log(`${tag} ${r.name}${r.detail ? ` - ${r.detail}` : ''}`);
  };
  try {
    for (const check of allChecks(cfg)) {
      const name = displayName(check);
      const workflow: Workflow = check.workflow;
      if (!cfg.workflows[workflow]) {
        report({ name, workflow, ok: true, skipped: true, detail: `workflow ${workflow} disabled` });
        continue;
      }
      try {
        const detail = await check.run(ctx);
        report({ name, workflow, ok: true, ...(detail ? { detail } : {}) });
      } catch (e) {
        if (e instanceof Skip && !cfg.requireOptional) {
          report({ name, workflow, ok: true, skipped: true, detail: e.message });
        } else if (e instanceof Skip) {
          report({ name, workflow, ok: false, detail: `required by OCI_REQUIRE_OPTIONAL: ${e.message}` });
        } else {
          report({ name, workflow, ok: false, detail: message(e) });
        }
      }
    }
  } finally {
    await ctx.cleanup().catch((e: unknown) => log(`cleanup failed: ${message(e)}`));
  }
  return results;
}

export function summarize(results: CheckResult[]): { passed: number; failed: number; skipped: number } {
  const skipped = results.filter((r) => r.skipped).length;
  const failed = results.filter((r) => !r.ok && !r.skipped).length;
  return { passed: results.length - skipped - failed, failed, skipped };
}
