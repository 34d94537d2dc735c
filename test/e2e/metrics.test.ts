/** GET /metrics: Prometheus text exposition, route templates as labels, storage timings. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from '../helpers/http.js';
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
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a valid exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
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
