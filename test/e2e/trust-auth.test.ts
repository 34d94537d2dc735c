/**
 * Who may set trust policy, revoke keys and read trust explanations, with auth enabled: every
 * endpoint asks the capability evaluator (namespace.manage / repository pull), and refusals are
 * 401 or 403 with the exact code. Enforcement applies to authorised pullers too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, signDigestBundle } from '../helpers/cosign.js';
import { expectError, pushImage } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
const creds: Record<string, string> = {};
const key = generateKey('p256');
let signed: { digest: string; bytes: Buffer };

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (ids, s) => {
    await s.user('root', true);
    const owner = await s.user('olive');
    await s.user('rita');
    await s.user('oscar');
    s.org('acme', owner);
    s.member('acme', 'rita', 'reader');
    for (const u of ['root', 'olive', 'rita', 'oscar']) creds[u] = basic(u, PASSWORD);
    creds.oliveKey = basic('olive', s.key(ids.principalByName('olive')!.id, ['publish']).token);
  });
  const h = { Authorization: creds.olive! };
  signed = await pushImage(reg.url, 'acme/app', 'signed', {}, h);
  await pushImage(reg.url, 'acme/app', 'unsigned', {}, h);
  await signDigestBundle(reg.url, 'acme/app', { digest: signed.digest, size: signed.bytes.length }, key, { headers: h });
});
afterAll(async () => {
  await reg.stop();
});

const policy = JSON.stringify({ mode: 'enforce', enforceOnPull: true, keys: [{ id: 'release', publicKey: key.publicKeyPem }, { id: 'spare', publicKey: generateKey('ed25519').publicKeyPem }] });
const put = (who: string | undefined, ns = 'acme') =>
  fetch(`${reg.url}/api/v1/namespaces/${ns}/trust`, { method: 'PUT', body: policy, headers: { 'Content-Type': 'application/json', ...(who ? { Authorization: creds[who]! } : {}) } });
const explain = (who: string | undefined) => fetch(`${reg.url}/api/v1/trust?repository=acme/app&digest=${signed.digest}`, { headers: who ? { Authorization: creds[who]! } : {} });

describe('trust policy permissions', () => {
  it('only namespace managers set the policy', async () => {
    await expectError(await put(undefined), 401, 'UNAUTHORIZED');
    await expectError(await put('rita'), 403, 'DENIED'); // reader
    await expectError(await put('oscar'), 403, 'DENIED'); // outsider
    await expectError(await put('oliveKey'), 403, 'DENIED'); // the owner's narrow API key
    const res = await put('olive');
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { version: number }).version).toBe(1);
    expect((await put('root')).status).toBe(200); // administrators manage every namespace
    expect((await put('oscar', 'oscar')).status).toBe(200); // a user's own namespace
    await expectError(await fetch(`${reg.url}/api/v1/namespaces/acme/trust`, { headers: { Authorization: creds.rita! } }), 403, 'DENIED');
  });

  it('only namespace managers revoke a key', async () => {
    const revoke = (who: string | undefined) => fetch(`${reg.url}/api/v1/namespaces/acme/trust/keys/spare`, { method: 'DELETE', headers: who ? { Authorization: creds[who]! } : {} });
    await expectError(await revoke(undefined), 401, 'UNAUTHORIZED');
    await expectError(await revoke('rita'), 403, 'DENIED');
    await expectError(await revoke('oscar'), 403, 'DENIED');
    expect((await revoke('olive')).status).toBe(200);
  });

  it('reading a trust explanation needs pull on the repository', async () => {
    await expectError(await explain(undefined), 401, 'UNAUTHORIZED');
    await expectError(await explain('oscar'), 403, 'DENIED');
    const res = await explain('rita');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ trusted: true, decision: 'trusted', policy: { namespace: 'acme', mode: 'enforce' }, signatures: [{ kind: 'sigstore-bundle', verified: true, keyId: 'release' }] });
  });

  it('enforcement refuses untrusted content to authorised pullers, naming the policy', async () => {
    expect((await fetch(`${reg.url}/v2/acme/app/manifests/signed`, { headers: { Authorization: creds.rita! } })).status).toBe(200);
    const res = await fetch(`${reg.url}/v2/acme/app/manifests/unsigned`, { headers: { Authorization: creds.rita! } });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.message).toMatch(/unsigned; pull refused by the trust policy of namespace acme \(version \d+, mode enforce, enforceOnPull\)/);
  });
});
