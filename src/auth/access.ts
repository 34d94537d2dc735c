/**
 * Authorisation for the OCI routes. The OCI modules ask one question — may this request do
 * `action` on `repository`? — through the AccessControl interface; with auth disabled every
 * answer is yes.
 */
import type { Context } from 'hono';
import { ociError, type AppError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import type { Caller } from './authenticate.js';
import type { IdentityStore } from './identity-store.js';
import { allowedActions, type Action } from './permissions.js';

export interface AccessControl {
  /** Throws UNAUTHORIZED (401 with a challenge) or DENIED (403) unless allowed. */
  authorize(c: Context<AppEnv>, repository: string, action: Action): void;
  /** Whether the caller may pull from the repository (mount sources). */
  canPull(c: Context<AppEnv>, repository: string): boolean;
  /** Whether `_catalog` shows the repository to the caller. */
  canList(c: Context<AppEnv>, repository: string): boolean;
  /** Asks an anonymous caller without a token to get one scoped `registry:catalog:*`. */
  authorizeCatalog(c: Context<AppEnv>): void;
  /** Registry-wide reads (the event log): administrators only, by password or unrestricted admin key. */
  authorizeAdmin(c: Context<AppEnv>): void;
}

export const openAccess: AccessControl = {
  authorize() {},
  canPull: () => true,
  canList: () => true,
  authorizeCatalog() {},
  authorizeAdmin() {},
};

const CHALLENGE_ACTIONS: Record<Action, string> = { pull: 'pull', push: 'pull,push', delete: 'delete' };

export function realmOf(c: Context<AppEnv>, configured: string | undefined): string {
  if (configured) return configured;
  const proto = c.req.header('x-forwarded-proto') === 'https' ? 'https' : 'http';
  return `${proto}://${c.req.header('host') ?? 'localhost'}/token`;
}

export class TokenAccess implements AccessControl {
  constructor(
    private readonly identities: IdentityStore,
    private readonly service: string,
    private readonly realm: string | undefined,
  ) {}

  private allowed(caller: Caller, repository: string, action: Action): boolean {
    if (caller.grants) {
      return caller.grants.some((g) => g.type === 'repository' && g.name === repository && (g.actions.includes(action) || g.actions.includes('*')));
    }
    return allowedActions(caller.principal, repository, this.identities.isPublic(repository)).has(action);
  }

  canPull(c: Context<AppEnv>, repository: string): boolean {
    return this.allowed(c.get('caller'), repository, 'pull');
  }

  /**
   * A token scoped to `registry:catalog:*` lists what its user could pull; a token without it
   * lists only the repositories it names.
   */
  canList(c: Context<AppEnv>, repository: string): boolean {
    const caller = c.get('caller');
    if (caller.grants?.some((g) => g.type === 'registry' && g.name === 'catalog')) {
      return allowedActions(caller.principal, repository, this.identities.isPublic(repository)).has('pull');
    }
    return this.allowed(caller, repository, 'pull');
  }

  private challenge(c: Context<AppEnv>, scope: string, insufficient: boolean, detail: unknown): AppError {
    const error = insufficient ? ',error="insufficient_scope"' : '';
    return ociError('UNAUTHORIZED', undefined, { detail, headers: { 'WWW-Authenticate': `Bearer realm="${realmOf(c, this.realm)}",service="${this.service}",scope="${scope}"${error}` } });
  }

  authorizeAdmin(c: Context<AppEnv>): void {
    const { principal, grants } = c.get('caller');
    if (!principal) throw ociError('UNAUTHORIZED', 'authenticate as an administrator', { headers: { 'WWW-Authenticate': 'Basic realm="artifact-store"' } });
    const unrestricted = !principal.key || (principal.key.scopes.includes('admin') && principal.key.repositories === null);
    if (!principal.isAdmin || grants || !unrestricted) throw ociError('DENIED', 'administrators only');
  }

  authorizeCatalog(c: Context<AppEnv>): void {
    const caller = c.get('caller');
    if (caller.principal === null && !caller.grants) throw this.challenge(c, 'registry:catalog:*', false, [{ Type: 'registry', Name: 'catalog', Action: '*' }]);
  }

  authorize(c: Context<AppEnv>, repository: string, action: Action): void {
    const caller = c.get('caller');
    if (this.allowed(caller, repository, action)) return;
    // Anonymous callers and tokens without the scope are asked to (re)authenticate, as docker
    // clients expect; a user who authenticated directly and lacks the right is refused.
    if (caller.principal === null || caller.grants) {
      throw this.challenge(c, `repository:${repository}:${CHALLENGE_ACTIONS[action]}`, caller.grants !== undefined, [{ Type: 'repository', Name: repository, Action: action }]);
    }
    if (action !== 'pull') this.identities.recordDenial(caller.actor, action, repository, 'insufficient permission');
    throw ociError('DENIED', undefined, { detail: [{ Type: 'repository', Name: repository, Action: action }] });
  }
}
