/** Webhook subscriptions, their delivery cursors and dead letters. */
import { randomBytes } from 'node:crypto';
import { and, asc, count, desc, eq, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';
import { events } from '../meta/schema.js';
import { webhookDeadLetters, webhooks } from './schema.js';

export type WebhookRow = typeof webhooks.$inferSelect;

export interface NewWebhook {
  url: string;
  events: string[];
  namespaces: string[] | null;
  secret: string;
}

/** The API view: everything but the secret. */
export function presentWebhook(w: WebhookRow, deadLettered: number, deadLetters?: (typeof webhookDeadLetters.$inferSelect)[]): Record<string, unknown> {
  return {
    id: w.id,
    url: w.url,
    events: JSON.parse(w.events) as string[],
    namespaces: w.namespaces ? (JSON.parse(w.namespaces) as string[]) : null,
    cursor: w.cursorSeq,
    delivered: w.delivered,
    /** `retrying` while a failed delivery waits for its next attempt (the same state as the metric). */
    state: w.attempts > 0 ? 'retrying' : 'ok',
    pendingAttempts: w.attempts,
    deadLettered,
    lastError: w.lastError,
    createdBy: w.createdBy,
    createdAt: new Date(w.createdAt).toISOString(),
    ...(deadLetters ? { deadLetters: deadLetters.map((d) => ({ seq: d.seq, attempts: d.attempts, lastError: d.lastError, failedAt: new Date(d.failedAt).toISOString() })) } : {}),
  };
}

export class WebhookStore {
  constructor(private readonly db: Db) {}

  /** Subscribes from the current head of the log: only events after creation are delivered. */
  create(w: NewWebhook, actor: string): WebhookRow {
    return this.db.transaction((tx) => {
      const head = tx.select({ seq: events.seq }).from(events).orderBy(desc(events.seq)).limit(1).get()?.seq ?? 0;
      const id = `wh_${randomBytes(9).toString('base64url')}`;
      const row = tx
        .insert(webhooks)
        .values({ id, url: w.url, events: JSON.stringify(w.events), namespaces: w.namespaces ? JSON.stringify(w.namespaces) : null, secret: w.secret, cursorSeq: head, createdBy: actor, createdAt: Date.now() })
        .returning()
        .get();
      // The secret is in the event so a rebuild reproduces the subscription; everything that
      // exposes the log (events API, changefeed, webhook deliveries) redacts `secret`.
      appendEvent(tx, { actor, action: 'webhook.create', after: { id, url: w.url, events: w.events, namespaces: w.namespaces, secret: w.secret } });
      return row;
    });
  }

  get(id: string): WebhookRow | undefined {
    return this.db.select().from(webhooks).where(eq(webhooks.id, id)).get();
  }

  list(): WebhookRow[] {
    return this.db.select().from(webhooks).orderBy(asc(webhooks.createdAt), asc(webhooks.id)).all();
  }

  deadLetters(id: string, limit = 100): (typeof webhookDeadLetters.$inferSelect)[] {
    return this.db.select().from(webhookDeadLetters).where(eq(webhookDeadLetters.webhookId, id)).orderBy(desc(webhookDeadLetters.seq)).limit(limit).all();
  }

  delete(id: string, actor: string): boolean {
    return this.db.transaction((tx) => {
      const gone = tx.delete(webhooks).where(eq(webhooks.id, id)).returning({ url: webhooks.url }).get();
      if (!gone) return false;
      tx.delete(webhookDeadLetters).where(eq(webhookDeadLetters.webhookId, id)).run();
      appendEvent(tx, { actor, action: 'webhook.delete', before: { id, url: gone.url } });
      return true;
    });
  }

  /** Subscriptions and the events after their cursors, by state (metrics). */
  queueByState(): { state: 'ok' | 'retrying'; n: number; backlog: number }[] {
    return this.db.$client
      .prepare(
        `SELECT CASE WHEN attempts > 0 THEN 'retrying' ELSE 'ok' END AS state, count(*) AS n,
                coalesce(sum(max((SELECT coalesce(max(seq), 0) FROM events) - cursor_seq, 0)), 0) AS backlog
           FROM webhooks GROUP BY 1`,
      )
      .all() as { state: 'ok' | 'retrying'; n: number; backlog: number }[];
  }

  deadLetterCount(): number {
    return this.db.select({ n: count() }).from(webhookDeadLetters).get()?.n ?? 0;
  }

  /** Dead letters per subscription (the list shows them without the letters themselves). */
  deadLetterCounts(): Map<string, number> {
    const rows = this.db.select({ id: webhookDeadLetters.webhookId, n: count() }).from(webhookDeadLetters).groupBy(webhookDeadLetters.webhookId).all();
    return new Map(rows.map((r) => [r.id, r.n]));
  }

  /** Subscriptions whose next attempt is due and that no other live dispatcher holds. */
  due(now: number, owner: string): WebhookRow[] {
    return this.db
      .select()
      .from(webhooks)
      .where(and(lte(webhooks.nextAttemptAt, now), or(isNull(webhooks.claimedBy), eq(webhooks.claimedBy, owner), lt(webhooks.claimedUntil, now))))
      .all();
  }

  /**
   * Takes the lease on one subscription unless another dispatcher holds an unexpired one. One
   * conditional UPDATE in a write transaction (SQLite's single writer, PostgreSQL's advisory lock
   * at BEGIN): of two processes racing for the same subscription exactly one changes the row.
   */
  claim(id: string, owner: string, now: number, leaseMs: number): boolean {
    return this.db.transaction(
      (tx) =>
        tx
          .update(webhooks)
          .set({ claimedBy: owner, claimedUntil: now + leaseMs })
          .where(and(eq(webhooks.id, id), or(isNull(webhooks.claimedBy), eq(webhooks.claimedBy, owner), lt(webhooks.claimedUntil, now))))
          .run().changes === 1,
    );
  }

  /** Extends every lease `owner` still holds; returns their ids (a lease taken over is not among them). */
  renew(owner: string, until: number): string[] {
    return this.db.update(webhooks).set({ claimedUntil: until }).where(eq(webhooks.claimedBy, owner)).returning({ id: webhooks.id }).all().map((r) => r.id);
  }

  /** Gives up every lease `owner` holds (shutdown): another process may deliver at once. */
  release(owner: string): void {
    this.db.update(webhooks).set({ claimedBy: null, claimedUntil: null }).where(eq(webhooks.claimedBy, owner)).run();
  }

  // The writes below move a subscription's progress only while `owner` still holds its lease;
  // false means it does not (taken over, or the subscription was deleted): the drain stops.

  /** Moves the cursor past events that did not match (no delivery needed). */
  skipTo(id: string, owner: string, seq: number): boolean {
    return this.db.update(webhooks).set({ cursorSeq: seq }).where(this.held(id, owner)).run().changes === 1;
  }

  delivered(id: string, owner: string, seq: number): boolean {
    return this.db
      .update(webhooks)
      .set({ cursorSeq: seq, attempts: 0, nextAttemptAt: 0, lastError: null, delivered: sql`${webhooks.delivered} + 1` })
      .where(this.held(id, owner))
      .run().changes === 1;
  }

  failed(id: string, owner: string, attempts: number, nextAttemptAt: number, error: string): boolean {
    return this.db.update(webhooks).set({ attempts, nextAttemptAt, lastError: error }).where(this.held(id, owner)).run().changes === 1;
  }

  /** Gives up on one event: records it as a dead letter and moves on, in one transaction. */
  deadLetter(id: string, owner: string, seq: number, attempts: number, error: string): boolean {
    return this.db.transaction((tx) => {
      if (tx.update(webhooks).set({ cursorSeq: seq, attempts: 0, nextAttemptAt: 0, lastError: error }).where(this.held(id, owner)).run().changes !== 1) return false;
      tx.insert(webhookDeadLetters).values({ webhookId: id, seq, attempts, lastError: error, failedAt: Date.now() }).onConflictDoNothing().run();
      return true;
    });
  }

  private held(id: string, owner: string) {
    return and(eq(webhooks.id, id), eq(webhooks.claimedBy, owner));
  }
}
