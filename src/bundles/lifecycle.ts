/**
 * The bundle lifecycle as data (PRODUCT.md §8):
 *
 *   REGISTERED ──► CANDIDATE ──► APPROVED ══activate══► ACTIVE ──► RETIRED
 *        │             │            ▲  │                  │
 *        └──► REJECTED ◄┘            │  └──► RETIRED       │
 *                                    └═══ demoted ═════════┘  (replaced in its last scope)
 *
 * - `POST …/transitions` moves along the single arrows. ACTIVE is reached only through
 *   `POST /api/v1/activations` (or a rollback), and a bundle leaves ACTIVE for APPROVED when it
 *   is no longer the active bundle of any scope.
 * - Retiring an ACTIVE bundle withdraws it from every scope where it is active (those scopes then
 *   resolve to nothing, or fall back to the tenant-less scope) and drops it from their rollback
 *   history: a retired bundle is never activated again. REJECTED and RETIRED are final.
 */
import type { BundleTarget } from '../auth/capabilities.js';

export type BundleState = BundleTarget;
export const BUNDLE_STATES = ['REGISTERED', 'CANDIDATE', 'APPROVED', 'ACTIVE', 'RETIRED', 'REJECTED'] as const satisfies readonly BundleState[];

/** Edges `POST …/transitions` may take. */
const EDGES: Record<BundleState, readonly BundleState[]> = {
  REGISTERED: ['CANDIDATE', 'REJECTED'],
  CANDIDATE: ['APPROVED', 'REJECTED'],
  APPROVED: ['RETIRED'],
  ACTIVE: ['RETIRED'],
  RETIRED: [],
  REJECTED: [],
};

export type TransitionCheck = { ok: true; noop: boolean } | { ok: false; reason: string };

export function checkTransition(from: BundleState, to: BundleState): TransitionCheck {
  if (from === to) return { ok: true, noop: true };
  if (to === 'ACTIVE') return { ok: false, reason: 'a bundle becomes ACTIVE only through POST /api/v1/activations' };
  if (EDGES[from].includes(to)) return { ok: true, noop: false };
  const allowed = EDGES[from];
  return { ok: false, reason: allowed.length ? `${from} may move only to ${allowed.join(' or ')}` : `${from} is final` };
}

/** States from which a bundle may be activated in a scope. */
export const ACTIVATABLE: readonly BundleState[] = ['APPROVED', 'ACTIVE'];
