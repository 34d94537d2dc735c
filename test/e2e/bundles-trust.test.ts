/**
 * Activation under the namespace trust policy (PRODUCT.md §8): with `enforce`, an unsigned
 * bundle is refused 403 UNTRUSTED with the trust explanation in `detail`; once signed with a
 * cosign-format signature by a policy key it activates. `warn` does not block.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, errorOf, passReceipt, pushBundle, pushReceipt, type Pushed } from '../helpers/bundles.js';
import { generateKey, signDigestReferrer } from '../helpers/cosign.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let url: string;
const key = generateKey('p256');

beforeAll(async () => {
  reg = await startTestRegistry();
  url = reg.url;
  expect((await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0' } })).status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

async function approvedIn(repo: string, id: string): Promise<Pushed> {
  const b = await pushBundle(url, repo, bundleConfig(id, '1.0.0'));
  await pushReceipt(url, repo, b, passReceipt());
  expect((await api(url, 'POST', '/api/v1/bundles', { repository: repo, digest: b.digest })).status).toBe(201);
  for (const to of ['CANDIDATE', 'APPROVED']) expect((await api(url, 'POST', `/api/v1/bundles/${id}/1.0.0/transitions`, { to })).status).toBe(200);
  return b;
}

const setTrust = async (ns: string, mode: string) => {
  const r = await api(url, 'PUT', `/api/v1/namespaces/${ns}/trust`, { mode, keys: [{ id: 'release', publicKey: key.publicKeyPem }], identities: [], enforceOnPull: false });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
};

describe('activation under a trust policy', () => {
  it('enforce: unsigned → 403 UNTRUSTED explaining the verdict; signed by a policy key → activates', async () => {
    const b = await approvedIn('secure/models', 'guarded');
    await setTrust('secure', 'enforce');
    const scope = { environment: 'prod', model_family: 'fraud' };
    const r = await api(url, 'POST', '/api/v1/activations', { scope, bundle_id: 'guarded', bundle_version: '1.0.0', reason: 'ship' });
    expect(r.status).toBe(403);
    const e = errorOf(r);
    expect(e.code).toBe('UNTRUSTED');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(new RegExp(`^secure/models@${b.digest} is unsigned under the enforcing trust policy of secure \\(version \\d+\\)$`));
    expect(e.detail).toMatchObject({ trusted: false, decision: 'unsigned', policy: { namespace: 'secure', mode: 'enforce' } });
    expect((await api(url, 'GET', '/api/v1/resolve?environment=prod&model_family=fraud')).status).toBe(404);

    await signDigestReferrer(url, 'secure/models', b, key);
    const ok = await api(url, 'POST', '/api/v1/activations', { scope, bundle_id: 'guarded', bundle_version: '1.0.0', reason: 'signed now' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect((await api(url, 'GET', '/api/v1/resolve?environment=prod&model_family=fraud')).body).toMatchObject({ bundle_id: 'guarded', digest: b.digest, event_seq: ok.body.event_seq });
  });

  it('enforce: a signature by a key outside the policy is untrusted; warn lets an unsigned bundle through', async () => {
    const b = await approvedIn('strict/models', 'foreign');
    await setTrust('strict', 'enforce');
    await signDigestReferrer(url, 'strict/models', b, generateKey('p256'));
    const r = await api(url, 'POST', '/api/v1/activations', { scope: { environment: 'prod', model_family: 'fraud', tenant: 'x' }, bundle_id: 'foreign', bundle_version: '1.0.0', reason: 'ship' });
    expect(r.status).toBe(403);
    expect(errorOf(r)).toMatchObject({ code: 'UNTRUSTED', detail: { trusted: false, decision: 'untrusted' } });

    await approvedIn('lax/models', 'lax');
    await setTrust('lax', 'warn');
    const w = await api(url, 'POST', '/api/v1/activations', { scope: { environment: 'dev', model_family: 'fraud' }, bundle_id: 'lax', bundle_version: '1.0.0', reason: 'try' });
    expect(w.status).toBe(200);
  });
});
