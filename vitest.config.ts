import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Deadlines for hangs, not speed checks: on a machine at load ~15 honest tests (process
    // starts, scrypt, real clients) ran 5-10x slower than idle and crossed 60 s.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Client tests (skopeo, servers) are heavy; two cores here.
    maxWorkers: 2,
  },
});
