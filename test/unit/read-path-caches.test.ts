/**
 * Caches on the pull path (issue #17): verified access tokens and trust policies are remembered
 * between requests, and never answer differently than asking again would (expiry, writes by
 * this process, a rolled-back write, writes by another connection within DATA_VERSION_MS).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateKeys, TokenService } from '../../src/auth/tokens.js';
import { openDatabase } from '../../src/meta/db.js';
import { TrustPolicyStore } from '../../src/trust/policy-store.js';
import { removeDir } from '../helpers/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'as-read-caches-'));
const db = openDatabase(join(dir, 'metadata.db'));
afterAll(() => {
  db.$client.close();
  removeDir(dir);
});

describe('verified access tokens', () => {
  it('answers a repeated token from memory until it expires, then refuses it', async () => {
    const keys = await loadOrCreateKeys(join(dir, 'key.jwk'));
    // 2 s: exp is whole seconds after the issue second, so the token is valid for 1-2 s.
    const tokens = new TokenService(keys, 'artifact-store', 'artifact-store', 2, 60);
    const { token } = await tokens.issueAccess({ sub: 'mary', access: [{ type: 'repository', name: 'acme/app', actions: ['pull'] }] });
    const first = await tokens.verifyAccess(token);
    expect(first).toMatchObject({ sub: 'mary', access: [{ name: 'acme/app', actions: ['pull'] }] });
    expect(await tokens.verifyAccess(token)).toBe(first); // remembered, not verified again
    // One changed signature character: another string, verified (and refused) on its own.
    const tampered = token.slice(0, -2) + (token.at(-2) === 'A' ? 'B' : 'A') + token.at(-1);
    expect(await tokens.verifyAccess(tampered)).toBeNull();
    await new Promise((r) => setTimeout(r, 2100));
    expect(await tokens.verifyAccess(token)).toBeNull();
    expect(await tokens.verifyAccess(token)).toBeNull();
  });

  it('does not accept a token for another audience because its text was seen by another service', async () => {
    const keys = await loadOrCreateKeys(join(dir, 'key.jwk'));
    const { token } = await new TokenService(keys, 'artifact-store', 'other', 300, 60).issueAccess({ sub: 'mary', access: [] });
    const ours = new TokenService(keys, 'artifact-store', 'artifact-store', 300, 60);
    expect(await ours.verifyAccess(token)).toBeNull();
    expect(await ours.verifyAccess(token)).toBeNull();
  });
});

describe('trust policies on the pull path', () => {
  const policies = new TrustPolicyStore(db);
  const body = (enforceOnPull: boolean) => ({ mode: 'enforce' as const, enforceOnPull, keys: [], identities: [] });

  it('serves repeated questions from memory and sees its own writes at once', () => {
    const before = policies.get('cache-a');
    expect(before).toMatchObject({ mode: 'off', version: 0 });
    expect(policies.get('cache-a')).toBe(before);
    policies.put('cache-a', body(true), 'test');
    expect(policies.get('cache-a')).toMatchObject({ mode: 'enforce', enforceOnPull: true, version: 1 });
  });

  it('keeps nothing from a write that rolled back', () => {
    policies.put('cache-b', body(false), 'test');
    expect(policies.get('cache-b')).toMatchObject({ enforceOnPull: false, version: 1 });
    expect(() =>
      db.transaction(() => {
        policies.put('cache-b', body(true), 'test');
        expect(policies.get('cache-b')).toMatchObject({ enforceOnPull: true, version: 2 });
        throw new Error('roll back');
      }),
    ).toThrow('roll back');
    expect(policies.get('cache-b')).toMatchObject({ enforceOnPull: false, version: 1 });
  });

  it('sees a policy another connection wrote within a second', async () => {
    expect(policies.get('cache-c')).toMatchObject({ mode: 'off', version: 0 });
    const other = openDatabase(join(dir, 'metadata.db'));
    try {
      new TrustPolicyStore(other).put('cache-c', body(true), 'other process');
    } finally {
      other.$client.close();
    }
    await new Promise((r) => setTimeout(r, 1100));
    expect(policies.get('cache-c')).toMatchObject({ mode: 'enforce', enforceOnPull: true, version: 1 });
  });
});
