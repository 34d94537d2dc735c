/**
 * A pure replay of the `bundle.*` events: which bundle is active in each scope (and by which
 * event), and each bundle's state. The tables are a materialised view of these events; this
 * is the reference they are checked against, and what a rebuild from the log would compute.
 */
export interface ReplayEvent {
  seq: number;
  action: string;
  /** The event's `after`, parsed. */
  after: unknown;
}

interface Ident {
  bundle_id: string;
  bundle_version: string;
  repository?: string;
  digest?: string;
}
interface ScopeJson {
  environment: string;
  model_family: string;
  tenant?: string;
}

export interface ReplayedActivation {
  bundle_id: string;
  bundle_version: string;
  repository: string;
  digest: string;
  event_seq: number;
}

export interface Replayed {
  /** Keyed by `scopeKeyString`. */
  active: Map<string, ReplayedActivation>;
  /** Keyed by `bundle_id@bundle_version`. */
  states: Map<string, string>;
}

export const scopeKeyString = (s: ScopeJson): string => JSON.stringify([s.environment, s.model_family, s.tenant ?? '']);
const bundleKey = (b: Ident): string => `${b.bundle_id}@${b.bundle_version}`;

export function replayBundleEvents(events: Iterable<ReplayEvent>): Replayed {
  const active = new Map<string, ReplayedActivation>();
  const states = new Map<string, string>();
  const isActiveSomewhere = (key: string): boolean => [...active.values()].some((a) => bundleKey(a) === key);

  for (const e of events) {
    switch (e.action) {
      case 'bundle.publish': {
        states.set(bundleKey(e.after as Ident), 'REGISTERED');
        break;
      }
      case 'bundle.transition': {
        const a = e.after as Ident & { state: string; withdrawn?: ScopeJson[] };
        states.set(bundleKey(a), a.state);
        for (const s of a.withdrawn ?? []) active.delete(scopeKeyString(s));
        break;
      }
      case 'bundle.activate':
      case 'bundle.rollback': {
        const a = e.after as Required<Ident> & { scope: ScopeJson };
        const scope = scopeKeyString(a.scope);
        const previous = active.get(scope);
        active.set(scope, { bundle_id: a.bundle_id, bundle_version: a.bundle_version, repository: a.repository, digest: a.digest, event_seq: e.seq });
        states.set(bundleKey(a), 'ACTIVE');
        // The replaced bundle goes back to APPROVED once it is active nowhere.
        if (previous && bundleKey(previous) !== bundleKey(a) && !isActiveSomewhere(bundleKey(previous))) states.set(bundleKey(previous), 'APPROVED');
        break;
      }
    }
  }
  return { active, states };
}

/** Resolution over a replay, with the same tenant fallback as the API. */
export function resolveReplayed(r: Replayed, scope: ScopeJson): (ReplayedActivation & { fallback: boolean }) | undefined {
  const own = r.active.get(scopeKeyString(scope));
  if (own) return { ...own, fallback: false };
  if (!scope.tenant) return undefined;
  const shared = r.active.get(scopeKeyString({ environment: scope.environment, model_family: scope.model_family }));
  return shared ? { ...shared, fallback: true } : undefined;
}
