/**
 * The evidence and legal-hold tables derived from the event log alone (PRODUCT.md §4: metadata
 * is a materialised view). A rebuild command can write these rows; tests check the live tables
 * against them.
 */
import type { EventRow } from '../meta/events.js';
import type { EvidenceRow, HoldRow } from './store.js';

export function replayEvidence(events: Iterable<EventRow>): { evidence: EvidenceRow[]; holds: HoldRow[] } {
  const lastPush = new Map<string, { seq: number; time: number }>();
  const evidence = new Map<string, EvidenceRow>();
  const holds = new Map<string, HoldRow>();
  const key = (repository: string | null, digest: string | null) => `${repository}@${digest}`;
  for (const e of events) {
    const after = e.after ? (JSON.parse(e.after) as Record<string, unknown>) : {};
    const before = e.before ? (JSON.parse(e.before) as Record<string, unknown>) : {};
    switch (e.action) {
      case 'oci.manifest.push':
        lastPush.set(key(e.repository, e.digest), { seq: e.seq, time: e.time });
        break;
      case 'evidence.record': {
        const push = lastPush.get(key(e.repository, e.digest));
        if (!push || !e.repository || !e.digest) break;
        evidence.set(key(e.repository, e.digest), {
          repository: e.repository,
          digest: e.digest,
          subject: String(after.subject),
          type: (after.type as string | null) ?? null,
          declaredType: (after.declaredType as string | null) ?? null,
          retentionDays: Number(after.retentionDays ?? 0),
          pushedAt: push.time,
          pushSeq: push.seq,
          pinsSubject: after.pinsSubject !== false,
        });
        break;
      }
      case 'evidence.hold.create': {
        const id = String(after.id);
        holds.set(id, { id, repository: e.repository!, digest: e.digest, reason: e.reason ?? '', createdBy: e.actor, createdAt: e.time, createdSeq: e.seq, releasedBy: null, releasedAt: null, releaseReason: null });
        break;
      }
      case 'evidence.hold.release': {
        const h = holds.get(String(before.id));
        if (h) Object.assign(h, { releasedBy: e.actor, releasedAt: e.time, releaseReason: e.reason });
        break;
      }
    }
  }
  return { evidence: [...evidence.values()], holds: [...holds.values()] };
}
