/** Tables of the families module (migration drizzle/0005_families.sql holds the same DDL). */
import { sql } from 'drizzle-orm';
import { integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

const now = sql`(unixepoch('subsec') * 1000)`;

/** One row per entry: its latest version and its status (a status applies to the entry, not a version). */
export const familyEntries = sqliteTable(
  'family_entries',
  {
    family: text('family').notNull(),
    id: text('id').notNull(),
    latestVersion: integer('latest_version').notNull(),
    status: text('status', { enum: ['active', 'deprecated', 'disabled'] }).notNull(),
    updatedAt: integer('updated_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.family, t.id] })],
);

/** Every version ever written; never updated. `digest` is the `_registry/{family}` manifest. */
export const familyEntryVersions = sqliteTable(
  'family_entry_versions',
  {
    family: text('family').notNull(),
    id: text('id').notNull(),
    version: integer('version').notNull(),
    digest: text('digest').notNull(),
    layerDigest: text('layer_digest').notNull(),
    /** The entry document as JSON (the layer holds it as deterministic CBOR). */
    entry: text('entry').notNull(),
    actor: text('actor').notNull(),
    createdAt: integer('created_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.family, t.id, t.version] })],
);

/** A family delegated to an organisation whose owners and maintainers may then change its entries. */
export const familyDelegations = sqliteTable('family_delegations', {
  family: text('family').primaryKey(),
  org: text('org').notNull(),
  updatedAt: integer('updated_at').notNull().default(now),
});

/** Namespaces whose pushes must match an active artifact-type entry (fail closed). */
export const namespaceGovernance = sqliteTable('namespace_governance', {
  namespace: text('namespace').primaryKey(),
  governed: integer('governed', { mode: 'boolean' }).notNull(),
  updatedAt: integer('updated_at').notNull().default(now),
});
