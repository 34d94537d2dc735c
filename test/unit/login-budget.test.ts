/**
 * The failed-login budget with an injected clock: exact counts, refills and Retry-After, however
 * slow the machine is (hardening.test.ts once failed under load because 12 real requests took
 * longer than one 6 s refill). Also the token bucket itself under arbitrary schedules (property).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createUserAccount } from '../../src/auth/accounts.js';
import { Authenticator } from '../../src/auth/authenticate.js';
import { IdentityStore } from '../../src/auth/identity-store.js';
import { RateLimiter } from '../../src/auth/rate-limit.js';
import { loadOrCreateKeys, TokenService } from '../../src/auth/tokens.js';
import { AppError } from '../../src/errors/catalogue.js';
import { openDatabase } from '../../src/meta/db.js';
import { removeDir } from '../helpers/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'as-budget-'));
const db = openDatabase(join(dir, 'metadata.db'));
afterAll(() => {
  db.$client.close();
  removeDir(dir);
});

async function attempt(auth: Authenticator, password: string, from: string): Promise<'ok' | 'bad' | number> {
  try {
    return (await auth.verifyCredentials('dana', password, from)) ? 'ok' : 'bad';
  } catch (err) {
    if (err instanceof AppError && err.code === 'TOOMANYREQUESTS') return Number(err.headers['Retry-After']);
    throw err;
  }
}

describe('failed-login budget (fake clock)', () => {
  it('10 failures, then 429 with Retry-After until 6 s have passed; a right password costs nothing', async () => {
    const ids = new IdentityStore(db);
    await createUserAccount(ids, 'dana', 'the-right-password', false, 'test', true);
    const tokens = new TokenService(await loadOrCreateKeys(join(dir, 'key.jwk')), 'i', 's', 300, 3600);
    let now = 1_000_000;
    const auth = new Authenticator(ids, tokens, () => now);

    for (let i = 0; i < 10; i++) expect(await attempt(auth, `guess-${i}`, '10.0.0.1')).toBe('bad');
    expect(await attempt(auth, 'guess-x', '10.0.0.1')).toBe(6);
    // Time stands still however long the checks take: still refused, however many tries.
    for (let i = 0; i < 3; i++) expect(await attempt(auth, 'guess-y', '10.0.0.1')).toBeGreaterThan(0);
    // Another address has its own budget.
    expect(await attempt(auth, 'guess-z', '10.0.0.2')).toBe('bad');

    now += 5_000;
    expect(await attempt(auth, 'guess-a', '10.0.0.1')).toBeOneOf([1, 2]); // about a second left (float rounding)
    now += 1_001;
    expect(await attempt(auth, 'the-right-password', '10.0.0.1')).toBe('ok'); // refunded
    expect(await attempt(auth, 'guess-b', '10.0.0.1')).toBe('bad'); // the refilled attempt
    expect(await attempt(auth, 'guess-c', '10.0.0.1')).toBe(6);
    // The bucket never holds more than the burst of 10: the property test below covers that.
  }, 180_000); // 13 scrypt hashes: seconds on a machine at load ~15
});

describe('RateLimiter with an injected clock (property)', () => {
  it('never allows more than burst + elapsed × rate takes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 2_000 }), { maxLength: 200 }), (perSecond, burst, gaps) => {
        let now = 0;
        const limiter = new RateLimiter(perSecond, burst, () => now);
        let allowed = 0;
        for (const gap of gaps) {
          now += gap;
          if (limiter.take('k') === 0) allowed++;
        }
        expect(allowed).toBeLessThanOrEqual(burst + (now / 1000) * perSecond + 1e-9);
        // With no time passing, a full bucket allows exactly `burst`.
        const still = new RateLimiter(perSecond, burst, () => 0);
        let n = 0;
        while (still.take('k') === 0 && n <= burst) n++;
        expect(n).toBe(burst);
      }),
    );
  });
});
