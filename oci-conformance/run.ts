// CLI: npx tsx oci-conformance/run.ts   (configuration through OCI_* environment variables)
// Prints one line per check (PASS/FAIL/SKIP name - detail), then "N passed, N failed, N skipped".
// Exit code: 0 when nothing failed, 1 when a check failed, 2 on a configuration error.

import { configFromEnv, describeConfig } from './config.js';
import { runConformance, summarize } from './suite.js';

async function main(): Promise<number> {
  let cfg;
  try {
    cfg = configFromEnv();
  } catch (e) {
    console.error(`configuration error: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  console.log(`# OCI conformance: ${describeConfig(cfg)}`);
  const results = await runConformance(cfg, (line) => console.log(line));
  const s = summarize(results);
  console.log(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
  return s.failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`conformance run crashed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  },
);
