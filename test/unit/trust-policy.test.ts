/** Identity matching (globs, never user regexes) and key validation for trust policies. */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { globMatch, matchIdentity, parsePublicKey, putPolicySchema } from '../../src/trust/policy.js';
import { AppError } from '../../src/errors/catalogue.js';

/** Reference semantics, built only from test-generated patterns. */
function reference(pattern: string, text: string): boolean {
  const re = [...pattern].map((ch) => (ch === '*' ? '[\\s\\S]*' : ch === '?' ? '[\\s\\S]' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${re}$`).test(text);
}

describe('globMatch', () => {
  it('agrees with an anchored reference matcher', () => {
    const alphabet = fc.constantFrom('a', 'b', '.', '@', '*', '?', '/');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 12 }).map((a) => a.join('')), fc.array(fc.constantFrom('a', 'b', '.', '@', '/'), { maxLength: 16 }).map((a) => a.join('')), (p, t) => {
        expect(globMatch(p, t)).toBe(reference(p, t));
      }),
      { numRuns: 3000 },
    );
  });

  it('is anchored: a fragment never matches a longer identity', () => {
    expect(globMatch('soyland', 'cody@soyland.com')).toBe(false);
    expect(globMatch('*@soyland.com', 'cody@soyland.com')).toBe(true);
    expect(globMatch('*@soyland.com', 'cody@soyland.com.evil')).toBe(false);
    expect(globMatch('https://github.com/acme/*/.github/workflows/release.yml@refs/tags/*', 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1')).toBe(true);
  });

  it('stays fast on patterns that make backtracking regexes explode', () => {
    const pattern = `${'*a'.repeat(16)}b`;
    const text = 'a'.repeat(100_000);
    const t0 = performance.now();
    expect(globMatch(pattern, text)).toBe(false);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('matchIdentity needs the issuer to match exactly, and a subject or pattern', () => {
    const ids = [{ issuer: 'https://token.actions.githubusercontent.com', subjectPattern: 'https://github.com/acme/*' }, { issuer: 'https://accounts.google.com', subject: 'dev@acme.com' }];
    expect(matchIdentity(ids, 'https://github.com/acme/app', 'https://token.actions.githubusercontent.com')).toBe(ids[0]);
    expect(matchIdentity(ids, 'https://github.com/acme/app', 'https://accounts.google.com')).toBeUndefined();
    expect(matchIdentity(ids, 'dev@acme.com', 'https://accounts.google.com')).toBe(ids[1]);
    expect(matchIdentity(ids, undefined, 'https://accounts.google.com')).toBeUndefined();
  });
});

describe('policy validation', () => {
  const pem = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) => k.export({ type: 'spki', format: 'pem' }).toString();
  it('accepts ECDSA P-256/P-384, Ed25519 and RSA >= 2048; refuses others and garbage', () => {
    for (const k of [generateKeyPairSync('ec', { namedCurve: 'prime256v1' }), generateKeyPairSync('ec', { namedCurve: 'secp384r1' }), generateKeyPairSync('ed25519'), generateKeyPairSync('rsa', { modulusLength: 2048 })]) {
      expect(parsePublicKey(pem(k.publicKey)).type).toBe('public');
    }
    for (const bad of [pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey), pem(generateKeyPairSync('x25519').publicKey), pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), 'garbage', '-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----']) {
      expect(() => parsePublicKey(bad)).toThrow(AppError);
    }
    // A private key is refused (node would derive its public half, and we would store the secret).
    const priv = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => parsePublicKey(priv)).toThrow(/private key/);
  });
  it('schema: exactly one of subject/subjectPattern, capped pattern, known modes only', () => {
    expect(putPolicySchema.safeParse({ mode: 'enforce', identities: [{ issuer: 'i', subject: 's', subjectPattern: 's*' }] }).success).toBe(false);
    expect(putPolicySchema.safeParse({ mode: 'enforce', identities: [{ issuer: 'i', subjectPattern: 'x'.repeat(257) }] }).success).toBe(false);
    expect(putPolicySchema.safeParse({ mode: 'enforce', identities: [{ issuer: 'i', subjectPattern: '*'.repeat(17) }] }).success).toBe(false);
    expect(putPolicySchema.safeParse({ mode: 'strict' }).success).toBe(false);
    expect(putPolicySchema.parse({ mode: 'warn' })).toEqual({ mode: 'warn', keys: [], identities: [], enforceOnPull: false });
  });
});
