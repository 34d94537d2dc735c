/**
 * Bundle tables (PRODUCT.md §8). A materialised view of the `bundle.*` events, written in the
 * same transaction as each event. DDL mirrored by hand in drizzle/0008_bundles.sql.
 */
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

/** One registered bundle: (bundle_id, bundle_version) ↔ one manifest digest, forever. */
export const bundles = sqliteTable(
  'bundles',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    bundleId: text('bundle_id').notNull(),
    bundleVersion: text('bundle_version').notNull(),
    kind: text('kind', { enum: ['model', 'policy'] }).notNull(),
    modelFamily: text('model_family').notNull(),
    repository: text('repository').notNull(),
    digest: text('digest').notNull(),
    artifactType: text('artifact_type').notNull(),
    /** The validated bundle config document, as JSON. */
    config: text('config').notNull(),
    /** The gate receipts that admitted it (digest, gate, result), as JSON. */
    receipts: text('receipts').notNull(),
    state: text('state').notNull(),
    submittedBy: text('submitted_by').notNull(),
    submittedAt: integer('submitted_at').notNull(),
    registeredSeq: integer('registered_seq').notNull(),
  },
  (t) => [uniqueIndex('bundles_identity').on(t.bundleId, t.bundleVersion), index('bundles_content').on(t.repository, t.digest)],
);

/** Every state change and activation touching a bundle, with the event that recorded it. */
export const bundleHistory = sqliteTable(
  'bundle_history',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    bundle: integer('bundle').notNull(),
    eventSeq: integer('event_seq').notNull(),
    action: text('action').notNull(),
    fromState: text('from_state'),
    toState: text('to_state').notNull(),
    /** The scope key for activations, rollbacks and withdrawals. */
    scope: text('scope'),
    actor: text('actor').notNull(),
    reason: text('reason'),
    time: integer('time').notNull(),
  },
  (t) => [index('bundle_history_bundle').on(t.bundle, t.id), index('bundle_history_scope').on(t.scope, t.id)],
);

/**
 * The ACTIVE bundle of each scope. The unique index is the database's guarantee of "at most one
 * ACTIVE bundle per scope" (tenant '' = the tenant-less scope); resolution reads only this.
 */
export const bundleActivations = sqliteTable(
  'bundle_activations',
  {
    environment: text('environment').notNull(),
    modelFamily: text('model_family').notNull(),
    tenant: text('tenant').notNull(),
    bundle: integer('bundle').notNull(),
    eventSeq: integer('event_seq').notNull(),
  },
  (t) => [uniqueIndex('bundle_activations_scope').on(t.environment, t.modelFamily, t.tenant), index('bundle_activations_bundle').on(t.bundle)],
);

/**
 * Per scope, the activations not yet rolled back, oldest first: the current one is on top and
 * rollback pops it to re-activate the one below (history, never timestamps).
 */
export const bundleScopeStack = sqliteTable(
  'bundle_scope_stack',
  {
    scope: text('scope').notNull(),
    position: integer('position').notNull(),
    bundle: integer('bundle').notNull(),
    eventSeq: integer('event_seq').notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.position] }), index('bundle_scope_stack_bundle').on(t.bundle)],
);

/** The platform's declared feature-group versions (`PUT /api/v1/platform/feature-groups`). */
export const platformFeatureGroups = sqliteTable('platform_feature_groups', {
  name: text('name').primaryKey(),
  version: text('version').notNull(),
});
