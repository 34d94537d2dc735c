/**
 * The table-coverage registry. Every table of the schema is exactly one of:
 *  - REPLAYED: a TableRule (which columns a replay reproduces) plus handlers for its actions;
 *  - NOT_REPLAYED: not a view of the log, with the reason (derived, ephemeral, operational
 *    state, or a known gap still to close).
 * test/unit/replay-coverage.test.ts reads sqlite_master and fails on anything else, and on a
 * column of a replayed table that its rule does not mention.
 */
import { bundleHandlers, bundleTables } from './bundles.js';
import { governanceHandlers, governanceTables } from './governance.js';
import { identityHandlers, identityTables } from './identity.js';
import { ociHandlers, ociTables } from './oci.js';
import type { Handler, TableRule } from './types.js';

const operationsTables: TableRule[] = [
  { table: 'namespace_policies', key: ['namespace'], columns: ['namespace', 'policy', 'version'], notCompared: { updated_at: 'Date.now() of the write, not carried by the event' } },
  { table: 'trust_policies', key: ['namespace'], columns: ['namespace', 'version', 'document'], notCompared: { updated_at: 'Date.now() of the write, not carried by the event' } },
  {
    table: 'webhooks',
    key: ['id'],
    columns: ['id', 'url', 'events', 'namespaces', 'secret', 'created_by'],
    notCompared: {
      cursor_seq: 'delivery progress of the outbox, not a mutation (replay starts it where the subscription began)',
      attempts: 'delivery progress of the outbox, not a mutation',
      next_attempt_at: 'delivery progress of the outbox, not a mutation',
      last_error: 'delivery progress of the outbox, not a mutation',
      delivered: 'delivery progress of the outbox, not a mutation',
      claimed_by: 'which process delivers the subscription now: a lease, operational state of the outbox',
      claimed_until: 'which process delivers the subscription now: a lease, operational state of the outbox',
      created_at: 'Date.now() of the write, not carried by the event',
    },
  },
  { table: 'search_stars', key: ['repository', 'user'], columns: ['repository', 'user'], notCompared: { created_at: 'Date.now() of the star, not carried by the event' } },
];

/** Both trust actions carry the policy document as written (`after.document`) and its version. */
const setTrustPolicy: Handler = (ctx, e) => {
  const { version, document } = e.afterJson as { version: number; document: unknown };
  ctx.run('INSERT INTO trust_policies (namespace, version, document) VALUES (?, ?, ?) ON CONFLICT (namespace) DO UPDATE SET version = excluded.version, document = excluded.document', e.repository, version, JSON.stringify(document));
};

const operationsHandlers: Record<string, Handler> = {
  'webhook.create': (ctx, e) => {
    const w = e.afterJson as { id: string; url: string; events: string[]; namespaces: string[] | null; secret: string };
    // The subscription began after the event before its own.
    ctx.run('INSERT INTO webhooks (id, url, events, namespaces, secret, cursor_seq, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', w.id, w.url, JSON.stringify(w.events), w.namespaces ? JSON.stringify(w.namespaces) : null, w.secret, e.seq - 1, e.actor, e.time);
  },
  'webhook.delete': (ctx, e) => {
    ctx.run('DELETE FROM webhooks WHERE id = ?', (e.beforeJson as { id: string }).id);
  },
  'trust.policy.set': setTrustPolicy,
  'trust.key.revoke': setTrustPolicy,
  'namespace.policies.set': (ctx, e) => {
    const { version, ...policy } = e.afterJson as { version: number };
    ctx.run('INSERT INTO namespace_policies (namespace, policy, version) VALUES (?, ?, ?) ON CONFLICT (namespace) DO UPDATE SET policy = excluded.policy, version = excluded.version', e.repository, JSON.stringify(policy), version);
  },
  'search.star.add': (ctx, e) => {
    // The starring user, not the actor: a star made with an API key has actor `name/key:id`.
    ctx.run('INSERT INTO search_stars (repository, "user", created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', e.repository, (e.afterJson as { user?: string } | null)?.user ?? e.actor, e.time);
  },
  'search.star.remove': (ctx, e) => {
    ctx.run('DELETE FROM search_stars WHERE repository = ? AND "user" = ?', e.repository, (e.beforeJson as { user?: string } | null)?.user ?? e.actor);
  },
};

export const TABLE_RULES: TableRule[] = [...ociTables, ...identityTables, ...governanceTables, ...bundleTables, ...operationsTables];

export const HANDLERS: Record<string, Handler> = { ...ociHandlers, ...identityHandlers, ...governanceHandlers, ...bundleHandlers, ...operationsHandlers };


/** Tables that a rebuild does not reproduce from events, and why. */
export const NOT_REPLAYED: Record<string, string> = {
  events: 'the log itself: copied verbatim (and its hash chain re-verified), not derived',
  sqlite_sequence: 'SQLite AUTOINCREMENT bookkeeping',
  __drizzle_migrations: 'migration journal, written by the migrator',
  event_checkpoints: 'signed checkpoints over the log (src/events/checkpoints.ts): an attestation about the log, re-signed by the registry',
  uploads: 'ephemeral: upload sessions in progress',
  scan_jobs: 'ephemeral work queue of the scanner; its results are logged as evidence events',
  gc_pins: 'ephemeral: short-lived pins of in-flight uploads against online GC',
  gc_state: 'operational: GC generation counter and collector lease',
  gc_tombstones: 'operational: GC work queue of storage deletions (the metadata deletion is logged as gc.blob.delete)',
  manifest_pulls: 'usage statistics (batched pull times), not mutations',
  search_docs: 'derived by triggers from manifests, tags, repository visibility and family entry versions (rebuilt with them; test/e2e/search.test.ts compares a rebuild)',
  search_fts: 'derived FTS index over search_docs',
  search_fts_data: 'FTS5 shadow table',
  search_fts_idx: 'FTS5 shadow table',
  search_fts_docsize: 'FTS5 shadow table',
  search_fts_config: 'FTS5 shadow table',
  search_downloads: 'usage statistics (download counters per repository, digest and tag), not mutations',
  ui_sessions: 'ephemeral: web UI login sessions',
  webhook_dead_letters: 'delivery state of the webhook outbox',
};
