/**
 * Authorisation for the OCI routes. The OCI modules ask one question — may this request do
 * `action` on `repository`? — through the AccessControl interface; with auth disabled every
 * answer is yes.
 */
import type { Context } from 'hono';
import { ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import type { Caller } from './authenticate.js';
import type { IdentityStore } from './identity-store.js';
import { allowedActions, type Action } from './permissions.js';

export interface AccessControl {
  /** Throws UNAUTHORIZED (401 with a challenge) or DENIED (403) unless allowed. */
  authorize(c: Context<AppEnv>, repository: string, action: Action): void;
  /** Whether the caller may pull from the repository (mount sources, catalog filtering). */
  canPull(c: Context<AppEnv>, repository: string): boolean;
}

export const openAccess: AccessControl = {
  authorize() {},
  canPull: () => true,
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

  authorize(c: Context<AppEnv>, repository: string, action: Action): void {
    const caller = c.get('caller');
    if (this.allowed(caller, repository, action)) return;
    // Anonymous callers and tokens without the scope are asked to (re)authenticate, as docker
    // clients expect; a user who authenticated directly and lacks the right is refused.
    if (caller.principal === null || caller.grants) {
      const scope = `repository:${repository}:${CHALLENGE_ACTIONS[action]}`;
      const error = caller.grants ? ',error="insufficient_scope"' : '';
      throw ociError('UNAUTHORIZED', undefined, {
        detail: [{ Type: 'repository', Name: repository, Action: action }],
        headers: { 'WWW-Authenticate': `Bearer realm="${realmOf(c, this.realm)}",service="${this.service}",scope="${scope}"${error}` },
      });
    }
    if (action !== 'pull') this.identities.recordDenial(caller.actor, action, repository, 'insufficient permission');
    throw ociError('DENIED', undefined, { detail: [{ Type: 'repository', Name: repository, Action: action }] });
  }
}
