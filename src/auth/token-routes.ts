/**
 * The token endpoint of the Docker/OCI token-auth flow:
 *   GET  /token?service=&scope=…&offline_token=  (Basic credentials, or anonymous)
 *   POST /token  (OAuth2 form: grant_type=password | refresh_token)
 * Each requested scope is granted only the actions the caller actually has.
 */
import type { Context, Hono } from 'hono';
import { canonicalName, isValidName } from '../core/names.js';
import { AppError, ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import { readBodyCapped } from '../http/body.js';
import { errorResponse } from '../http/errors.js';
import { ANONYMOUS_SUBJECT, actorOf, type Authenticator } from './authenticate.js';
import type { IdentityStore } from './identity-store.js';
import { decide } from './capabilities.js';
import type { Action, Principal } from './permissions.js';
import type { AccessEntry, TokenService } from './tokens.js';

const REPO_ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];
/** A token request names a handful of repositories; more is abuse. */
const MAX_SCOPES = 32;
/** OAuth2 forms are a few hundred bytes. */
const MAX_FORM_BYTES = 16 * 1024;

export function registerTokenRoutes(app: Hono<AppEnv>, deps: { auth: Authenticator; tokens: TokenService; identities: IdentityStore }): void {
  const { auth, tokens, identities } = deps;
  const isPublic = (repository: string): boolean => identities.isPublic(repository);

  function grant(principal: Principal | null, scopes: string[]): AccessEntry[] {
    const access: AccessEntry[] = [];
    const refusals: string[] = [];
    for (const scope of scopes.slice(0, MAX_SCOPES)) {
      // repository:<name>:<actions>; the name may itself contain ':' only in a host:port prefix, which we do not serve.
      const [type, requested, actionList] = scope.split(':');
      const name = requested === undefined ? undefined : canonicalName(requested); // registry/… is _registry/…
      // The catalog itself filters by what the caller may pull, so anyone may ask for it.
      if (type === 'registry' && name === 'catalog') access.push({ type: 'registry', name: 'catalog', actions: ['*'] });
      if (type !== 'repository' || !name || actionList === undefined || !isValidName(name)) continue;
      const wanted = actionList === '*' ? REPO_ACTIONS : actionList.split(',').filter((a): a is Action => (REPO_ACTIONS as string[]).includes(a));
      // The evaluator decides each action for the caller as it would on a direct request.
      const caller = { principal, actor: principal ? actorOf(principal) : ANONYMOUS_SUBJECT, bucket: '' };
      const allowed = new Set(wanted.filter((a) => decide(caller, { kind: 'repository', repository: name, action: a }, isPublic).allowed));
      const granted = wanted.filter((a) => allowed.has(a));
      const refused = wanted.filter((a) => !allowed.has(a) && a !== 'pull');
      if (refused.length > 0) refusals.push(`${name}:${refused.join(',')}`);
      access.push({ type: 'repository', name, actions: granted });
    }
    // One refusal per token request, however many scopes it was refused; the action is fixed so
    // the per actor-and-action budget applies (the names requested go in the reason).
    if (principal && refusals.length > 0) identities.recordDenial(actorOf(principal), 'token.scope', null, `token scope not granted: ${refusals.slice(0, 10).join(' ')}`);
    return access;
  }

  async function respond(c: Context<AppEnv>, principal: Principal | null, scopes: string[], service: string | undefined, withRefresh: boolean): Promise<Response> {
    if (service !== undefined && service !== tokens.service) throw ociError('DENIED', `this server issues tokens for service "${tokens.service}"`, { status: 400 });
    const sub = principal ? principal.name : ANONYMOUS_SUBJECT;
    const { token, issuedAt, expiresIn } = await tokens.issueAccess({ sub, kid: principal?.key?.id, gen: principal?.tokenGeneration, uid: principal?.id, access: grant(principal, scopes) });
    const body: Record<string, unknown> = { token, access_token: token, expires_in: expiresIn, issued_at: issuedAt.toISOString() };
    if (withRefresh && principal) body.refresh_token = await tokens.issueRefresh(sub, principal.key?.id, principal.tokenGeneration, principal.id);
    return c.json(body, 200, { 'Cache-Control': 'no-store' });
  }

  const basicChallenge = (err: unknown) => (err instanceof AppError && err.code === 'UNAUTHORIZED' ? ociError('UNAUTHORIZED', err.message, { headers: { 'WWW-Authenticate': 'Basic realm="artifact-store"' } }) : err);

  app.get('/token', async (c) => {
    try {
      const caller = await auth.authenticate(c.req.header('authorization'), c.get('clientAddress'));
      if (caller.grants) throw ociError('UNAUTHORIZED', 'use Basic credentials or a refresh token to obtain a token');
      return await respond(c, caller.principal, c.req.queries('scope') ?? [], c.req.query('service'), c.req.query('offline_token') === 'true');
    } catch (err) {
      return errorResponse(c, basicChallenge(err));
    }
  });

  app.post('/token', async (c) => {
    try {
      const form = await readForm(c);
      const field = (k: string): string | undefined => (typeof form[k] === 'string' ? (form[k] as string) : undefined);
      const scopes = (field('scope') ?? '').split(' ').filter(Boolean);
      let principal: Principal | null;
      if (field('grant_type') === 'password') {
        principal = await auth.verifyCredentials(field('username') ?? '', field('password') ?? '', c.get('clientAddress'));
        if (!principal) throw ociError('UNAUTHORIZED', 'invalid username, password or API key');
      } else if (field('grant_type') === 'refresh_token') {
        const refresh = await tokens.verifyRefresh(field('refresh_token') ?? '');
        const found = refresh ? auth.principalFor(refresh.sub, refresh.kid, refresh.issuedAt, refresh.gen, refresh.uid) : undefined;
        if (!found) throw ociError('UNAUTHORIZED', 'invalid or expired refresh token');
        principal = found;
      } else {
        throw ociError('UNSUPPORTED', 'grant_type must be password or refresh_token', { status: 400 });
      }
      return await respond(c, principal, scopes, field('service'), true);
    } catch (err) {
      return errorResponse(c, err);
    }
  });
}

/** The POST body, bounded before it is read, and a 400 (not a 500) when it is not a form. */
async function readForm(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) throw ociError('UNSUPPORTED', 'expected an application/x-www-form-urlencoded body', { status: 400 });
  const body = await readBodyCapped(c, MAX_FORM_BYTES);
  if (body === null) throw ociError('UNSUPPORTED', 'form too large', { status: 413 });
  return Object.fromEntries(new URLSearchParams(body.toString('utf8')));
}
