/**
 * The evidence module's part in OCI pushes and deletes: validate and index evidence in the push
 * transaction, queue scans of scannable layers, and refuse deletes of held or retained content
 * inside the delete transaction (so a hold placed concurrently is never missed).
 */
import { namespaceOf } from '../auth/permissions.js';
import { ociError } from '../errors/catalogue.js';
import type { Families } from '../governance/contracts.js';
import type { GovernanceHooks, ManifestPush, Tx } from '../governance/hooks.js';
import { appendEvent } from '../meta/events.js';
import type { ProtectionPolicy } from './protection.js';
import { retentionDaysOf } from './protection.js';
import type { EvidenceStore } from './store.js';

export const EVIDENCE_ARTIFACT_TYPE = 'application/vnd.artifact-store.evidence.v1';
export const EVIDENCE_TYPE_ANNOTATION = 'dev.artifact-store.evidence.type';
/** Evidence types the registry itself produces; known even before anyone registers them. */
export const BUILT_IN_EVIDENCE_TYPES = new Set(['scan-report']);
const MAX_TYPE_LENGTH = 128;
/** The actor of scan reports the registry pushes itself. */
export const SCANNER_ACTOR = 'system:scanner';

export const isEvidence = (push: Pick<ManifestPush, 'parsed'>): boolean => push.parsed.artifactType === EVIDENCE_ARTIFACT_TYPE;

export interface ScanQueueHooks {
  /** Whether the pushed manifest has layers a scanner wants. */
  wants(push: ManifestPush): boolean;
  /** Throws (429) when the queue is full. */
  admit(tx: Tx): void;
  enqueue(tx: Tx, repository: string, digest: string): void;
}

/** What the evidence type annotation resolves to. */
function resolveType(families: Families, declared: string | undefined): { type: string | null; retentionDays: number; problem: string | null } {
  if (declared === undefined || declared === '') return { type: null, retentionDays: 0, problem: `evidence must name its evidence type in annotation ${EVIDENCE_TYPE_ANNOTATION}` };
  if (declared.length > MAX_TYPE_LENGTH) return { type: null, retentionDays: 0, problem: `evidence type annotation is longer than ${MAX_TYPE_LENGTH} characters` };
  const entry = families.entry('evidence-type', declared);
  if (entry?.status === 'disabled') return { type: declared, retentionDays: retentionDaysOf(families, declared) ?? 0, problem: `evidence type '${declared}' is disabled` };
  if (entry) return { type: declared, retentionDays: retentionDaysOf(families, declared) ?? 0, problem: null };
  if (BUILT_IN_EVIDENCE_TYPES.has(declared)) return { type: declared, retentionDays: 0, problem: null };
  return { type: null, retentionDays: 0, problem: `unknown evidence type '${declared}' (no evidence-type entry)` };
}

export function evidenceHooks(store: EvidenceStore, policy: ProtectionPolicy, families: Families, scans: ScanQueueHooks): GovernanceHooks {
  return {
    name: 'evidence',

    guardPush(push, tx) {
      if (isEvidence(push)) {
        if (!push.parsed.subject) throw ociError('MANIFEST_INVALID', `evidence (artifactType ${EVIDENCE_ARTIFACT_TYPE}) needs a subject: the artifact it is evidence about`);
        const declared = push.parsed.annotations?.[EVIDENCE_TYPE_ANNOTATION];
        const resolved = resolveType(families, declared);
        const ns = namespaceOf(push.repository);
        if (resolved.problem && families.isGoverned(ns)) {
          throw ociError('MANIFEST_INVALID', `${resolved.problem}; namespace ${ns} is governed, so evidence must have an active evidence type`, {
            detail: { annotation: EVIDENCE_TYPE_ANNOTATION, evidenceType: declared ?? null },
          });
        }
      } else if (scans.wants(push)) {
        scans.admit(tx);
      }
    },

    afterPush(push, tx, inserted) {
      if (!inserted) return;
      if (!isEvidence(push)) {
        if (scans.wants(push)) scans.enqueue(tx, push.repository, push.digest);
        return;
      }
      const subject = push.parsed.subject!.digest;
      const declared = push.parsed.annotations?.[EVIDENCE_TYPE_ANNOTATION] ?? null;
      const resolved = resolveType(families, declared ?? undefined);
      // Retention runs from the time the push was recorded in the event log, not from a later clock.
      const pushed = store.pushEvent(tx, push.repository, push.digest);
      if (!pushed) throw ociError('INTERNAL', 'evidence push has no push event');
      const row = {
        repository: push.repository,
        digest: push.digest,
        subject,
        type: resolved.type,
        declaredType: declared !== null && declared.length <= MAX_TYPE_LENGTH ? declared : null,
        retentionDays: resolved.retentionDays,
        pushedAt: pushed.time,
        pushSeq: pushed.seq,
        pinsSubject: push.actor !== SCANNER_ACTOR,
      };
      store.upsertEvidence(tx, row);
      appendEvent(tx, {
        actor: push.actor,
        action: 'evidence.record',
        repository: push.repository,
        digest: push.digest,
        after: { subject, type: row.type, declaredType: row.declaredType, retentionDays: row.retentionDays, pinsSubject: row.pinsSubject, retainedUntil: new Date(policy.retainedUntil(row)).toISOString() },
      });
    },

    guardDelete(target, tx) {
      const refusal = policy.checkDelete(tx, target);
      if (refusal) {
        const what = target.kind === 'tag' ? `tag ${target.repository}:${target.tag}` : target.kind === 'repository' ? `repository ${target.repository}` : `${target.kind} ${target.repository}@${target.digest}`;
        const detail =
          refusal.kind === 'hold'
            ? { hold: refusal.hold.id, reason: refusal.hold.reason, repository: refusal.hold.repository, digest: refusal.hold.digest }
            : { evidence: refusal.evidence.digest, evidenceType: refusal.evidence.type, retainedUntil: new Date(refusal.until).toISOString() };
        const verb = target.origin === 'gc' ? 'garbage collection keeps' : 'cannot delete';
        throw ociError('DENIED', `${verb} ${what}: ${refusal.message}`, { detail });
      }
      // Evidence rows stay: they only count while their manifest is stored (EvidenceStore.live), and
      // guardDelete may be asked without the delete following (GC previews its refusals).
    },
  };
}
