/**
 * Operations tables (PRODUCT.md §9): namespace policies, the garbage collector's tombstones and
 * generation counter, and batched pull times for retention. Written by src/operations only.
 */
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

const now = sql`(unixepoch('subsec') * 1000)`;

/** One policy document per namespace (immutable tags, retention rules, quota), replaced whole. */
export const namespacePolicies = sqliteTable('namespace_policies', {
  namespace: text('namespace').primaryKey(),
  /** JSON: { immutableTags, retention, quotaBytes }. */
  policy: text('policy').notNull(),
  version: integer('version').notNull(),
  updatedAt: integer('updated_at').notNull().default(now),
});

/**
 * A blob whose metadata GC removed. `deleting`: the bytes may vanish at any moment, nothing may
 * link the digest. `deleted`: the bytes are gone; a new upload may bring the digest back (and
 * removes the row). See fence.ts for the protocol.
 */
export const gcTombstones = sqliteTable(
  'gc_tombstones',
  {
    digest: text('digest').primaryKey(),
    generation: integer('generation').notNull(),
    state: text('state', { enum: ['deleting', 'deleted'] }).notNull(),
    size: integer('size').notNull(),
    createdAt: integer('created_at').notNull().default(now),
  },
  (t) => [index('gc_tombstones_state').on(t.state)],
);

/**
 * An upload about to commit bytes under `digest` (which may reuse bytes already stored): GC
 * leaves the digest alone while a pin younger than PIN_TTL exists. Removed by the link.
 */
export const gcPins = sqliteTable('gc_pins', {
  token: text('token').primaryKey(),
  digest: text('digest').notNull(),
  createdAt: integer('created_at').notNull(),
}, (t) => [index('gc_pins_digest').on(t.digest)]);

/**
 * Single row (id 1): the last tombstone generation handed out (never decreases), and the lease
 * of the collector currently running in any process sharing the database (one at a time, so
 * bytes of a `deleting` tombstone are only ever deleted by one collector).
 */
export const gcState = sqliteTable('gc_state', {
  id: integer('id').primaryKey(),
  generation: integer('generation').notNull(),
  holder: text('holder'),
  heldUntil: integer('held_until'),
});

/** Last pull time of a manifest, flushed from memory in batches (retention keepPulledWithinDays). */
export const manifestPulls = sqliteTable(
  'manifest_pulls',
  {
    repository: text('repository').notNull(),
    digest: text('digest').notNull(),
    pulledAt: integer('pulled_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.repository, t.digest] })],
);
