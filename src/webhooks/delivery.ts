/**
 * Delivers events to webhook subscriptions: one CloudEvents 1.0 structured-mode POST per event,
 * HMAC-SHA256-signed, in log order per subscription, at least once (the cursor moves only after
 * a 2xx), with exponential backoff and jitter, and a dead letter after the last attempt. Runs
 * beside the request path: a request only appends its event; this loop reads the log.
 *
 * Every registry process runs one dispatcher; on a shared database each subscription is delivered
 * by the one holding its lease (WebhookStore.claim). The holder renews its leases while it runs and
 * releases them at shutdown; a crashed holder's leases run out and another process takes over
 * from the cursor, so an event in flight at the crash may arrive twice, never not at all.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
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
  /** How long a claim on a subscription holds without renewal: the takeover delay after a crash. */
  leaseMs: number;
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
  /** This dispatcher in claimed_by: unique per process start, readable for an operator. */
  readonly owner = `${hostname()}/${process.pid}/${randomBytes(6).toString('base64url')}`;
  /** Subscriptions whose lease this dispatcher holds, with the time (ms) until which it does. */
  private readonly held = new Map<string, number>();
  private renewedAt = 0;
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

  /**
   * Stops scheduling, waits for deliveries in flight (their cursors are saved), then releases the
   * leases so another process takes over at once instead of after they run out.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.abort.abort();
    while (this.busy.size > 0) await new Promise((r) => setTimeout(r, 20));
    try {
      this.store.release(this.owner);
    } catch (err) {
      this.log.warn({ err }, 'webhooks: cannot release delivery leases (other processes take over when they run out)');
    }
    this.held.clear();
  }

  /** True while this dispatcher's lease on `id` still holds by its own clock (with a margin). */
  private holds(id: string): boolean {
    return (this.held.get(id) ?? 0) - this.settings.leaseMs / 3 > Date.now();
  }

  private tick(): void {
    if (this.stopped) return;
    let due: WebhookRow[];
    const now = Date.now();
    try {
      // Leases are renewed together, a third of a lease before they run out.
      if (this.held.size > 0 && now - this.renewedAt >= this.settings.leaseMs / 3) {
        const until = now + this.settings.leaseMs;
        const kept = new Set(this.store.renew(this.owner, until));
        this.renewedAt = now;
        for (const id of [...this.held.keys()]) if (kept.has(id)) this.held.set(id, until);
        else this.held.delete(id);
      }
      due = this.store.due(now, this.owner);
    } catch (err) {
      this.log.error({ err }, 'webhooks: cannot read subscriptions');
      return;
    }
    for (const w of due) {
      if (this.busy.has(w.id)) continue;
      if (!this.holds(w.id)) {
        try {
          if (!this.store.claim(w.id, this.owner, now, this.settings.leaseMs)) {
            this.held.delete(w.id);
            continue; // another process took it first
          }
        } catch (err) {
          this.log.error({ err, webhook: w.id }, 'webhooks: cannot claim a subscription');
          continue;
        }
        this.held.set(w.id, now + this.settings.leaseMs);
      }
      this.busy.add(w.id);
      void this.drain(w)
        .catch((err: unknown) => this.log.error({ err, webhook: w.id }, 'webhooks: delivery loop failed'))
        .finally(() => this.busy.delete(w.id));
    }
  }

  /**
   * Delivers this subscription's matching events in order until caught up, one fails, or the lease
   * is lost (every write below is conditional on still holding it).
   */
  private async drain(w: WebhookRow): Promise<void> {
    const me = this.owner;
    let cursor = w.cursorSeq;
    let attempts = w.attempts;
    while (!this.stopped && this.holds(w.id)) {
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
        if (skipped !== cursor && !this.store.skipTo(w.id, me, skipped)) return;
        // Not past the lease (a process stalled longer than that may have been replaced).
        if (!this.holds(w.id)) return;
        const outcome = await this.deliver(w, e);
        if (this.stopped && outcome !== null) return; // aborted by shutdown: not the receiver's failure
        if (outcome === null) {
          this.counted('delivered');
          if (!this.store.delivered(w.id, me, e.seq)) return; // deleted or taken over meanwhile
          cursor = skipped = e.seq;
          attempts = 0;
          continue;
        }
        attempts++;
        if (attempts >= this.settings.maxAttempts) {
          this.counted('dead_letter');
          this.log.warn({ webhook: w.id, seq: e.seq, attempts, error: outcome }, 'webhooks: giving up on an event (dead letter)');
          if (!this.store.deadLetter(w.id, me, e.seq, attempts, outcome)) return;
          cursor = skipped = e.seq;
          attempts = 0;
          continue;
        }
        this.counted('failed');
        this.store.failed(w.id, me, attempts, Date.now() + backoffMs(attempts, this.settings.retryBaseMs), outcome);
        return;
      }
      if (skipped !== cursor) {
        if (!this.store.skipTo(w.id, me, skipped)) return;
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
