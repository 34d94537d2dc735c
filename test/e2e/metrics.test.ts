/** GET /metrics: Prometheus text exposition, route templates as labels, storage timings, GC runs, webhook queue. */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob, pushImage, randomBlob } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict parser of the text format (0.0.4): every non-comment line must be a valid sample. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    // Values as Prometheus reads them (Go's ParseFloat: NaN and Inf in any case; prom-client writes `Nan`).
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|(?:[+-]?(?:inf|infinity)|nan))(?: \d+)?$/i.exec(line);
    if (!m) throw new Error(`not a valid exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: m[1]!, labels, value: /nan/i.test(m[3]!) ? NaN : /inf/i.test(m[3]!) ? (m[3]!.startsWith('-') ? -Infinity : Infinity) : Number(m[3]) });
  }
  return { samples, types };
}

/** One scrape, parsed; `value` is a sample's value (labels must match exactly the ones given), or undefined. */
async function scrape(url: string): Promise<{ types: Map<string, string>; value(name: string, labels?: Record<string, string>): number | undefined }> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  const { samples, types } = parseExposition(await res.text());
  return {
    types,
    value: (name, labels = {}) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length)?.value,
  };
}

async function until(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('/metrics', () => {
  it('exposes request, storage and log metrics with low-cardinality labels', async () => {
    await pushImage(reg.url, 'team/metrics-a', 'v1');
    await pushImage(reg.url, 'team/metrics-b', 'v1');
    expect((await fetch(`${reg.url}/v2/team/metrics-a/manifests/v1`)).status).toBe(200);
    const res = await fetch(`${reg.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const { samples, types } = parseExposition(await res.text());
    expect(types.get('artifact_store_http_requests_total')).toBe('counter');
    expect(types.get('artifact_store_http_request_duration_seconds')).toBe('histogram');

    const puts = samples.filter((s) => s.name === 'artifact_store_http_requests_total' && s.labels.route === '/v2/{name}/manifests/{reference}' && s.labels.method === 'PUT');
    expect(puts).toHaveLength(1);
    expect(puts[0]!.labels.status).toBe('2xx');
    expect(puts[0]!.value).toBe(2);
    // No raw repository names or digests in any label.
    for (const s of samples) for (const v of Object.values(s.labels)) expect(v).not.toMatch(/metrics-a|sha256:/);

    const head = samples.find((s) => s.name === 'artifact_store_event_log_head_seq');
    expect(head!.value).toBeGreaterThan(5);
    const commits = samples.filter((s) => s.name === 'artifact_store_storage_operation_seconds_count' && s.labels.operation === 'commit');
    expect(commits[0]!.value).toBeGreaterThanOrEqual(4);
    expect(samples.some((s) => s.name === 'artifact_store_process_resident_memory_bytes')).toBe(true);
  });
});

describe('README metrics table', () => {
  it('lists exactly the series a scrape exposes (Node process metrics as prefixes)', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Metrics'), readme.indexOf('## Garbage collection'));
    const documented = new Set([...section.matchAll(/`(artifact_store_[a-z_]+?)(_\*)?`/g)].filter((m) => !m[2]).map((m) => m[1]!));
    const { types } = parseExposition(await (await fetch(`${reg.url}/metrics`)).text());
    const exposed = new Set([...types.keys()].filter((n) => !/^artifact_store_(process|nodejs)_/.test(n)));
    expect(exposed.size).toBeGreaterThan(10);
    expect([...documented].sort()).toEqual([...exposed].sort());
  });
});

describe('/metrics: GC runs, webhook queue, events appended', () => {
  let r: TestRegistry;
  let receiver: Server;
  let answer = 500;
  let attempts = 0;
  beforeAll(async () => {
    r = await startTestRegistry({ gcGraceSeconds: 0, gcIntervalSeconds: 0, webhookAllowPrivateTargets: true, webhookRetryBaseMs: 300, webhookMaxAttempts: 3 });
    receiver = createServer((req, res) => {
      attempts++;
      req.resume();
      req.on('end', () => res.writeHead(answer).end());
    });
    await new Promise<void>((ok) => receiver.listen(0, '127.0.0.1', ok));
  });
  afterAll(async () => {
    await r.stop();
    await new Promise((ok) => receiver.close(ok));
  });

  it('counts GC runs by outcome and dry run, with what they reclaimed and how long they took', async () => {
    const before = await scrape(r.url);
    expect(before.types.get('artifact_store_gc_runs_total')).toBe('counter');
    expect(before.types.get('artifact_store_gc_run_duration_seconds')).toBe('histogram');
    expect(before.value('artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'false' })).toBeUndefined();
    expect(before.value('artifact_store_gc_reclaimed_blobs_total')).toBe(0);

    // Two blobs no manifest references (grace window 0): what GC reclaims.
    const sizes = [3000, 5000];
    for (const n of sizes) await pushBlob(r.url, 'gcm/app', randomBlob(n));
    const gc = async (dryRun: boolean) => (await (await fetch(`${r.url}/api/v1/gc`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ dryRun }) })).json()) as { blobs: number; bytes: number };
    const preview = await gc(true);
    expect(preview.blobs).toBe(2);
    const dry = await scrape(r.url);
    expect(dry.value('artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'true' })).toBe(1);
    expect(dry.value('artifact_store_gc_reclaimed_blobs_total')).toBe(0); // a dry run reclaims nothing

    const started = Date.now() / 1000;
    const report = await gc(false);
    expect(report).toMatchObject({ blobs: 2, bytes: sizes[0]! + sizes[1]! });
    const after = await scrape(r.url);
    expect(after.value('artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'false' })).toBe(1);
    expect(after.value('artifact_store_gc_runs_total', { outcome: 'completed', dry_run: 'true' })).toBe(1);
    expect(after.value('artifact_store_gc_reclaimed_blobs_total')).toBe(2);
    expect(after.value('artifact_store_gc_reclaimed_bytes_total')).toBe(8000);
    expect(after.value('artifact_store_gc_run_duration_seconds_count', { dry_run: 'false' })).toBe(1);
    expect(after.value('artifact_store_gc_run_duration_seconds_bucket', { dry_run: 'false', le: '+Inf' })).toBe(1);
    const last = after.value('artifact_store_gc_last_run_timestamp_seconds', { outcome: 'completed', dry_run: 'false' })!;
    expect(last).toBeGreaterThanOrEqual(Math.floor(started));
    expect(last).toBeLessThanOrEqual(Date.now() / 1000);
  });

  it('shows webhook failures, retries, dead letters, deliveries and the backlog behind the cursors', async () => {
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const res = await fetch(`${r.url}/api/v1/webhooks`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ url, events: ['oci.blob.push'], namespaces: ['whm'], secret: 'a-secret-long-enough-for-hmac' }) });
    expect(res.status).toBe(201);
    const start = await scrape(r.url);
    expect(start.value('artifact_store_webhook_subscriptions', { state: 'ok' })).toBe(1);
    expect(start.value('artifact_store_webhook_subscriptions', { state: 'retrying' })).toBe(0);
    const head0 = start.value('artifact_store_event_log_head_seq')!;
    const appended0 = start.value('artifact_store_events_appended_total')!;

    await pushBlob(r.url, 'whm/app', randomBlob(10)); // answered 500: retried, then a dead letter
    let m = await scrape(r.url);
    await until(async () => ((m = await scrape(r.url)).value('artifact_store_webhook_deliveries_total', { outcome: 'failed' }) ?? 0) >= 1);
    if (m.value('artifact_store_webhook_deliveries_total', { outcome: 'dead_letter' }) === undefined) {
      // The counters and the cursor row change in the same tick: between the first failure and the dead letter, it is retrying.
      expect(m.value('artifact_store_webhook_subscriptions', { state: 'retrying' })).toBe(1);
      expect(m.value('artifact_store_webhook_backlog_events', { state: 'retrying' })).toBeGreaterThanOrEqual(1);
    }
    await until(async () => (m = await scrape(r.url)).value('artifact_store_webhook_deliveries_total', { outcome: 'dead_letter' }) === 1);
    expect(attempts).toBe(3);
    expect(m.value('artifact_store_webhook_deliveries_total', { outcome: 'failed' })).toBe(2);
    expect(m.value('artifact_store_webhook_deliveries_total', { outcome: 'delivered' })).toBeUndefined();
    expect(m.value('artifact_store_webhook_dead_letters')).toBe(1);
    expect(m.value('artifact_store_webhook_subscriptions', { state: 'retrying' })).toBe(0);

    // Events appended: the counter moves with the log head.
    const head1 = m.value('artifact_store_event_log_head_seq')!;
    expect(head1).toBeGreaterThan(head0);
    expect(m.value('artifact_store_events_appended_total')! - appended0).toBe(head1 - head0);

    answer = 200;
    await pushBlob(r.url, 'whm/app', randomBlob(11));
    await until(async () => (m = await scrape(r.url)).value('artifact_store_webhook_deliveries_total', { outcome: 'delivered' }) === 1);
    // Caught up: nothing left behind the cursor once the loop has skipped what does not match.
    await until(async () => (m = await scrape(r.url)).value('artifact_store_webhook_backlog_events', { state: 'ok' }) === 0);
    expect(m.value('artifact_store_webhook_dead_letters')).toBe(1);
  });
});
