/**
 * Turns an Authorization header into a caller: a user (by password or API key, via Basic), a
 * bearer token's grants, or anonymous. Bad credentials are an error, never a silent downgrade
 * to anonymous.
 */
import { ociError } from '../errors/catalogue.js';
import type { IdentityStore } from './identity-store.js';
import type { Principal } from './permissions.js';
import { parseApiKey, safeEqual, sha256Hex, verifyPassword } from './secrets.js';
import type { AccessEntry, TokenService } from './tokens.js';

export interface Caller {
  /** null for anonymous callers (and anonymous tokens). */
  principal: Principal | null;
  /** Set when the caller presented a bearer token: its grants are the only rights it has. */
  grants?: AccessEntry[];
  /** How the caller is named in the event log. */
  actor: string;
  /** Rate-limit bucket. */
  bucket: string;
}

export const ANONYMOUS_SUBJECT = 'anonymous';

/** Successful Basic checks are remembered briefly: scrypt on every blob request would dominate. */
const BASIC_CACHE_MS = 60_000;
const BASIC_CACHE_MAX = 10_000;

export class Authenticator {
  private readonly basicCache = new Map<string, { userId: number; expires: number }>();

  constructor(
    private readonly identities: IdentityStore,
    private readonly tokens: TokenService,
  ) {}

  /** Verifies user/secret where the secret is a password or an API key. Null when they do not check out. */
  async verifyCredentials(username: string, secret: string): Promise<Principal | null> {
    const apiKey = parseApiKey(secret);
    if (apiKey) {
      const key = this.identities.keyById(apiKey.id);
      const ok = key !== undefined && safeEqual(sha256Hex(apiKey.secret), key.secretHash);
      if (!ok || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= Date.now())) return null;
      const user = this.identities.principalById(key.userId);
      return user && !user.disabled ? this.identities.loadPrincipal(user, key) : null;
    }
    const cacheKey = sha256Hex(`${username}\0${secret}`);
    const cached = this.basicCache.get(cacheKey);
    if (cached && cached.expires > Date.now()) {
      const user = this.identities.principalById(cached.userId);
      if (user && !user.disabled) return this.identities.loadPrincipal(user);
    }
    const user = this.identities.principalByName(username);
    const usable = user?.kind === 'user' && !user.disabled ? user : undefined;
    // Always run scrypt, even for unknown users, so response time does not reveal which exist.
    if (!(await verifyPassword(secret, usable?.passwordHash)) || !usable) return null;
    if (this.basicCache.size >= BASIC_CACHE_MAX) this.basicCache.clear();
    this.basicCache.set(cacheKey, { userId: usable.id, expires: Date.now() + BASIC_CACHE_MS });
    return this.identities.loadPrincipal(usable);
  }

  /** Principal behind a token or refresh token subject, if it (and its key) is still valid. */
  principalFor(sub: string, keyId?: string): Principal | null | undefined {
    if (sub === ANONYMOUS_SUBJECT) return null;
    const user = this.identities.principalByName(sub);
    if (!user || user.disabled || user.kind !== 'user') return undefined;
    if (keyId === undefined) return this.identities.loadPrincipal(user);
    const key = this.identities.keyById(keyId);
    if (!key || key.userId !== user.id || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= Date.now())) return undefined;
    return this.identities.loadPrincipal(user, key);
  }

  async authenticate(header: string | undefined, clientAddress: string): Promise<Caller> {
    if (!header) return { principal: null, actor: ANONYMOUS_SUBJECT, bucket: `ip:${clientAddress}` };
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw ociError('UNAUTHORIZED', 'malformed basic credentials');
      const principal = await this.verifyCredentials(decoded.slice(0, colon), decoded.slice(colon + 1));
      if (!principal) throw ociError('UNAUTHORIZED', 'invalid username, password or API key');
      return { principal, actor: actorOf(principal), bucket: bucketOf(principal) };
    }
    if (scheme === 'bearer') {
      const claims = await this.tokens.verifyAccess(value);
      if (!claims) throw ociError('UNAUTHORIZED', 'invalid or expired token');
      const principal = this.principalFor(claims.sub, claims.kid);
      if (principal === undefined) throw ociError('UNAUTHORIZED', 'the token\'s user or key is no longer valid');
      return principal === null
        ? { principal: null, grants: claims.access, actor: ANONYMOUS_SUBJECT, bucket: `ip:${clientAddress}` }
        : { principal, grants: claims.access, actor: actorOf(principal), bucket: bucketOf(principal) };
    }
    throw ociError('UNAUTHORIZED', 'unsupported authorization scheme');
  }
}

export const actorOf = (p: Principal): string => (p.key ? `${p.name}/key:${p.key.id}` : p.name);
const bucketOf = (p: Principal): string => (p.key ? `key:${p.key.id}` : `user:${p.id}`);
