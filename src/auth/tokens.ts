/**
 * Registry bearer tokens (the Docker token-auth flow): ES256 JWTs whose `access` claim lists the
 * granted repository actions. The signing key is generated on first start and kept in the data
 * directory (mode 0600), so tokens survive restarts and every process sharing it agrees.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type CryptoKey } from 'jose';

export interface AccessEntry {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

export interface AccessClaims {
  sub: string;
  /** Issue time in ms (verified tokens only). */
  issuedAt?: number;
  /** API key id when the token was issued for a key. */
  kid?: string;
  /** The user's token generation at issue (a password change bumps it); absent in tokens from older versions. */
  gen?: number;
  /** The user's id at issue: a later user given a deleted user's name is a different id. Absent in older tokens. */
  uid?: number;
  access: AccessEntry[];
}

export interface TokenKeys {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  keyId: string;
}

const ALG = 'ES256';

export async function loadOrCreateKeys(file: string): Promise<TokenKeys> {
  if (!existsSync(file)) {
    const { privateKey } = await generateKeyPair(ALG, { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: ALG };
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // Write then rename: two processes starting together never see half a key.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(jwk), { mode: 0o600 });
    if (!existsSync(file)) renameSync(tmp, file);
  }
  const jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK & { kid: string };
  const { d: _d, ...pub } = jwk;
  return { privateKey: (await importJWK(jwk, ALG)) as CryptoKey, publicKey: (await importJWK(pub, ALG)) as CryptoKey, keyId: jwk.kid };
}

/** Verified access tokens remembered at most (a token is a few hundred bytes). */
const VERIFIED_MAX = 10_000;

export class TokenService {
  /**
   * Access tokens whose signature, issuer and audience verified, by their exact text. A docker
   * pull sends the same token with every request, and an ES256 verification costs ~100 µs (more
   * than serving the manifest). Only that is remembered: not-before and expiry are checked again
   * on every use, and the caller still checks the token's user and key on every request.
   */
  private readonly verified = new Map<string, { claims: AccessClaims; nbf: number; exp: number }>();

  constructor(
    private readonly keys: TokenKeys,
    readonly issuer: string,
    readonly service: string,
    readonly ttlSeconds: number,
    readonly refreshTtlSeconds: number,
  ) {}

  async issueAccess(claims: AccessClaims): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    const issuedAt = new Date();
    const jwt = new SignJWT({ access: claims.access, ...(claims.kid ? { key: claims.kid } : {}), ...(claims.gen !== undefined ? { gen: claims.gen } : {}), ...(claims.uid !== undefined ? { uid: claims.uid } : {}) })
      .setProtectedHeader({ alg: ALG, kid: this.keys.keyId, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(this.service)
      .setSubject(claims.sub)
      .setIssuedAt(Math.floor(issuedAt.getTime() / 1000))
      .setNotBefore(Math.floor(issuedAt.getTime() / 1000) - 5)
      .setExpirationTime(Math.floor(issuedAt.getTime() / 1000) + this.ttlSeconds)
      .setJti(randomUUID());
    return { token: await jwt.sign(this.keys.privateKey), issuedAt, expiresIn: this.ttlSeconds };
  }

  async issueRefresh(sub: string, kid?: string, gen?: number, uid?: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ typ: 'refresh', ...(kid ? { key: kid } : {}), ...(gen !== undefined ? { gen } : {}), ...(uid !== undefined ? { uid } : {}) })
      .setProtectedHeader({ alg: ALG, kid: this.keys.keyId })
      .setIssuer(this.issuer)
      .setAudience(`${this.service}#refresh`)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + this.refreshTtlSeconds)
      .setJti(randomUUID())
      .sign(this.keys.privateKey);
  }

  /** Verifies signature, issuer, audience (this service) and time; null when any fails. */
  async verifyAccess(token: string): Promise<AccessClaims | null> {
    const known = this.verified.get(token);
    if (known) {
      // The same comparison jose makes (whole seconds, no clock tolerance).
      const now = Math.floor(Date.now() / 1000);
      if (known.nbf <= now && now < known.exp) return known.claims;
      if (now >= known.exp) this.verified.delete(token);
      return null;
    }
    try {
      const { payload } = await jwtVerify(token, this.keys.publicKey, { issuer: this.issuer, audience: this.service, algorithms: [ALG] });
      if (typeof payload.sub !== 'string' || !Array.isArray(payload.access)) return null;
      const claims: AccessClaims = { sub: payload.sub, kid: typeof payload.key === 'string' ? payload.key : undefined, gen: generationOf(payload.gen), uid: generationOf(payload.uid), access: payload.access as AccessEntry[], issuedAt: (payload.iat ?? 0) * 1000 };
      if (typeof payload.exp === 'number') {
        // Oldest first out (Map order); a flood of distinct valid tokens only costs verifications.
        if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
        this.verified.set(token, { claims, nbf: typeof payload.nbf === 'number' ? payload.nbf : -Infinity, exp: payload.exp });
      }
      return claims;
    } catch {
      return null;
    }
  }

  async verifyRefresh(token: string): Promise<{ sub: string; kid?: string; gen?: number; uid?: number; issuedAt: number } | null> {
    try {
      const { payload } = await jwtVerify(token, this.keys.publicKey, { issuer: this.issuer, audience: `${this.service}#refresh`, algorithms: [ALG] });
      if (payload.typ !== 'refresh' || typeof payload.sub !== 'string') return null;
      return { sub: payload.sub, kid: typeof payload.key === 'string' ? payload.key : undefined, gen: generationOf(payload.gen), uid: generationOf(payload.uid), issuedAt: (payload.iat ?? 0) * 1000 };
    } catch {
      return null;
    }
  }
}

const generationOf = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined);
