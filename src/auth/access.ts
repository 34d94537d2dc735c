/**
 * Authorisation at the HTTP edge. Every route asks the capability evaluator (capabilities.ts)
 * through this interface — OCI routes via `authorize`, everything else via `require` — and a
 * refusal becomes 401 (with the right challenge) or 403 plus a denial event. With auth disabled
 * every answer is yes.
 */
import type { Context } from 'hono';
import { ociError, type AppError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import { isAssignableName } from './accounts.js';
import type { Caller } from './authenticate.js';
import type { IdentityStore } from './identity-store.js';
import { namespaceOf, type Action } from './permissions.js';
import { capabilityName, catalogScope, decide, type Capability } from './capabilities.js';

export interface AccessControl {
  /** Throws UNAUTHORIZED (401 with a challenge) or DENIED (403) unless allowed. */
  authorize(c: Context<AppEnv>, repository: string, action: Action): void;
  /** Whether the caller may pull from the repository (mount sources). */
  canPull(c: Context<AppEnv>, repository: string): boolean;
  /**
   * One page of `_catalog` for the caller (names after `last`, at most `limit`), filtered by the
   * store in SQL. `listAll` pages every repository, for callers who may see all. Asks an
   * anonymous caller without a token to get one scoped `registry:catalog:*`.
   */
  catalogPage(c: Context<AppEnv>, limit: number, last: string | undefined, listAll: (limit: number, last?: string) => string[]): string[];
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
  catalogPage: (_c, limit, last, listAll) => listAll(limit, last),
  authorizeAdmin() {},
  require() {},
  can: () => true,
};

const CHALLENGE_ACTIONS: Record<Action, string> = { pull: 'pull', push: 'pull,push', delete: 'delete' };

/** RFC 3986 host (reg-name of letters, digits, '-', '.', or a bracketed IPv6 literal) and optional port. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** Whether a Host header is a plain host[:port] (checked before it goes anywhere near a header we build). */
export function isPlainHost(host: string): boolean {
  return host.length <= 261 && HOST_RE.test(host);
}

/**
 * The token realm: configured, or derived from the request's Host. A Host that is not a plain
 * host[:port] never reaches the challenge (issue #18: a crafted Host added `service`/`scope`
 * parameters); such a request is told to send a proper Host or the operator to set authRealm.
 */
export function realmOf(c: Context<AppEnv>, configured: string | undefined): string {
  if (configured) return configured;
  const proto = c.req.header('x-forwarded-proto') === 'https' ? 'https' : 'http';
  const host = c.req.header('host') ?? 'localhost';
  if (!isPlainHost(host)) throw ociError('UNSUPPORTED', 'the Host header is not a valid host[:port]; the server needs it (or a configured authRealm) to name its token endpoint', { status: 400 });
  return `${proto}://${host}/token`;
}

/** A quoted-string for an auth-param (RFC 9110 §5.6.4): backslash-escape '"' and '\\', drop control characters. */
export function quoted(value: string): string {
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/["\\]/g, '\\$&')}"`;
}

/** `Bearer k="v",…` with every value quote-escaped. */
export function bearerChallenge(params: Record<string, string>): string {
  return `Bearer ${Object.entries(params)
    .map(([k, v]) => `${k}=${quoted(v)}`)
    .join(',')}`;
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
   * lists only the repositories it names (capabilities.ts `catalogScope`).
   */
  catalogPage(c: Context<AppEnv>, limit: number, last: string | undefined, listAll: (limit: number, last?: string) => string[]): string[] {
    const caller = c.get('caller');
    if (caller.principal === null && !caller.grants) throw this.challenge(c, 'registry:catalog:*', false, [{ Type: 'registry', Name: 'catalog', Action: '*' }]);
    const scope = catalogScope(caller);
    return scope.all ? listAll(limit, last) : this.identities.visibleRepositories(scope, limit, last);
  }

  private challenge(c: Context<AppEnv>, scope: string, insufficient: boolean, detail: unknown, hint?: string): AppError {
    const params: Record<string, string> = { realm: realmOf(c, this.realm), service: this.service, scope };
    if (insufficient) params.error = 'insufficient_scope';
    // RFC 6750 §3: docker/containers clients print error_description; it is also the only place
    // a HEAD refusal (no body) can say anything.
    if (insufficient && hint) params.error_description = hint;
    return ociError('UNAUTHORIZED', hint, { detail, headers: { 'WWW-Authenticate': bearerChallenge(params) } });
  }

  authorizeAdmin(c: Context<AppEnv>): void {
    this.require(c, { kind: 'registry.admin' });
  }

  authorize(c: Context<AppEnv>, repository: string, action: Action): void {
    const caller = c.get('caller');
    if (this.allowed(caller, repository, action)) return;
    const detail = [{ Type: 'repository', Name: repository, Action: action }];
    const hint = this.refusalHint(caller, repository);
    // Anonymous callers and tokens without the scope are asked to (re)authenticate, as docker
    // clients expect; a user who authenticated directly and lacks the right is refused.
    if (caller.principal === null || caller.grants) {
      throw this.challenge(c, `repository:${repository}:${CHALLENGE_ACTIONS[action]}`, caller.grants !== undefined, detail, hint);
    }
    if (action !== 'pull') this.identities.recordDenial(caller.actor, capabilityName({ kind: 'repository', repository, action }), repository, hint ?? 'insufficient permission');
    throw ociError('DENIED', hint, { detail });
  }

  /**
   * What to do about a refusal, told only to an authenticated caller (issue #19: skopeo showed
   * "unexpected end of JSON input" and nothing else). Only when the namespace has no owner at
   * all: that says nothing about the repositories in it (whether any exist, public or not), and
   * whether a name is taken is what creating an organisation tells any signed-in user anyway.
   * Anonymous callers, and namespaces someone owns, get the generic refusal.
   */
  private refusalHint(caller: Caller, repository: string): string | undefined {
    if (caller.principal === null) return undefined;
    const ns = namespaceOf(repository);
    if (!isAssignableName(ns) || this.identities.principalByName(ns)) return undefined;
    return `namespace '${ns}' has no owner: create the organisation first (POST /api/v1/orgs with name '${ns}', or an administrator runs \`artifact-store org create ${ns} --owner <user>\`), then push`;
  }
}
