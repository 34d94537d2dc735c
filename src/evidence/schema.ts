/**
 * Evidence index, legal holds and the scan queue (PRODUCT.md §7). Like every metadata table these
 * are a view of the event log: `evidence.record`, `evidence.hold.create|release` and
 * `evidence.scan.*` events carry everything needed to rebuild them.
 */
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

const now = sql`(unixepoch('subsec') * 1000)`;

/** One row per evidence manifest stored in a repository. */
export const evidence = sqliteTable(
  'evidence',
  {
    repository: text('repository').notNull(),
    digest: text('digest').notNull(),
    subject: text('subject').notNull(),
    /** The evidence-type id when it names a known entry; null when untyped. */
    type: text('type'),
    /** The annotation as pushed (may name an unknown type outside governed namespaces). */
    declaredType: text('declared_type'),
    /** retentionDays of the type when it was pushed; the current entry may only raise it. */
    retentionDays: integer('retention_days').notNull(),
    /** Time of the `oci.manifest.push` event that stored the manifest (ms). */
    pushedAt: integer('pushed_at').notNull(),
    pushSeq: integer('push_seq').notNull(),
    /**
     * Whether retention also keeps the subject. False for scan reports the registry attaches by
     * itself: they must not pin (possibly poisoned) content nobody asked to retain.
     */
    pinsSubject: integer('pins_subject', { mode: 'boolean' }).notNull().default(true),
  },
  (t) => [primaryKey({ columns: [t.repository, t.digest] }), index('evidence_subject').on(t.repository, t.subject)],
);

export const legalHolds = sqliteTable(
  'legal_holds',
  {
    id: text('id').primaryKey(),
    repository: text('repository').notNull(),
    /** null: the whole repository. */
    digest: text('digest'),
    reason: text('reason').notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: integer('created_at').notNull(),
    createdSeq: integer('created_seq').notNull(),
    releasedBy: text('released_by'),
    releasedAt: integer('released_at'),
    releaseReason: text('release_reason'),
  },
  (t) => [index('legal_holds_repository').on(t.repository, t.releasedAt)],
);

/**
 * Pending scans survive a restart: the worker picks them up from here. A worker claims a job by
 * moving it to `running` (one UPDATE, so two processes sharing the database never both take
 * it); a `running` job whose claim is older than the lease is taken again (its process died).
 */
export const scanJobs = sqliteTable(
  'scan_jobs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    repository: text('repository').notNull(),
    digest: text('digest').notNull(),
    state: text('state', { enum: ['pending', 'running', 'done', 'failed'] }).notNull(),
    attempts: integer('attempts').notNull().default(0),
    error: text('error'),
    /** Digest of the scan-report evidence once pushed. */
    report: text('report'),
    createdAt: integer('created_at').notNull().default(now),
    updatedAt: integer('updated_at').notNull().default(now),
  },
  (t) => [index('scan_jobs_state').on(t.state, t.id)],
);
