import { defineConfig } from 'vitest/config';

/**
 * Benchmarks that need the registry's internals in-process (search p99 over 100k manifests,
 * trust verification cost, event-log rebuild rate). They measure and report; they are not part
 * of `npm test` (speed targets live here, not in timed tests). Run: `npm run bench:tests`.
 */
export default defineConfig({
  test: {
    include: ['bench/tests/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    maxWorkers: 1,
  },
});
