/**
 * Webhooks (PRODUCT.md §11 "Webhooks"): subscriptions to audit-action globs, delivered from
 * the event log as signed CloudEvents.
 *
 *   POST   /api/v1/webhooks        {url, events:[glob…], namespaces?, secret} → 201 {id, …}
 *   GET    /api/v1/webhooks        → {webhooks:[…]}        (no secrets)
 *   GET    /api/v1/webhooks/{id}   → the subscription with its cursor and dead letters
 *   DELETE /api/v1/webhooks/{id}   → 204
 *
 * A subscription for every namespace needs a registry administrator; one limited to
 * namespaces needs the right to manage each of them.
 */
import type { Context } from 'hono';
import { z } from 'zod';
import { ociError } from '../errors/catalogue.js';
import type { ModuleDeps } from '../governance/module.js';
import type { AppEnv } from '../http/env.js';
import { readJson } from '../http/json.js';
import { WebhookDispatcher } from './delivery.js';
import { presentWebhook, WebhookStore } from './store.js';
import { assertDeliverable, parseTargetUrl } from './targets.js';

const namespaceName = z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'not a namespace name').max(255);
const createBody = z.object({
  url: z.string().min(1).max(2048),
  events: z.array(z.string().min(1).max(200)).min(1).max(50),
  namespaces: z.array(namespaceName).min(1).max(100).optional(),
  secret: z.string().min(16, 'secret must have at least 16 characters').max(512),
});

export interface WebhooksModule {
  stop(): Promise<void>;
}

export function registerWebhooks(deps: ModuleDeps): WebhooksModule {
  const { app, config, access } = deps;
  const store = new WebhookStore(deps.db);
  const deliveries = deps.metrics.counter('artifact_store_webhook_deliveries_total', 'Webhook delivery attempts by outcome: delivered (2xx), failed (retried later), dead_letter (last attempt failed; the event was given up)', ['outcome']);
  const dispatcher = new WebhookDispatcher(
    deps.db,
    store,
    { allowPrivateTargets: config.webhookAllowPrivateTargets, maxAttempts: config.webhookMaxAttempts, retryBaseMs: config.webhookRetryBaseMs, timeoutMs: config.webhookTimeoutMs, source: `/${config.authService}`, leaseMs: config.webhookLeaseMs },
    deps.log,
    (outcome) => deliveries.inc({ outcome }),
  );
  registerQueueMetrics(deps, store);

  const mayManage = (c: Context<AppEnv>, namespaces: string[] | null): void => {
    if (!namespaces) access.require(c, { kind: 'registry.admin' });
    else for (const namespace of namespaces) access.require(c, { kind: 'namespace.manage', namespace });
  };
  const found = (id: string) => {
    const w = store.get(id);
    if (!w) throw ociError('NOT_FOUND', 'no such webhook');
    return w;
  };
  const namespacesOf = (w: { namespaces: string | null }): string[] | null => (w.namespaces ? (JSON.parse(w.namespaces) as string[]) : null);

  app.post('/api/v1/webhooks', async (c) => {
    const b = await readJson(c, createBody);
    mayManage(c, b.namespaces ?? null);
    const url = parseTargetUrl(b.url);
    await assertDeliverable(url, config.webhookAllowPrivateTargets);
    const row = store.create({ url: url.toString(), events: b.events, namespaces: b.namespaces ?? null, secret: b.secret }, c.get('actor'));
    return c.json(presentWebhook(row, 0), 201);
  });

  app.get('/api/v1/webhooks', (c) => {
    const visible = store.list().filter((w) => {
      const ns = namespacesOf(w);
      return ns ? ns.every((namespace) => access.can(c, { kind: 'namespace.manage', namespace })) : access.can(c, { kind: 'registry.admin' });
    });
    const dead = store.deadLetterCounts();
    return c.json({ webhooks: visible.map((w) => presentWebhook(w, dead.get(w.id) ?? 0)) });
  });

  app.get('/api/v1/webhooks/:id', (c) => {
    const w = found(c.req.param('id'));
    mayManage(c, namespacesOf(w));
    return c.json(presentWebhook(w, store.deadLetterCounts().get(w.id) ?? 0, store.deadLetters(w.id)));
  });

  app.delete('/api/v1/webhooks/:id', (c) => {
    const w = found(c.req.param('id'));
    mayManage(c, namespacesOf(w));
    store.delete(w.id, c.get('actor'));
    return c.body(null, 204);
  });

  dispatcher.start();
  return { stop: () => dispatcher.stop() };
}

/**
 * Queue depth, read at scrape time with one query per series over the subscriptions (few) and
 * the log head (the primary key). The backlog is an upper bound of the deliveries owed: events
 * after each cursor, before the loop skips those the subscription does not match.
 */
function registerQueueMetrics(deps: ModuleDeps, store: WebhookStore): void {
  const byState = (): { state: string; n: number; backlog: number }[] => store.queueByState();
  const split = (pick: (r: { n: number; backlog: number }) => number): Record<string, number> => {
    const out: Record<string, number> = { ok: 0, retrying: 0 };
    for (const r of byState()) out[r.state] = pick(r);
    return out;
  };
  deps.metrics.labelledGauge('artifact_store_webhook_subscriptions', 'Webhook subscriptions by state: ok, or retrying a failed delivery', 'state', () => split((r) => r.n));
  deps.metrics.labelledGauge('artifact_store_webhook_backlog_events', 'Events after the cursors of the subscriptions in each state (an upper bound of the deliveries owed)', 'state', () => split((r) => r.backlog));
  deps.metrics.gauge('artifact_store_webhook_dead_letters', 'Dead letters stored (events given up after webhookMaxAttempts), all subscriptions', () => store.deadLetterCount());
}
