/** Signed checkpoints of the event log: {seq, head hash, time}, signed with the registry's log key. */
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const eventCheckpoints = sqliteTable('event_checkpoints', {
  seq: integer('seq').primaryKey(),
  headHash: text('head_hash').notNull(),
  time: integer('time').notNull(),
  /** SHA-256 of the signing key's SubjectPublicKeyInfo (DER), hex. */
  keyId: text('key_id').notNull(),
  /** Ed25519 signature (base64) over checkpointMessage(). */
  signature: text('signature').notNull(),
});
