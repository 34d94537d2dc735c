/** Account operations shared by the management API and the CLI. */
import { ociError } from '../errors/catalogue.js';
import type { IdentityStore, PrincipalRow } from './identity-store.js';
import type { KeyScope } from './permissions.js';
import { hashPassword, newApiKey, sha256Hex } from './secrets.js';

/** User and organisation names are single repository-name components (they prefix repositories). */
const PRINCIPAL_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

/**
 * Names the system itself acts or logs under, or may: no account may take them (issue #18: a user
 * named `anonymous` had tokens indistinguishable from anonymous ones and was logged as nobody).
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['anonymous', 'system', 'registry', 'cli', 'gc', 'scheduler', 'unknown', 'token', 'v2', 'api']);

/** Whether a user or organisation could ever be created under this name (format, not reserved). */
export function isAssignableName(name: string): boolean {
  return name.length <= 64 && PRINCIPAL_RE.test(name) && !RESERVED_NAMES.has(name);
}

/**
 * A new user or organisation name must be free, and — unless an administrator is creating it —
 * must not already have repositories under it: claiming the name would take them over.
 */
export function validatePrincipalName(identities: IdentityStore, name: string, byAdmin: boolean): void {
  if (name.length > 64 || !PRINCIPAL_RE.test(name)) throw ociError('NAME_INVALID', 'names are lowercase letters, digits and . _ - separators, at most 64 characters');
  if (RESERVED_NAMES.has(name)) throw ociError('NAME_INVALID', `"${name}" is reserved for the registry itself`);
  if (identities.principalByName(name)) throw ociError('CONFLICT', `the name "${name}" is taken`);
  if (!byAdmin && identities.namespaceHasRepositories(name)) throw ociError('CONFLICT', `repositories already exist under "${name}/"; only an administrator can assign that namespace`);
}

export async function createUserAccount(identities: IdentityStore, name: string, password: string, admin: boolean, actor: string, byAdmin: boolean): Promise<PrincipalRow> {
  validatePrincipalName(identities, name, byAdmin);
  return identities.createUser(name, await hashPassword(password), admin, actor);
}

export function createApiKey(
  identities: IdentityStore,
  userId: number,
  opts: { name: string; scopes: KeyScope[]; repositories?: string[]; expiresInSeconds?: number; expiresAt?: number | null },
  actor: string,
): { id: string; token: string; expiresAt: number | null } {
  const { id, secret, token } = newApiKey();
  const expiresAt = opts.expiresAt !== undefined ? opts.expiresAt : opts.expiresInSeconds ? Date.now() + opts.expiresInSeconds * 1000 : null;
  identities.createKey(
    { id, userId, name: opts.name, secretHash: sha256Hex(secret), scopes: JSON.stringify(opts.scopes), repositories: opts.repositories ? JSON.stringify(opts.repositories) : null, expiresAt },
    actor,
  );
  return { id, token, expiresAt };
}
