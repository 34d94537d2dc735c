/**
 * Authorisation at the HTTP edge. Every route asks the capability evaluator (capabilities.ts)
 * through this interface — OCI routes via `authorize`, everything else via `require` — and a
 * refusal becomes 401 (with the right challenge) or 403 plus a denial event. With auth disabled
 * every answer is yes.
 */
import type { Context } from 'hono';
import { ociError, type AppError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import type { Caller } from './authenticate.js';
import type { IdentityStore } from './identity-store.js';
import { allowedActions, type Action } from './permissions.js';
import { capabilityName, decide, type Capability } from './capabilities.js';

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
  /** Throws UNAUTHORIZED (Basic challenge) or DENIED (with a denial event) unless the caller has `cap`. */
  require(c: Context<AppEnv>, cap: Capability): void;
  /** Whether the caller has `cap` (no event, no error): for filtering lists. */
  can(c: Context<AppEnv>, cap: Capability): boolean;
}

export const openAccess: AccessControl = {
  authorize() {},
  canPull: () => true,
  canList: () => true,
  authorizeCatalog() {},
  authorizeAdmin() {},
  require() {},
  can: () => true,
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

  private readonly isPublic = (repository: string): boolean => this.identities.isPublic(repository);

  private allowed(caller: Caller, repository: string, action: Action): boolean {
    return decide(caller, { kind: 'repository', repository, action }, this.isPublic).allowed;
  }

  can(c: Context<AppEnv>, cap: Capability): boolean {
    return decide(c.get('caller'), cap, this.isPublic).allowed;
  }

  require(c: Context<AppEnv>, cap: Capability): void {
    const caller = c.get('caller');
    const d = decide(caller, cap, this.isPublic);
    if (d.allowed) return;
    if (d.unauthenticated) throw ociError('UNAUTHORIZED', d.reason, { headers: { 'WWW-Authenticate': 'Basic realm="artifact-store"' } });
    this.identities.recordDenial(caller.actor, capabilityName(cap), 'repository' in cap ? cap.repository : null, d.reason);
    throw ociError('DENIED', d.reason);
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
    this.require(c, { kind: 'registry.admin' });
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
