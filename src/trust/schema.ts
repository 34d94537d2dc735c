/** Trust policy per namespace (PRODUCT.md §6). History lives in the event log (`trust.policy.*`). */
import { sql } from 'drizzle-orm';
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const trustPolicies = sqliteTable('trust_policies', {
  namespace: text('namespace').primaryKey(),
  /** Bumped by every change (PUT, key revocation); cached verdicts are keyed by it. */
  version: integer('version').notNull(),
  /** The policy document as JSON (see TrustPolicyDocument in policy.ts). */
  document: text('document').notNull(),
  updatedAt: integer('updated_at').notNull().default(sql`(unixepoch('subsec') * 1000)`),
});
