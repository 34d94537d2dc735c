/**
 * Who may do what to a repository (PRODUCT.md §3). Pure: every input is passed in.
 *
 * - The namespace is the repository name's first component; it belongs to the user or the
 *   organisation of that name. Nobody else can create repositories there (no squatting), and a
 *   namespace nobody owns is writable only by administrators.
 * - User namespace: the user may pull, push and delete.
 * - Organisation namespace: owner and maintainer pull, push, delete; reader pulls.
 * - Anyone, anonymous included, may pull a public repository.
 * - An API key narrows its user's rights to its scopes (read → pull; publish → pull, push;
 *   admin → everything) and, optionally, to repository patterns.
 */
export type Action = 'pull' | 'push' | 'delete';
export type Role = 'owner' | 'maintainer' | 'reader';
export type KeyScope = 'read' | 'publish' | 'admin';

export interface Principal {
  id: number;
  name: string;
  isAdmin: boolean;
  /** Organisation name → role. */
  roles: ReadonlyMap<string, Role>;
  /** Present when the caller authenticated with an API key. */
  key?: { id: string; scopes: readonly KeyScope[]; repositories: readonly string[] | null; expiresAt: number | null };
  /** The user's token generation when its credentials were checked: tokens carry it, a password change bumps it. */
  tokenGeneration?: number;
}

const ROLE_ACTIONS: Record<Role, readonly Action[]> = { owner: ['pull', 'push', 'delete'], maintainer: ['pull', 'push', 'delete'], reader: ['pull'] };
const SCOPE_ACTIONS: Record<KeyScope, readonly Action[]> = { read: ['pull'], publish: ['pull', 'push'], admin: ['pull', 'push', 'delete'] };

export const namespaceOf = (repository: string): string => repository.split('/', 1)[0]!;

/** `team/*` matches one level below team, `team/**` any depth, otherwise an exact name. */
export function matchesPattern(repository: string, pattern: string): boolean {
  if (pattern.endsWith('/**')) return repository.startsWith(pattern.slice(0, -2));
  if (pattern.endsWith('/*')) {
    const base = pattern.slice(0, -1);
    return repository.startsWith(base) && !repository.slice(base.length).includes('/');
  }
  return repository === pattern;
}

export function allowedActions(who: Principal | null, repository: string, isPublic: boolean): Set<Action> {
  const allowed = new Set<Action>(isPublic ? ['pull'] : []);
  if (!who) return allowed;
  const ns = namespaceOf(repository);
  let granted: readonly Action[] = [];
  if (who.isAdmin || ns === who.name) granted = ['pull', 'push', 'delete'];
  else {
    const role = who.roles.get(ns);
    if (role) granted = ROLE_ACTIONS[role];
  }
  for (const a of granted) allowed.add(a);
  if (who.key) {
    const inScope = who.key.repositories === null || who.key.repositories.some((p) => matchesPattern(repository, p));
    const keyActions = new Set(inScope ? who.key.scopes.flatMap((s) => SCOPE_ACTIONS[s]) : []);
    for (const a of [...allowed]) if (!keyActions.has(a) && !(a === 'pull' && isPublic)) allowed.delete(a);
  }
  return allowed;
}
