/**
 * The per-request series: `artifact_store_http_requests_total{route,method,status}` and the
 * `artifact_store_http_request_duration_seconds{route,method}` histogram. They are recorded on
 * every request, so not through prom-client's labelled API (which hashes and validates a label
 * object, and allocates, on each call): each (route, method) pair is one plain series object,
 * found with two Map lookups, whose counters are numbers; the registry reads them at scrape time
 * in prom-client's own format (registerMetric with get()).
 */
import type { Registry } from 'prom-client';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60];
/** Status classes 1xx..5xx by index; anything else (0 from an aborted response) counts as 5xx. */
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

interface Series {
  route: string;
  method: string;
  /** Observations per bucket (not cumulative); the last slot is above every bound (+Inf). */
  buckets: Float64Array;
  sum: number;
  count: number;
  /** Requests per status class, indexed as CLASSES. */
  statuses: Float64Array;
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

export class RequestMetrics {
  private readonly series = new Map<string, Map<string, Series>>();

  constructor(registry: Registry) {
    const all = (): Series[] => [...this.series.values()].flatMap((m) => [...m.values()]);
    const reset = (): void => this.series.clear();
    const counterName = 'artifact_store_http_requests_total';
    registry.registerMetric({
      name: counterName,
      help: 'HTTP requests by route template, method and status class',
      type: 'counter',
      aggregator: 'sum',
      reset,
      get: async () => ({
        name: counterName,
        help: 'HTTP requests by route template, method and status class',
        type: 'counter',
        aggregator: 'sum',
        values: all().flatMap((s) => CLASSES.flatMap((status, i) => (s.statuses[i]! > 0 ? [{ labels: { route: s.route, method: s.method, status }, value: s.statuses[i]! }] : []))),
      }),
    } as never);
    const histogramName = 'artifact_store_http_request_duration_seconds';
    const help = 'Time to the response headers, by route template and method';
    registry.registerMetric({
      name: histogramName,
      help,
      type: 'histogram',
      aggregator: 'sum',
      reset,
      get: async () => ({ name: histogramName, help, type: 'histogram', aggregator: 'sum', values: all().flatMap((s) => histogramSamples(histogramName, s)) }),
    } as never);
  }

  /** One finished request (status: the HTTP status code; seconds: time to the response). */
  record(route: string, method: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.series.set(route, byMethod);
    }
    let s = byMethod.get(method);
    if (s === undefined) {
      s = { route, method, buckets: new Float64Array(BUCKETS.length + 1), sum: 0, count: 0, statuses: new Float64Array(CLASSES.length) };
      byMethod.set(method, s);
    }
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
    const cls = Math.floor(status / 100) - 1;
    s.statuses[cls >= 0 && cls < CLASSES.length ? cls : CLASSES.length - 1]!++;
  }
}

function histogramSamples(name: string, s: Series): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  BUCKETS.forEach((le, i) => {
    cumulative += s.buckets[i]!;
    out.push({ labels: { route: s.route, method: s.method, le }, value: cumulative, metricName: `${name}_bucket` });
  });
  out.push({ labels: { route: s.route, method: s.method, le: '+Inf' }, value: s.count, metricName: `${name}_bucket` });
  out.push({ labels: { route: s.route, method: s.method }, value: s.sum, metricName: `${name}_sum` });
  out.push({ labels: { route: s.route, method: s.method }, value: s.count, metricName: `${name}_count` });
  return out;
}
