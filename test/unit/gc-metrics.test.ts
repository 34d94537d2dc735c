/**
 * GC run metrics on the failure paths the end-to-end test cannot reach: a run that fails part
 * way (a module's protection check throws) is counted as `failed` with its time, reclaims
 * nothing; a run refused because another is running is not a run at all.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { FsDriver } from '../../src/data/fs-driver.js';
import type { Protection } from '../../src/governance/contracts.js';
import { Governance } from '../../src/governance/hooks.js';
import { createLogger } from '../../src/log.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { Metrics } from '../../src/metrics/index.js';
import { GarbageCollector } from '../../src/operations/gc.js';
import { PullRecorder } from '../../src/operations/pulls.js';
import { OperationsStore } from '../../src/operations/store.js';
import { sha256 } from '../helpers/http.js';

const log = createLogger('silent');
let dir: string;
let db: Db;
let driver: FsDriver;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'as-gc-metrics-'));
  db = openDatabase(join(dir, 'metadata.db'));
  driver = new FsDriver({ root: dir, fsync: false });
});
afterEach(() => {
  db.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

function collector(metrics: Metrics, protection: Protection): GarbageCollector {
  const ops = new OperationsStore(db);
  return new GarbageCollector(ops, driver, new Governance(), protection, new PullRecorder(ops, log), 0, log, metrics);
}

async function value(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = await metrics.registry.getSingleMetric(name)!.get();
  return m.values.find((v) => Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x) && (v.metricName ?? name) === name)?.value;
}

/** A linked blob no manifest references: garbage at grace 0. */
async function garbage(): Promise<void> {
  const bytes = randomBytes(500);
  new RegistryStore(db).linkBlob('a/one', sha256(bytes), bytes.length, 'test', 'oci.blob.push');
  await new Promise((r) => setTimeout(r, 5)); // grace 0 collects what is older than "now"
}

it('a failing run is counted as failed, timed, and reclaims nothing', async () => {
  await garbage();
  const metrics = new Metrics();
  const broken: Protection = {
    protectedReason: () => null,
    protectedReasons: () => {
      throw new Error('protection store unavailable');
    },
  };
  const before = Date.now() / 1000;
  await expect(collector(metrics, broken).run({ dryRun: false, actor: 't' })).rejects.toThrow('protection store unavailable');
  expect(await value(metrics, 'artifact_store_gc_runs_total', { outcome: 'failed', dry_run: 'false' })).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'false' })).toBeUndefined();
  expect(await value(metrics, 'artifact_store_gc_last_run_timestamp_seconds', { outcome: 'failed', dry_run: 'false' })).toBeGreaterThanOrEqual(Math.floor(before));
  const duration = await metrics.registry.getSingleMetric('artifact_store_gc_run_duration_seconds')!.get();
  expect(duration.values.find((v) => v.metricName === 'artifact_store_gc_run_duration_seconds_count')?.value).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_reclaimed_blobs_total')).toBe(0);

  // The same garbage with a working protection module: completed, and the blob counted.
  const ok = collector(metrics, { protectedReason: () => null });
  expect((await ok.run({ dryRun: false, actor: 't' })).blobs).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'false' })).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_reclaimed_blobs_total')).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_reclaimed_bytes_total')).toBe(500);
});

it('a run refused because another is running is not counted', async () => {
  await garbage();
  const metrics = new Metrics();
  const gc = collector(metrics, { protectedReason: () => null });
  const first = gc.run({ dryRun: false, actor: 't' }); // holds the collector until it settles
  await expect(gc.run({ dryRun: true, actor: 't' })).rejects.toThrow(/already running/);
  expect((await first).blobs).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'false' })).toBe(1);
  expect(await value(metrics, 'artifact_store_gc_runs_total', { dry_run: 'true' })).toBeUndefined();
});
