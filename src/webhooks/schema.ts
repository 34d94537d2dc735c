/**
 * Webhook subscriptions. The event log itself is the durable outbox: each subscription keeps a
 * cursor (the last event sequence it has handled), so a delivery never needs a write on the
 * request path, survives restarts, and is in order per subscription. With several processes on one
 * database, a lease on each subscription (claimed_by/claimed_until) lets one deliver it at a time.
 */
import { integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const webhooks = sqliteTable('webhooks', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  /** JSON array of audit-action globs (`*` matches any characters, dots included). */
  events: text('events').notNull(),
  /** JSON array of namespaces, or null for every namespace. */
  namespaces: text('namespaces'),
  /** HMAC key for X-Artifact-Store-Signature; never returned by the API. */
  secret: text('secret').notNull(),
  /** Last event sequence handled: delivered, dead-lettered or not matching. */
  cursorSeq: integer('cursor_seq').notNull(),
  /** Failed attempts so far for the event after the cursor. */
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: integer('next_attempt_at').notNull().default(0),
  lastError: text('last_error'),
  delivered: integer('delivered').notNull().default(0),
  createdBy: text('created_by').notNull(),
  createdAt: integer('created_at').notNull(),
  /**
   * The dispatcher (one per registry process) delivering this subscription now, and until when
   * (ms since the epoch) its lease holds: other processes leave the subscription alone until it
   * runs out, so a crashed holder is replaced within one lease. Null when nobody holds it.
   */
  claimedBy: text('claimed_by'),
  claimedUntil: integer('claimed_until'),
});

/** Events a subscription gave up on after the maximum number of attempts. */
export const webhookDeadLetters = sqliteTable(
  'webhook_dead_letters',
  {
    webhookId: text('webhook_id').notNull(),
    seq: integer('seq').notNull(),
    attempts: integer('attempts').notNull(),
    lastError: text('last_error'),
    failedAt: integer('failed_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.webhookId, t.seq] })],
);
