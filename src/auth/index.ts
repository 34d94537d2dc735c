/**
 * Identity and access: one register call. With `auth: none` every caller is anonymous and
 * allowed everything (a private, trusted network); with `auth: token` (the default) callers
 * authenticate as docker clients do and every OCI route is authorised.
 */
import { join, resolve } from 'node:path';
import type { Context, Hono } from 'hono';
import type { Config } from '../config/index.js';
import { AppError, ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import { errorResponse } from '../http/errors.js';
import type { Db } from '../meta/db.js';
import { bearerChallenge, openAccess, realmOf, TokenAccess, type AccessControl } from './access.js';
import { ANONYMOUS_SUBJECT, Authenticator } from './authenticate.js';
import { IdentityStore } from './identity-store.js';
import { registerManagementRoutes } from './management-routes.js';
import { RateLimiter } from './rate-limit.js';
import { loadOrCreateKeys, TokenService, type TokenKeys } from './tokens.js';
import { registerTokenRoutes } from './token-routes.js';
import { TrustedProxies } from '../ops/trusted-proxies.js';

export type { AccessControl } from './access.js';

/** The socket peer, or the client a trusted reverse proxy names (config trustedProxies). */
function clientAddressOf(proxies: TrustedProxies): (c: Context<AppEnv>) => string {
  return (c) => proxies.clientOf(c.env?.incoming?.socket?.remoteAddress, { forwarded: c.req.header('forwarded'), xForwardedFor: c.req.header('x-forwarded-for') });
}

export interface AuthModule {
  /** Installs authentication, rate limiting and the auth routes; returns what OCI routes ask. `onClose` gets work to finish at shutdown. */
  register(app: Hono<AppEnv>, onClose?: (stop: () => void) => void): AccessControl;
}

/** Health and metrics probes come from load balancers and Prometheus: never rate-limited (a 429 would mark a healthy server down). */
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

/** Loads (or creates) the token signing key, then returns the module to register. */
export async function createAuth(config: Config, db: Db): Promise<AuthModule> {
  const keys = config.auth === 'token' ? await loadOrCreateKeys(config.tokenSigningKeyFile ? resolve(config.tokenSigningKeyFile) : join(resolve(config.dataDir), 'auth', 'token-signing-key.jwk')) : undefined;
  return { register: (app, onClose) => registerAuth(app, config, db, keys, onClose) };
}

function registerAuth(app: Hono<AppEnv>, config: Config, db: Db, keys: TokenKeys | undefined, onClose?: (stop: () => void) => void): AccessControl {
  const clientAddress = clientAddressOf(new TrustedProxies(config.trustedProxies));
  const limiter = new RateLimiter(config.rateLimitPerSecond, Math.max(config.rateLimitBurst, 1));
  const limit = (bucket: string): void => {
    const wait = limiter.take(bucket);
    if (wait > 0) throw ociError('TOOMANYREQUESTS', undefined, { headers: { 'Retry-After': String(wait) } });
  };

  if (config.auth === 'none' || !keys) {
    app.use('*', async (c, next) => {
      const address = clientAddress(c);
      c.set('clientAddress', address);
      c.set('caller', { principal: null, actor: ANONYMOUS_SUBJECT, bucket: `ip:${address}` });
      try {
        if (!PROBES.has(c.req.path)) limit(`ip:${address}`);
      } catch (err) {
        return errorResponse(c, err);
      }
      await next();
    });
    return openAccess;
  }

  const identities = new IdentityStore(db);
  // Denial summaries owed for open windows are written before the database closes.
  onClose?.(() => identities.denials.flush());
  const tokens = new TokenService(keys, config.authIssuer, config.authService, config.tokenTtlSeconds, config.refreshTokenTtlSeconds);
  const authenticator = new Authenticator(identities, tokens);
  const access = new TokenAccess(identities, config.authService, config.authRealm);

  app.use('*', async (c, next) => {
    const address = clientAddress(c);
    c.set('clientAddress', address);
    try {
      // The general limit comes before any authentication, by address: a flood of requests
      // with passwords is refused before it can queue scrypt work ahead of honest logins.
      if (!PROBES.has(c.req.path)) limit(`ip:${address}`);
      if (c.req.path === '/token') {
        // The token endpoint checks its own credentials.
        c.set('caller', { principal: null, actor: ANONYMOUS_SUBJECT, bucket: `ip:${address}` });
      } else {
        const caller = await authenticator.authenticate(c.req.header('authorization'), address);
        // Also per credential, so one key used from many addresses is limited too.
        if (caller.bucket !== `ip:${address}`) limit(caller.bucket);
        c.set('caller', caller);
        c.set('actor', caller.actor);
        const isBase = c.req.path === '/v2/' || c.req.path === '/v2';
        if (isBase && caller.principal === null && !caller.grants) throw ociError('UNAUTHORIZED');
      }
    } catch (err) {
      // Every 401 tells the client where to get a token.
      try {
        const challenged =
          err instanceof AppError && err.code === 'UNAUTHORIZED' && !err.headers['WWW-Authenticate']
            ? ociError('UNAUTHORIZED', err.message, { headers: { 'WWW-Authenticate': bearerChallenge({ realm: realmOf(c, config.authRealm), service: config.authService }) } })
            : err;
        return errorResponse(c, challenged);
      } catch (hostErr) {
        return errorResponse(c, hostErr); // a Host that cannot name the realm
      }
    }
    await next();
  });

  registerTokenRoutes(app, { auth: authenticator, tokens, identities });
  registerManagementRoutes(app, identities, access);
  return access;
}
