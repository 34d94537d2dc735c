/**
 * Replay of the families catalogue (entries carry the whole document) and of the evidence index
 * and legal holds (through the evidence module's own pure replay, src/evidence/replay.ts).
 */
import type { EventRow } from '../../meta/events.js';
import { replayEvidence } from '../../evidence/replay.js';
import { need, type Handler, type ReplayContext, type TableRule } from './types.js';

const UPDATED = 'Date.now() of the write, not carried by the event';

export const governanceTables: TableRule[] = [
  { table: 'family_entries', key: ['family', 'id'], columns: ['family', 'id', 'latest_version', 'status'], notCompared: { updated_at: UPDATED } },
  {
    table: 'family_entry_versions',
    key: ['family', 'id', 'version'],
    columns: ['family', 'id', 'version', 'digest', 'layer_digest', 'entry', 'actor'],
    notCompared: { created_at: 'wall-clock insert time (SQL default), not carried by the event' },
  },
  { table: 'family_delegations', key: ['family'], columns: ['family', 'org'], notCompared: { updated_at: UPDATED } },
  { table: 'namespace_governance', key: ['namespace'], columns: ['namespace', 'governed'], notCompared: { updated_at: UPDATED } },
  {
    table: 'evidence',
    key: ['repository', 'digest'],
    columns: ['repository', 'digest', 'subject', 'type', 'declared_type', 'retention_days', 'pushed_at', 'push_seq', 'pins_subject'],
  },
  {
    table: 'legal_holds',
    key: ['id'],
    columns: ['id', 'repository', 'digest', 'reason', 'created_by', 'created_at', 'created_seq', 'released_by', 'released_at', 'release_reason'],
  },
];

const writeVersion: Handler = (ctx, e) => {
  const a = e.afterJson as { family: string; id: string; version: number; layerDigest: string; entry: unknown };
  ctx.run(
    'INSERT INTO family_entry_versions (family, id, version, digest, layer_digest, entry, actor) VALUES (?, ?, ?, ?, ?, ?, ?)',
    a.family,
    a.id,
    a.version,
    need(e.digest, e, 'entry manifest digest'),
    a.layerDigest,
    JSON.stringify(a.entry),
    e.actor,
  );
  if (a.version === 1) ctx.run("INSERT INTO family_entries (family, id, latest_version, status) VALUES (?, ?, 1, 'active')", a.family, a.id);
  else ctx.run('UPDATE family_entries SET latest_version = ? WHERE family = ? AND id = ?', a.version, a.family, a.id);
};

export const governanceHandlers: Record<string, Handler> = {
  'family.entry.create': writeVersion,
  'family.entry.version': writeVersion,
  'family.entry.status': (ctx, e) => {
    ctx.run('UPDATE family_entries SET status = ? WHERE family = ? AND id = ?', e.afterJson.status, e.afterJson.family, e.afterJson.id);
  },
  'family.delegation.set': (ctx, e) => {
    const { family, org } = e.afterJson as { family: string; org: string | null };
    if (org === null) ctx.run('DELETE FROM family_delegations WHERE family = ?', family);
    else ctx.run('INSERT INTO family_delegations (family, org) VALUES (?, ?) ON CONFLICT (family) DO UPDATE SET org = excluded.org', family, org);
  },
  'namespace.governance.set': (ctx, e) => {
    const { namespace, governed } = e.afterJson as { namespace: string; governed: boolean };
    ctx.run('INSERT INTO namespace_governance (namespace, governed) VALUES (?, ?) ON CONFLICT (namespace) DO UPDATE SET governed = excluded.governed', namespace, governed ? 1 : 0);
  },
};

/** Actions the evidence replay reads; they are collected during the pass and replayed at the end. */
export const EVIDENCE_ACTIONS = new Set(['oci.manifest.push', 'evidence.record', 'evidence.hold.create', 'evidence.hold.release']);

export function finishEvidence(ctx: ReplayContext, collected: EventRow[]): void {
  const { evidence, holds } = replayEvidence(collected);
  for (const r of evidence) {
    ctx.run(
      'INSERT INTO evidence (repository, digest, subject, type, declared_type, retention_days, pushed_at, push_seq, pins_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      r.repository, r.digest, r.subject, r.type, r.declaredType, r.retentionDays, r.pushedAt, r.pushSeq, r.pinsSubject ? 1 : 0,
    );
  }
  for (const h of holds) {
    ctx.run(
      'INSERT INTO legal_holds (id, repository, digest, reason, created_by, created_at, created_seq, released_by, released_at, release_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      h.id, h.repository, h.digest, h.reason, h.createdBy, h.createdAt, h.createdSeq, h.releasedBy, h.releasedAt, h.releaseReason,
    );
  }
}
