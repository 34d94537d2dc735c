/**
 * Delivers events to webhook subscriptions: one CloudEvents 1.0 structured-mode POST per event,
 * HMAC-SHA256-signed, in log order per subscription, at least once (the cursor moves only after
 * a 2xx), with exponential backoff and jitter, and a dead letter after the last attempt. Runs
 * beside the request path: a request only appends its event; this loop reads the log.
 */
import { createHmac } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import type { Db } from '../meta/db.js';
import { listEvents, type EventRow } from '../meta/events.js';
import { writeBatcher } from '../meta/write-batcher.js';
import { parseRedacted } from '../events/replay/redact.js';
import { globMatches } from './glob.js';
import type { WebhookRow, WebhookStore } from './store.js';
import { guardedLookup, literalRefusal } from './targets.js';

export interface DeliverySettings {
  allowPrivateTargets: boolean;
  maxAttempts: number;
  retryBaseMs: number;
  timeoutMs: number;
  source: string;
}

const POLL_MS = 250;
const MAX_BACKOFF_MS = 5 * 60_000;
const SCAN_BATCH = 500;

export function matches(w: Pick<WebhookRow, 'events' | 'namespaces'>, e: Pick<EventRow, 'action' | 'repository'>): boolean {
  const globs = JSON.parse(w.events) as string[];
  if (!globs.some((g) => globMatches(g, e.action))) return false;
  if (!w.namespaces) return true;
  // A namespace-limited subscription never sees registry-wide events or other namespaces.
  const ns = e.repository?.split('/', 1)[0];
  return ns !== undefined && (JSON.parse(w.namespaces) as string[]).includes(ns);
}

export function cloudEvent(e: EventRow, source: string): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: String(e.seq),
    source,
    type: e.action,
    time: new Date(e.time).toISOString(),
    datacontenttype: 'application/json',
    ...(e.repository ? { subject: e.repository } : {}),
    data: {
      seq: e.seq,
      actor: e.actor,
      action: e.action,
      repository: e.repository,
      digest: e.digest,
      tag: e.tag,
      // Password/key hashes stay in the database (src/events/replay/redact.ts).
      before: parseRedacted(e.before),
      after: parseRedacted(e.after),
      reason: e.reason,
      hash: e.hash,
    },
  };
}

export const signature = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** Backoff before attempt `attempts + 1`: base·2^(attempts-1), capped, with ±50% jitter. */
export function backoffMs(attempts: number, baseMs: number): number {
  const raw = Math.min(baseMs * 2 ** Math.max(attempts - 1, 0), MAX_BACKOFF_MS);
  return Math.round(raw * (0.5 + Math.random()));
}

/**
 * One POST; resolves with the status as soon as the response head arrives. `timeoutMs` bounds the
 * whole exchange, not only idle gaps: a receiver dripping bytes cannot hold a subscription (or
 * shutdown) forever.
 */
function post(url: URL, body: string, headers: Record<string, string>, s: DeliverySettings, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const timeout = (): Error => new Error(`no answer within ${s.timeoutMs} ms`);
    const req = send(url, { method: 'POST', headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, lookup: guardedLookup(s.allowPrivateTargets) as never, timeout: s.timeoutMs, signal }, (res) => {
      resolve(res.statusCode ?? 0);
      res.on('error', () => {}); // the answer is already taken; a reset while draining changes nothing
      res.resume(); // the receiver's body is not ours to read: drained (until the deadline) so the connection can be reused
    });
    const deadline = s.timeoutMs > 0 ? setTimeout(() => req.destroy(timeout()), s.timeoutMs) : undefined;
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(timeout()));
    req.on('error', reject);
    req.end(body);
  });
}

/** Attempts by outcome: `delivered` (2xx), `failed` (retried later), `dead_letter` (the last attempt failed). */
export type DeliveryOutcome = 'delivered' | 'failed' | 'dead_letter';

export class WebhookDispatcher {
  private readonly busy = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Aborts deliveries in flight at shutdown: their cursors have not moved, so they are sent again after restart. */
  private readonly abort = new AbortController();

  constructor(
    private readonly db: Db,
    private readonly store: WebhookStore,
    private readonly settings: DeliverySettings,
    private readonly log: Logger,
    private readonly counted: (outcome: DeliveryOutcome) => void = () => {},
  ) {
    // One listener per delivery in flight (one per subscription), each removed when it ends: not a leak.
    setMaxListeners(0, this.abort.signal);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), POLL_MS);
    this.timer.unref();
  }

  /** Stops scheduling and waits for deliveries in flight (their cursors are saved). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.abort.abort();
    while (this.busy.size > 0) await new Promise((r) => setTimeout(r, 20));
  }

  private tick(): void {
    if (this.stopped) return;
    let due: WebhookRow[];
    try {
      due = this.store.due(Date.now());
    } catch (err) {
      this.log.error({ err }, 'webhooks: cannot read subscriptions');
      return;
    }
    for (const w of due) {
      if (this.busy.has(w.id)) continue;
      this.busy.add(w.id);
      void this.drain(w)
        .catch((err: unknown) => this.log.error({ err, webhook: w.id }, 'webhooks: delivery loop failed'))
        .finally(() => this.busy.delete(w.id));
    }
  }

  /** Delivers this subscription's matching events in order until caught up or one fails. */
  private async drain(w: WebhookRow): Promise<void> {
    let cursor = w.cursorSeq;
    let attempts = w.attempts;
    while (!this.stopped) {
      // Only what is on disk: an event a power loss could erase (and its seq reuse) is never sent.
      const batch = listEvents(this.db, cursor, SCAN_BATCH, await writeBatcher(this.db).durableSeq());
      if (batch.length === 0) return;
      let skipped = cursor;
      for (const e of batch) {
        if (this.stopped) break;
        if (!matches(w, e)) {
          skipped = e.seq;
          continue;
        }
        if (skipped !== cursor) this.store.skipTo(w.id, skipped);
        const outcome = await this.deliver(w, e);
        if (this.stopped && outcome !== null) return; // aborted by shutdown: not the receiver's failure
        if (!this.store.get(w.id)) return; // deleted meanwhile
        if (outcome === null) {
          this.counted('delivered');
          this.store.delivered(w.id, e.seq);
          cursor = skipped = e.seq;
          attempts = 0;
          continue;
        }
        attempts++;
        if (attempts >= this.settings.maxAttempts) {
          this.counted('dead_letter');
          this.log.warn({ webhook: w.id, seq: e.seq, attempts, error: outcome }, 'webhooks: giving up on an event (dead letter)');
          this.store.deadLetter(w.id, e.seq, attempts, outcome);
          cursor = skipped = e.seq;
          attempts = 0;
          continue;
        }
        this.counted('failed');
        this.store.failed(w.id, attempts, Date.now() + backoffMs(attempts, this.settings.retryBaseMs), outcome);
        return;
      }
      if (skipped !== cursor) {
        this.store.skipTo(w.id, skipped);
        cursor = skipped;
      }
    }
  }

  /** One attempt; null on success, else why it failed. */
  private async deliver(w: WebhookRow, e: EventRow): Promise<string | null> {
    const body = JSON.stringify(cloudEvent(e, this.settings.source));
    const url = new URL(w.url);
    // Node connects to an IP literal without a DNS lookup, so guardedLookup never sees it: a
    // subscription made while private targets were allowed is refused once they are not.
    const refused = literalRefusal(url, this.settings.allowPrivateTargets);
    if (refused) return refused;
    try {
      const status = await post(url, body, { 'Content-Type': 'application/cloudevents+json', 'X-Artifact-Store-Signature': signature(w.secret, body), 'User-Agent': 'artifact-store-webhooks' }, this.settings, this.abort.signal);
      return status >= 200 && status < 300 ? null : `receiver answered ${status}`;
    } catch (err) {
      return (err as Error).message;
    }
  }
}
