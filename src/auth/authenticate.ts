/**
 * Turns an Authorization header into a caller: a user (by password or API key, via Basic), a
 * bearer token's grants, or anonymous. Bad credentials are an error, never a silent downgrade
 * to anonymous.
 */
import { AppError, ociError } from '../errors/catalogue.js';
import { RESERVED_NAMES } from './accounts.js';
import type { IdentityStore } from './identity-store.js';
import { RateLimiter } from './rate-limit.js';
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

/**
 * Failed password logins are budgeted per client address: 10 failures, then one every 6 seconds.
 * Every password check *reserves* one failure before scrypt runs and gets it back only when the
 * password was right, so concurrent guesses cannot all pass a check made before any of them
 * failed (issue #18: 30 parallel guesses all got 401 with a budget of 10). Per address, not per
 * user name: a per-name budget would let anyone lock a user out.
 */
const FAILURES_PER_SECOND = 1 / 6;
const FAILURE_BURST = 10;
/** scrypt runs on libuv's 4-thread pool, which file I/O shares: keep two threads for I/O. */
const MAX_CONCURRENT_SCRYPT = 2;
/** Password checks waiting for a scrypt slot; beyond this a login is refused at once (429) rather than queued for seconds. */
const MAX_SCRYPT_WAITING = 16;

export class Authenticator {
  private readonly basicCache = new Map<string, { userId: number; passwordHash: string; expires: number }>();
  private readonly failures: RateLimiter;
  private readonly scryptSlots = new BoundedSemaphore(MAX_CONCURRENT_SCRYPT, MAX_SCRYPT_WAITING);
  private readonly inFlight = new Map<string, Promise<Principal | null>>();

  constructor(
    private readonly identities: IdentityStore,
    private readonly tokens: TokenService,
    /** The failed-login budget's clock: tests advance it instead of racing the real one. */
    clock: () => number = Date.now,
  ) {
    this.failures = new RateLimiter(FAILURES_PER_SECOND, FAILURE_BURST, clock);
  }

  /** Verifies user/secret where the secret is a password or an API key. Null when they do not check out. */
  async verifyCredentials(username: string, secret: string, clientAddress: string): Promise<Principal | null> {
    const apiKey = parseApiKey(secret);
    if (apiKey) {
      // 256-bit secrets checked with one SHA-256: nothing to guess, nothing costly to budget.
      const key = this.identities.keyById(apiKey.id);
      const ok = key !== undefined && safeEqual(sha256Hex(apiKey.secret), key.secretHash);
      if (!ok || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= Date.now())) return null;
      const user = this.identities.principalById(key.userId);
      return user && !user.disabled && !RESERVED_NAMES.has(user.name) ? this.identities.loadPrincipal(user, key) : null;
    }
    const cacheKey = sha256Hex(`${username}\0${secret}`);
    const cached = this.basicCache.get(cacheKey);
    if (cached && cached.expires > Date.now()) {
      const user = this.identities.principalById(cached.userId);
      // A changed password or a disabled user invalidates the remembered login at once.
      if (user && !user.disabled && user.passwordHash === cached.passwordHash) return this.identities.loadPrincipal(user);
    }
    // The same credentials already being checked (a client's parallel first requests): share
    // that check rather than spend a reservation and a scrypt run on each.
    // Per address too, so one address's spent budget never refuses another's login.
    const flightKey = `${cacheKey}\0${clientAddress}`;
    const pending = this.inFlight.get(flightKey);
    if (pending) return pending;
    const check = this.checkPassword(username, secret, cacheKey, clientAddress);
    this.inFlight.set(flightKey, check);
    try {
      return await check;
    } finally {
      this.inFlight.delete(flightKey);
    }
  }

  private async checkPassword(username: string, secret: string, cacheKey: string, clientAddress: string): Promise<Principal | null> {
    // Reserve a failure before any scrypt runs; a correct password gives it back.
    const bucket = `ip:${clientAddress}`;
    const wait = this.failures.take(bucket);
    if (wait > 0) throw ociError('TOOMANYREQUESTS', 'too many failed logins', { headers: { 'Retry-After': String(wait) } });
    const user = this.identities.principalByName(username);
    // An account under a reserved name (made before names were reserved) never logs in: it would act as the system.
    const usable = user?.kind === 'user' && !user.disabled && !RESERVED_NAMES.has(user.name) ? user : undefined;
    // Always run scrypt, even for unknown users, so response time does not reveal which exist.
    let ok: boolean;
    try {
      ok = await this.scryptSlots.run(() => verifyPassword(secret, usable?.passwordHash));
    } catch (err) {
      if (err instanceof AppError) this.failures.refund(bucket); // the queue was full: nothing was checked
      throw err;
    }
    if (!ok || !usable) return null;
    this.failures.refund(bucket);
    if (this.basicCache.size >= BASIC_CACHE_MAX) this.basicCache.clear();
    this.basicCache.set(cacheKey, { userId: usable.id, passwordHash: usable.passwordHash!, expires: Date.now() + BASIC_CACHE_MS });
    return this.identities.loadPrincipal(usable);
  }

  /**
   * Principal behind a token or refresh token subject, if it (and its key) is still valid. A token
   * is void once its user's password changed: its generation is older (or, for tokens without a
   * generation, it was issued at or before the change).
   */
  principalFor(sub: string, keyId: string | undefined, issuedAt: number, generation?: number, userId?: number): Principal | null | undefined {
    if (sub === ANONYMOUS_SUBJECT) return null;
    const user = this.identities.principalByName(sub);
    if (!user || user.disabled || user.kind !== 'user') return undefined;
    // A deleted user's name may be given again: its tokens name the old id (or, from versions
    // without `uid`, predate the new account by more than the second iat is rounded to).
    if (userId !== undefined ? userId !== user.id : issuedAt < user.createdAt - 1000) return undefined;
    if (generation === undefined ? issuedAt <= user.tokensValidAfter : generation !== user.tokenGeneration) return undefined;
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
      const principal = await this.verifyCredentials(decoded.slice(0, colon), decoded.slice(colon + 1), clientAddress);
      if (!principal) throw ociError('UNAUTHORIZED', 'invalid username, password or API key');
      return { principal, actor: actorOf(principal), bucket: bucketOf(principal) };
    }
    if (scheme === 'bearer') {
      const claims = await this.tokens.verifyAccess(value);
      if (!claims) throw ociError('UNAUTHORIZED', 'invalid or expired token');
      const principal = this.principalFor(claims.sub, claims.kid, claims.issuedAt ?? 0, claims.gen, claims.uid);
      if (principal === undefined) throw ociError('UNAUTHORIZED', 'the token\'s user or key is no longer valid');
      return principal === null
        ? { principal: null, grants: claims.access, actor: ANONYMOUS_SUBJECT, bucket: `ip:${clientAddress}` }
        : { principal, grants: claims.access, actor: actorOf(principal), bucket: bucketOf(principal) };
    }
    throw ociError('UNAUTHORIZED', 'unsupported authorization scheme');
  }
}

export const actorOf = (p: Principal): string => (p.key ? `${p.name}/key:${p.key.id}` : p.name);

/** At most `size` concurrent runs and `maxWaiting` waiting in order; beyond that 429 at once. */
class BoundedSemaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly size: number,
    private readonly maxWaiting: number,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) {
      if (this.waiting.length >= this.maxWaiting) {
        throw ociError('TOOMANYREQUESTS', 'too many password checks in progress; retry shortly', { headers: { 'Retry-After': '1' } });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
const bucketOf = (p: Principal): string => (p.key ? `key:${p.key.id}` : `user:${p.id}`);
