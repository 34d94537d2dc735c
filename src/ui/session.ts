/**
 * Web UI sessions (auth: token). Signing in checks the password through the real API (a
 * sub-request to `/api/v1/whoami` with Basic credentials, so the failed-login budget and every
 * rule of the auth module apply unchanged), then:
 *
 * - mints an API key for the session (`web UI session`, expiring with it) through the auth
 *   module's own `createApiKey`: the UI reads other modules through their HTTP APIs with it,
 *   so the UI can never show more than the API would (no second authorisation path);
 * - sets a cookie holding that key's token: HttpOnly, SameSite=Strict, Path=/, Secure behind
 *   https. Only its SHA-256 is stored (in `ui_sessions`, with the CSRF token).
 *
 * A session dies with its key (revoked, expired), its user (disabled) or a password change
 * (token generation moved). Sign-out revokes the key.
 */
import { randomBytes } from 'node:crypto';
import type { Context } from 'hono';
import { createApiKey } from '../auth/accounts.js';
import { actorOf, type Caller } from '../auth/authenticate.js';
import type { IdentityStore } from '../auth/identity-store.js';
import { parseApiKey, safeEqual, sha256Hex } from '../auth/secrets.js';
import type { Db } from '../meta/db.js';
import type { AppEnv } from '../http/env.js';

export const COOKIE = 'as_session';
const SESSION_MS = 8 * 3600 * 1000;

export interface Session {
  userId: number;
  user: string;
  keyId: string;
  /** The key token (from the cookie): Basic credentials for API sub-requests. */
  token: string;
  csrf: string;
  caller: Caller;
}

export function readCookie(c: Context<AppEnv>, name: string): string | undefined {
  const header = c.req.header('cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function secure(c: Context<AppEnv>): string {
  return c.req.header('x-forwarded-proto') === 'https' || new URL(c.req.url).protocol === 'https:' ? '; Secure' : '';
}

export class SessionStore {
  constructor(
    private readonly db: Db,
    private readonly identities: IdentityStore,
  ) {}

  /** Creates the session for a user whose password was just checked; returns the Set-Cookie value. */
  create(c: Context<AppEnv>, userName: string): string | null {
    const user = this.identities.principalByName(userName);
    if (!user || user.kind !== 'user' || user.disabled) return null;
    const expiresAt = Date.now() + SESSION_MS;
    const key = createApiKey(this.identities, user.id, { name: 'web UI session', scopes: ['admin'], expiresAt }, user.name);
    this.db.$client
      .prepare('INSERT INTO ui_sessions(id_hash, user_id, generation, csrf, expires_at) VALUES (?, ?, ?, ?, ?)')
      .run(sha256Hex(key.token), user.id, user.tokenGeneration, randomBytes(24).toString('base64url'), expiresAt);
    this.db.$client.prepare('DELETE FROM ui_sessions WHERE expires_at < ?').run(Date.now());
    return `${COOKIE}=${key.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MS / 1000}${secure(c)}`;
  }

  clearCookie(c: Context<AppEnv>): string {
    return `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure(c)}`;
  }

  /** The live session behind the cookie, or null. */
  lookup(c: Context<AppEnv>): Session | null {
    const token = readCookie(c, COOKIE);
    const parsed = token ? parseApiKey(token) : null;
    if (!token || !parsed) return null;
    const row = this.db.$client.prepare('SELECT user_id, generation, csrf, expires_at FROM ui_sessions WHERE id_hash = ?').get(sha256Hex(token)) as
      | { user_id: number; generation: number; csrf: string; expires_at: number }
      | undefined;
    if (!row || row.expires_at <= Date.now()) return null;
    const key = this.identities.keyById(parsed.id);
    const user = this.identities.principalById(row.user_id);
    if (!key || key.userId !== row.user_id || key.revokedAt !== null || !safeEqual(sha256Hex(parsed.secret), key.secretHash)) return null;
    if (!user || user.disabled || user.tokenGeneration !== row.generation) return null;
    // A password login in effect (the password was checked at sign-in); the key is only the
    // session's credential for API sub-requests.
    const principal = this.identities.loadPrincipal(user);
    return { userId: user.id, user: user.name, keyId: key.id, token, csrf: row.csrf, caller: { principal, actor: actorOf(principal), bucket: `user:${user.id}` } };
  }

  end(session: Session): void {
    this.db.$client.prepare('DELETE FROM ui_sessions WHERE user_id = ? AND csrf = ?').run(session.userId, session.csrf);
    this.identities.revokeKey(session.keyId, session.user);
  }
}
