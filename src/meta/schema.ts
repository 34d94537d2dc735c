/**
 * Metadata schema (drizzle, SQLite). Blob bytes live in the storage driver; everything here is
 * a materialised view of the event log (events table), written in the same transaction.
 */
import { sql } from 'drizzle-orm';
import { blob, index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

const now = sql`(unixepoch('subsec') * 1000)`;

export const repositories = sqliteTable('repositories', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  createdAt: integer('created_at').notNull().default(now),
});

/** Content known to the store, once per digest whatever the number of repositories. */
export const blobs = sqliteTable('blobs', {
  digest: text('digest').primaryKey(),
  size: integer('size').notNull(),
  createdAt: integer('created_at').notNull().default(now),
});

/** Which repository may serve which blob (push or mount links it). */
export const repositoryBlobs = sqliteTable(
  'repository_blobs',
  {
    repositoryId: integer('repository_id').notNull().references(() => repositories.id),
    digest: text('digest').notNull().references(() => blobs.digest),
    createdAt: integer('created_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.repositoryId, t.digest] }), index('repository_blobs_digest').on(t.digest)],
);

export const manifests = sqliteTable(
  'manifests',
  {
    repositoryId: integer('repository_id').notNull().references(() => repositories.id),
    digest: text('digest').notNull(),
    mediaType: text('media_type').notNull(),
    /** The exact pushed bytes. */
    payload: blob('payload', { mode: 'buffer' }).notNull(),
    size: integer('size').notNull(),
    artifactType: text('artifact_type'),
    subject: text('subject'),
    annotations: text('annotations'),
    createdAt: integer('created_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.repositoryId, t.digest] }), index('manifests_subject').on(t.repositoryId, t.subject)],
);

/** Edges from a manifest to what it needs: layers/config (blob) or child manifests (manifest). */
export const manifestReferences = sqliteTable(
  'manifest_references',
  {
    repositoryId: integer('repository_id').notNull(),
    manifestDigest: text('manifest_digest').notNull(),
    targetDigest: text('target_digest').notNull(),
    kind: text('kind', { enum: ['blob', 'manifest'] }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.repositoryId, t.manifestDigest, t.targetDigest] }),
    index('manifest_references_target').on(t.repositoryId, t.targetDigest),
  ],
);

export const tags = sqliteTable(
  'tags',
  {
    repositoryId: integer('repository_id').notNull().references(() => repositories.id),
    name: text('name').notNull(),
    digest: text('digest').notNull(),
    updatedAt: integer('updated_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.repositoryId, t.name] }), index('tags_digest').on(t.repositoryId, t.digest)],
);

export const uploads = sqliteTable('uploads', {
  id: text('id').primaryKey(),
  repository: text('repository').notNull(),
  /** UploadState from the data plane, as JSON: size + driver bookkeeping. */
  state: text('state').notNull(),
  createdAt: integer('created_at').notNull().default(now),
  updatedAt: integer('updated_at').notNull().default(now),
  /** Who opened the session (open sessions are capped per caller). */
  owner: text('owner'),
  /** Cross-process session lock: the holder's token and when its lease runs out (ms). */
  leaseHolder: text('lease_holder'),
  leaseUntil: integer('lease_until'),
}, (t) => [index('uploads_owner').on(t.owner)]);

/** Append-only, hash-chained log of every mutation (PRODUCT.md §4). */
export const events = sqliteTable(
  'events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    time: integer('time').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    repository: text('repository'),
    digest: text('digest'),
    tag: text('tag'),
    before: text('before'),
    after: text('after'),
    reason: text('reason'),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (t) => [index('events_repository').on(t.repository, t.seq)],
);

// ---- identity (PRODUCT.md §3) ----------------------------------------------------------------

/** Users and organisations share one namespace of names: `<name>/…` repositories belong to it. */
export const principals = sqliteTable('principals', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  kind: text('kind', { enum: ['user', 'org'] }).notNull(),
  /** scrypt hash for users; null for organisations. */
  passwordHash: text('password_hash'),
  isAdmin: integer('is_admin', { mode: 'boolean' }).notNull().default(false),
  disabled: integer('disabled', { mode: 'boolean' }).notNull().default(false),
  /** Tokens (access and refresh) issued before this instant (ms) are void: set on password change. */
  tokensValidAfter: integer('tokens_valid_after').notNull().default(0),
  /** Bumped by a password change; tokens carry the generation they were issued under (migration 0004). */
  tokenGeneration: integer('token_generation').notNull().default(0),
  createdAt: integer('created_at').notNull().default(now),
});

export const orgMembers = sqliteTable(
  'org_members',
  {
    orgId: integer('org_id').notNull().references(() => principals.id),
    userId: integer('user_id').notNull().references(() => principals.id),
    role: text('role', { enum: ['owner', 'maintainer', 'reader'] }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.userId] })],
);

/** API keys / robot tokens. Only a hash of the secret is kept. */
export const apiKeys = sqliteTable('api_keys', {
  id: text('id').primaryKey(),
  userId: integer('user_id').notNull().references(() => principals.id),
  name: text('name').notNull(),
  secretHash: text('secret_hash').notNull(),
  /** JSON array of 'read' | 'publish' | 'admin'. */
  scopes: text('scopes').notNull(),
  /** JSON array of repository patterns (`team/*`), or null for every repository. */
  repositories: text('repositories'),
  expiresAt: integer('expires_at'),
  revokedAt: integer('revoked_at'),
  createdAt: integer('created_at').notNull().default(now),
});

/** Repository visibility, set explicitly; repositories without a row are private. */
export const repositoryVisibility = sqliteTable('repository_visibility', {
  name: text('name').primaryKey(),
  visibility: text('visibility', { enum: ['public', 'private'] }).notNull(),
});
