/**
 * The one capability evaluator (issue: "authorization is decided in ~8 places"). Every
 * privileged action — OCI routes, the management API and every governance endpoint — asks
 * `decide(caller, capability)`. Pure: the caller and whether the repository is public are
 * passed in, so it is tested as a table (caller kind × key scope × repository limit × action).
 *
 * Rules that hold for every capability:
 * - A bearer token carries only the OCI grants it was issued with: it can do repository
 *   actions it names and nothing else.
 * - An API key never exceeds its scopes; a key limited to repositories is never an
 *   administrator of anything wider than those repositories.
 * - User lifecycle (create, promote, disable, change a password) needs a password login: no
 *   API key, however broad, may do it (a leaked key must not become an account takeover).
 * - A key mints only keys no broader than itself: scopes, repository patterns and expiry.
 *
 * `catalogScope` is the same rules for `_catalog`, as index ranges the store reads (issue #18:
 * a catalog asking `decide` once per repository stalled the server).
 */
import type { Caller } from './authenticate.js';
import { allowedActions, namespaceOf, type Action, type KeyScope, type Principal } from './permissions.js';

export type BundleTarget = 'REGISTERED' | 'CANDIDATE' | 'APPROVED' | 'ACTIVE' | 'RETIRED' | 'REJECTED';

export type Capability =
  /** OCI pull / push / delete on one repository (also governance reads and writes about its content). */
  | { kind: 'repository'; repository: string; action: Action }
  /** Manage a namespace: visibility, members, governance flag, trust policy, holds, policies. */
  | { kind: 'namespace.manage'; namespace: string }
  /** Registry-wide administration: families, GC, event log, webhooks, platform feature groups. */
  | { kind: 'registry.admin' }
  /** Create, promote, disable or enable users. */
  | { kind: 'user.manage' }
  /** Change the password of user `userId`. */
  | { kind: 'user.password'; userId: number }
  | { kind: 'org.create' }
  /** See an organisation's members. */
  | { kind: 'org.read'; org: string }
  /** See one's own account and keys. */
  | { kind: 'account.read' }
  /** Mint an API key with these scopes, repository patterns (null: all) and expiry (ms, null: never). */
  | { kind: 'key.create'; scopes: readonly KeyScope[]; repositories: readonly string[] | null; expiresAt: number | null }
  /** Revoke key `keyId` (when known) owned by user `ownerId`. */
  | { kind: 'key.revoke'; ownerId: number; keyId?: string }
  /** Create, version or change the status of entries of a family; `delegatedTo` is the organisation the family is delegated to, if any. */
  | { kind: 'family.write'; family: string; delegatedTo: string | null }
  /** Move a bundle in `repository` to lifecycle state `to` (PRODUCT.md §8: who may is a role). */
  | { kind: 'bundle.transition'; repository: string; to: BundleTarget };

export type Decision = { allowed: true } | { allowed: false; unauthenticated: boolean; reason: string };

const ALLOW: Decision = { allowed: true };
/** admin ⊇ publish ⊇ read (permissions.ts SCOPE_ACTIONS). */
const SCOPE_RANK: Record<KeyScope, number> = { read: 0, publish: 1, admin: 2 };
const deny = (reason: string): Decision => ({ allowed: false, unauthenticated: false, reason });
const unauthenticated = (reason: string): Decision => ({ allowed: false, unauthenticated: true, reason });

/** A password login, or an admin-scope key valid for every repository. */
function unrestricted(p: Principal): boolean {
  return !p.key || (p.key.scopes.includes('admin') && p.key.repositories === null);
}

/** Administrator with nothing narrowing it: a password login or an unrestricted admin key. */
export function isRegistryAdmin(caller: Caller): boolean {
  const p = caller.principal;
  return !!p && !caller.grants && p.isAdmin && unrestricted(p);
}

export function decide(caller: Caller, cap: Capability, isPublic: (repository: string) => boolean): Decision {
  if (cap.kind === 'repository') {
    if (caller.grants) {
      const ok = caller.grants.some((g) => g.type === 'repository' && g.name === cap.repository && (g.actions.includes(cap.action) || g.actions.includes('*')));
      return ok ? ALLOW : unauthenticated(`token does not grant ${cap.action} on ${cap.repository}`);
    }
    if (allowedActions(caller.principal, cap.repository, isPublic(cap.repository)).has(cap.action)) return ALLOW;
    return caller.principal ? deny(`${cap.action} on ${cap.repository} is not permitted`) : unauthenticated('authentication required');
  }
  if (cap.kind === 'bundle.transition') {
    // Submitters (push) propose; namespace managers approve, reject, activate and retire.
    const proposes = cap.to === 'REGISTERED' || cap.to === 'CANDIDATE';
    return proposes
      ? decide(caller, { kind: 'repository', repository: cap.repository, action: 'push' }, isPublic)
      : decide(caller, { kind: 'namespace.manage', namespace: namespaceOf(cap.repository) }, isPublic);
  }

  const p = caller.principal;
  // Everything below is management: bearer tokens (OCI grants only) and anonymous callers
  // must authenticate with a password or an API key.
  if (!p || caller.grants) return unauthenticated('authenticate with a password or API key');

  switch (cap.kind) {
    case 'registry.admin':
      return isRegistryAdmin(caller) ? ALLOW : deny(p.isAdmin ? 'this API key is narrower than an administrator' : 'administrators only');
    case 'namespace.manage': {
      if (!unrestricted(p)) return deny('only a password login or an unrestricted admin key manages a namespace');
      return p.isAdmin || p.name === cap.namespace || p.roles.get(cap.namespace) === 'owner' ? ALLOW : deny(`only owners of ${cap.namespace} manage it`);
    }
    case 'user.manage':
      if (p.key) return deny('users are managed with a password login, never an API key');
      return p.isAdmin ? ALLOW : deny('only administrators manage users');
    case 'user.password':
      if (p.key) return deny('passwords are changed with a password login, never an API key');
      return p.id === cap.userId || p.isAdmin ? ALLOW : deny('only the user or an administrator changes a password');
    case 'family.write': {
      if (isRegistryAdmin(caller)) return ALLOW;
      const role = cap.delegatedTo ? p.roles.get(cap.delegatedTo) : undefined;
      if (unrestricted(p) && (role === 'owner' || role === 'maintainer')) return ALLOW;
      return deny(cap.delegatedTo ? `only administrators and owners or maintainers of ${cap.delegatedTo} change ${cap.family} entries` : `only administrators change ${cap.family} entries`);
    }
    case 'org.create':
      return unrestricted(p) ? ALLOW : deny('this API key may not create organisations');
    case 'org.read':
      return isRegistryAdmin(caller) || p.roles.has(cap.org) ? ALLOW : deny('not a member of this organisation');
    case 'account.read':
      return ALLOW;
    case 'key.create': {
      if (!p.key) return ALLOW; // a key never exceeds its user's own rights
      if (!p.key.scopes.includes('admin')) return deny('this API key may not create keys');
      const own = p.key;
      const broader =
        !cap.scopes.every((s) => SCOPE_RANK[s] <= Math.max(...own.scopes.map((o) => SCOPE_RANK[o]))) ||
        (own.repositories !== null && (cap.repositories === null || !cap.repositories.every((r) => own.repositories!.includes(r)))) ||
        (own.expiresAt !== null && (cap.expiresAt === null || cap.expiresAt > own.expiresAt));
      return broader ? deny('an API key can only create keys no broader than itself') : ALLOW;
    }
    case 'key.revoke':
      // Any key may revoke itself (a leaked key's holder can always kill it); revoking others
      // takes a password login or an unrestricted admin key, so a narrow key cannot cut off
      // its user's other credentials.
      if (p.key && cap.keyId === p.key.id && cap.ownerId === p.id) return ALLOW;
      if (!unrestricted(p)) return deny('only a password login or an unrestricted admin key revokes other keys');
      return p.id === cap.ownerId || isRegistryAdmin(caller) ? ALLOW : deny('not your key');
  }
}

/** The audit-action id recorded when a capability is refused. */
export function capabilityName(cap: Capability): string {
  switch (cap.kind) {
    case 'repository':
      return `oci.${cap.action}`;
    case 'bundle.transition':
      return `bundle.transition.${cap.to.toLowerCase()}`;
    default:
      return cap.kind;
  }
}

/** Repository names a catalog shows: an exact name, or every name under `prefix` (ending in '/'), optionally one level deep only. */
export type NameRange = { exact: string } | { prefix: string; oneLevel: boolean };
export type CatalogScope = { all: true } | { all: false; publicToo: boolean; ranges: NameRange[] };

/**
 * What `_catalog` shows the caller: exactly the repositories `decide` lets it pull (a token
 * without the `registry:catalog:*` grant: only those it names), as ranges the store can read by
 * index. The unit tests check it against `decide` for random callers and names.
 */
export function catalogScope(caller: Caller): CatalogScope {
  if (caller.grants && !caller.grants.some((g) => g.type === 'registry' && g.name === 'catalog')) {
    const named = caller.grants.filter((g) => g.type === 'repository' && (g.actions.includes('pull') || g.actions.includes('*'))).map((g) => ({ exact: g.name }));
    return { all: false, publicToo: false, ranges: named };
  }
  const p = caller.principal;
  if (!p) return { all: false, publicToo: true, ranges: [] };
  const patterns = p.key?.repositories ?? null;
  if (p.isAdmin && patterns === null) return { all: true };
  // Every role, and every key scope, includes pull: the namespaces a user belongs to are readable.
  const readable = (ns: string): boolean => p.isAdmin || ns === p.name || p.roles.has(ns);
  if (patterns === null) {
    const namespaces = [p.name, ...p.roles.keys()];
    return { all: false, publicToo: true, ranges: namespaces.flatMap((ns): NameRange[] => [{ exact: ns }, { prefix: `${ns}/`, oneLevel: false }]) };
  }
  const ranges = patterns.filter((pattern) => readable(namespaceOf(pattern))).map((pattern): NameRange => {
    if (pattern.endsWith('/**')) return { prefix: pattern.slice(0, -2), oneLevel: false };
    if (pattern.endsWith('/*')) return { prefix: pattern.slice(0, -1), oneLevel: true };
    return { exact: pattern };
  });
  return { all: false, publicToo: true, ranges };
}
