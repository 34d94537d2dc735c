/**
 * Prometheus metrics (GET /metrics, prom-client). Labels stay low-cardinality: routes are
 * templates (`/v2/{name}/blobs/{digest}`), never raw paths; status is a class (2xx…5xx).
 * Gauges that the database already knows (uploads open, event log head, webhook backlog) are
 * read at scrape time instead of being counted on the request path.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BlobDriver } from '../data/driver.js';
import type { AppEnv } from '../http/env.js';
import { RequestMetrics } from './requests.js';

const V2_ROUTES: [RegExp, string][] = [
  [/^\/v2\/?$/, '/v2/'],
  [/^\/v2\/_catalog$/, '/v2/_catalog'],
  [/^\/v2\/.+\/blobs\/uploads\/?$/, '/v2/{name}/blobs/uploads/'],
  [/^\/v2\/.+\/blobs\/uploads\/[^/]+$/, '/v2/{name}/blobs/uploads/{id}'],
  [/^\/v2\/.+\/blobs\/[^/]+$/, '/v2/{name}/blobs/{digest}'],
  [/^\/v2\/.+\/manifests\/[^/]+$/, '/v2/{name}/manifests/{reference}'],
  [/^\/v2\/.+\/tags\/list$/, '/v2/{name}/tags/list'],
  [/^\/v2\/.+\/referrers\/[^/]+$/, '/v2/{name}/referrers/{digest}'],
];

/**
 * The route template of a request; unknown paths share one label. The /v2/ dispatcher names the
 * route it matched (c.var.route), so the regexes below only run for /v2/ requests it did not match.
 */
export function routeLabel(c: Context<AppEnv>): string {
  const matched = c.get('route');
  if (matched !== undefined) return matched;
  const path = c.req.path;
  if (path.startsWith('/v2')) return V2_ROUTES.find(([re]) => re.test(path))?.[1] ?? '/v2/(unmatched)';
  const template = routePath(c, -1);
  return template && template !== '*' && template !== '/*' ? template : '(unmatched)';
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new RequestMetrics(this.registry);
  private readonly bytesIn = new Counter({ name: 'artifact_store_http_request_bytes_total', help: 'Declared request body bytes', registers: [this.registry] });
  private readonly bytesOut = new Counter({ name: 'artifact_store_http_response_bytes_total', help: 'Declared response body bytes', registers: [this.registry] });
  private readonly storageOps = new Histogram({ name: 'artifact_store_storage_operation_seconds', help: 'Storage driver calls by operation', labelNames: ['driver', 'operation'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers: [this.registry] });
  private readonly storageErrors = new Counter({ name: 'artifact_store_storage_errors_total', help: 'Storage driver calls that failed, by operation', labelNames: ['driver', 'operation'], registers: [this.registry] });
  private readonly gcRuns = new Counter({ name: 'artifact_store_gc_runs_total', help: 'Garbage collection runs by outcome (completed, failed) and dry_run', labelNames: ['outcome', 'dry_run'], registers: [this.registry] });
  private readonly gcLastRun = new Gauge({ name: 'artifact_store_gc_last_run_timestamp_seconds', help: 'When the last garbage collection run of this outcome ended (Unix time)', labelNames: ['outcome', 'dry_run'], registers: [this.registry] });
  private readonly gcDuration = new Histogram({ name: 'artifact_store_gc_run_duration_seconds', help: 'Garbage collection run time, by dry_run', labelNames: ['dry_run'], buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600], registers: [this.registry] });
  private readonly gcBlobs = new Counter({ name: 'artifact_store_gc_reclaimed_blobs_total', help: 'Blobs garbage collection deleted (completed runs that were not dry runs)', registers: [this.registry] });
  private readonly gcBytes = new Counter({ name: 'artifact_store_gc_reclaimed_bytes_total', help: 'Bytes of the blobs garbage collection deleted (completed runs that were not dry runs)', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'artifact_store_' });
  }

  /** A gauge whose value is read when Prometheus scrapes. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        try {
          this.set(read());
        } catch {
          // database closing or unavailable: keep the last value rather than failing the scrape
        }
      },
    });
  }

  /** A gauge with one label, every value of which is read when Prometheus scrapes. */
  labelledGauge(name: string, help: string, label: string, read: () => Record<string, number>): void {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        try {
          const values = read();
          this.reset();
          for (const [value, n] of Object.entries(values)) this.set({ [label]: value }, n);
        } catch {
          // as in gauge(): keep the last values
        }
      },
    });
  }

  /** A counter owned by a module (it increments it itself). */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /**
   * The log's head gauge and an appended-events counter, both from the head sequence at scrape
   * time: appendEvent stays free of metrics work (it is on every mutation's path), and appends by
   * other processes on the same database (the CLI) count too. Sequences only grow.
   */
  eventLog(readHead: () => number): void {
    let seen = 0;
    const read = (): number => {
      try {
        return readHead();
      } catch {
        return seen; // database closing: nothing new
      }
    };
    seen = read();
    this.gauge('artifact_store_event_log_head_seq', 'Sequence number of the newest event', readHead);
    new Counter({
      name: 'artifact_store_events_appended_total',
      help: 'Events appended to the log since this process started (any process on the database)',
      registers: [this.registry],
      collect() {
        const head = read();
        if (head > seen) this.inc(head - seen);
        seen = Math.max(head, seen);
      },
    });
  }

  /** Times one garbage collection run and counts what it reclaimed (GarbageCollector.run). */
  async gcRun<R extends { blobs: number; bytes: number }>(dryRun: boolean, run: () => Promise<R>): Promise<R> {
    const dry = String(dryRun);
    const end = this.gcDuration.startTimer({ dry_run: dry });
    const finish = (outcome: string): void => {
      end();
      this.gcRuns.inc({ outcome, dry_run: dry });
      this.gcLastRun.set({ outcome, dry_run: dry }, Date.now() / 1000);
    };
    try {
      const report = await run();
      finish('completed');
      if (!dryRun) {
        this.gcBlobs.inc(report.blobs);
        this.gcBytes.inc(report.bytes);
      }
      return report;
    } catch (err) {
      finish('failed');
      throw err;
    }
  }

  middleware(): MiddlewareHandler<AppEnv> {
    return async (c, next) => {
      const started = performance.now();
      await next();
      const method = c.req.method;
      const outgoing = c.env?.outgoing;
      const status = outgoing?.headersSent ? outgoing.statusCode : c.res.status;
      this.requests.record(routeLabel(c), method, status, (performance.now() - started) / 1000);
      const inLen = Number(outgoing ? c.env?.incoming?.headers['content-length'] : c.req.header('content-length'));
      if (inLen > 0) this.bytesIn.inc(inLen);
      if (method === 'HEAD') return;
      if (!outgoing) {
        const outLen = Number(c.res.headers.get('content-length'));
        if (outLen > 0) this.bytesOut.inc(outLen);
      } else if (outgoing.headersSent) {
        this.countOut(outgoing.getHeader('content-length'));
      } else {
        // Read once written: the Response's own headers are left alone, so @hono/node-server
        // writes them from its plain-object fast path.
        outgoing.once('finish', () => this.countOut(outgoing.getHeader('content-length')));
      }
    };
  }

  private countOut(declared: unknown): void {
    const n = Number(declared);
    if (n > 0) this.bytesOut.inc(n);
  }

  /** Wraps a storage driver so every call is timed and failures counted. */
  instrument(driver: BlobDriver): BlobDriver {
    const ops = this.storageOps;
    const errors = this.storageErrors;
    return new Proxy(driver, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function' || prop === 'constructor') return value;
        const operation = String(prop);
        return async (...args: unknown[]) => {
          const end = ops.startTimer({ driver: target.name, operation });
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } catch (err) {
            errors.inc({ driver: target.name, operation });
            throw err;
          } finally {
            end();
          }
        };
      },
    });
  }
}
