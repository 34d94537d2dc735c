/** verifyLayer over self-made vectors of every shape: what verifies, and the reason when not. */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { DSSEBundleBuilder } from '@sigstore/sign';
import { bundleToJSON } from '@sigstore/bundle';
import { createPublicKey } from 'node:crypto';
import { generateKey, inTotoStatement, makeTestSigstore, rawSign, simpleSigningPayload, type TestKey } from '../helpers/cosign.js';
import { verifyLayer, type TrustMaterial } from '../../src/trust/verify.js';
import { parsePublicKey } from '../../src/trust/policy.js';

const digest = `sha256:${createHash('sha256').update('image').digest('hex')}`;
const other = `sha256:${createHash('sha256').update('other').digest('hex')}`;

function material(keys: TestKey[], extra: Partial<TrustMaterial> = {}): TrustMaterial {
  return { keys: keys.map((k, i) => ({ id: `k${i}`, key: parsePublicKey(k.publicKeyPem) })), revokedKeys: [], identities: [], trustedRoot: { error: 'no trusted root is configured' }, ...extra };
}

function legacyLayer(key: TestKey, claim = digest) {
  const payload = simpleSigningPayload(claim);
  return { payload, annotations: { 'dev.cosignproject.cosign/signature': rawSign(key, payload).toString('base64') } };
}

const pae = (type: string, body: Buffer) => Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${body.length} `), body]);
function envelope(key: TestKey, predicateType: string, claim = digest): Buffer {
  const st = inTotoStatement(claim, predicateType);
  const type = 'application/vnd.in-toto+json';
  return Buffer.from(JSON.stringify({ payloadType: type, payload: st.toString('base64'), signatures: [{ keyid: '', sig: rawSign(key, pae(type, st)).toString('base64') }] }));
}

async function bundle(key: TestKey, predicateType = 'https://sigstore.dev/cosign/sign/v1', claim = digest): Promise<Buffer> {
  const hint = createHash('sha256').update(createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' })).digest('base64');
  const b = await new DSSEBundleBuilder({ signer: { sign: async (d: Buffer) => ({ signature: rawSign(key, d), key: { $case: 'publicKey' as const, publicKey: key.publicKeyPem, hint } }) }, witnesses: [] }).create({ data: inTotoStatement(claim, predicateType), type: 'application/vnd.in-toto+json' });
  return Buffer.from(JSON.stringify(bundleToJSON(b)));
}

describe('simple-signing layers (legacy .sig and OCI 1.1 referrers)', () => {
  for (const type of ['p256', 'p384', 'rsa', 'ed25519'] as const) {
    it(`verifies a ${type} signature and names the key`, () => {
      const key = generateKey(type);
      const l = legacyLayer(key);
      const r = verifyLayer('simplesigning', l.payload, l.annotations, digest, material([generateKey('p256'), key]), 'signature');
      expect(r).toMatchObject({ category: 'signature', verified: true, keyId: 'k1', reason: 'verified with key k1' });
    });
  }
  it('refuses another key, a tampered payload, another digest, a revoked key, non-base64', () => {
    const key = generateKey();
    const l = legacyLayer(key);
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, material([generateKey()]), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('no key of the policy verifies it') });
    const tampered = Buffer.from(l.payload.toString().replace('null', '{"x":"y"}'));
    expect(verifyLayer('simplesigning', tampered, l.annotations, digest, material([key]), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('bad signature') });
    const forOther = legacyLayer(key, other);
    expect(verifyLayer('simplesigning', forOther.payload, forOther.annotations, digest, material([key]), 'signature')).toMatchObject({ verified: false, keyId: 'k0', reason: expect.stringContaining('digest mismatch') });
    const revoked = material([], { revokedKeys: [{ id: 'old', key: parsePublicKey(key.publicKeyPem) }] });
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, revoked, 'signature')).toMatchObject({ verified: false, keyId: 'old', reason: 'signed by revoked key old' });
    expect(verifyLayer('simplesigning', l.payload, { 'dev.cosignproject.cosign/signature': 'not base64!' }, digest, material([key]), 'signature')).toMatchObject({ verified: false, reason: 'the signature annotation is not base64' });
    expect(verifyLayer('simplesigning', Buffer.from('not json'), legacyLayer(key).annotations, digest, material([key]), 'signature').verified).toBe(false);
  });
});

describe('DSSE layers (legacy .att) and sigstore bundles', () => {
  for (const type of ['p256', 'p384', 'rsa', 'ed25519'] as const) {
    it(`verifies a ${type} .att envelope as an attestation and a ${type} bundle as a signature`, async () => {
      const key = generateKey(type);
      const att = verifyLayer('dsse', envelope(key, 'https://slsa.dev/provenance/v1'), {}, digest, material([key]), 'attestation');
      expect(att).toMatchObject({ category: 'attestation', verified: true, keyId: 'k0', predicateType: 'https://slsa.dev/provenance/v1' });
      const sig = verifyLayer('bundle', await bundle(key), {}, digest, material([key]), 'signature');
      expect(sig).toMatchObject({ category: 'signature', verified: true, keyId: 'k0' });
    });
  }
  it('refuses a bundle for another digest, with another key, malformed, or not JSON', async () => {
    const key = generateKey();
    expect(verifyLayer('bundle', await bundle(key, undefined, other), {}, digest, material([key]), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('digest mismatch') });
    expect(verifyLayer('bundle', await bundle(key), {}, digest, material([generateKey()]), 'signature')).toMatchObject({ verified: false });
    expect(verifyLayer('bundle', Buffer.from('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'), {}, digest, material([key]), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('the bundle does not parse') });
    expect(verifyLayer('bundle', Buffer.from('<xml/>'), {}, digest, material([key]), 'signature')).toMatchObject({ verified: false, reason: 'the bundle is not JSON' });
  });
});

describe('keyless (throw-away CA, log and trusted root)', () => {
  const sigstore = makeTestSigstore();
  const root = TrustedRoot.fromJSON(sigstore.trustedRoot);
  const keylessMaterial = (identities: TrustMaterial['identities']) => material([], { identities, trustedRoot: root });
  function keylessLayer(signer: ReturnType<typeof sigstore.identity>) {
    const payload = simpleSigningPayload(digest);
    const signature = rawSign(signer.privateKey, payload);
    return { payload, annotations: { 'dev.cosignproject.cosign/signature': signature.toString('base64'), ...signer.annotations(payload, signature, 'hashedrekord') } };
  }
  it('verifies an identity from the trusted root, by subject and by anchored glob', () => {
    const l = keylessLayer(sigstore.identity({ subject: 'dev@example.com', issuer: 'https://issuer.example' }));
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, keylessMaterial([{ issuer: 'https://issuer.example', subject: 'dev@example.com' }]), 'signature')).toMatchObject({ verified: true, identity: { subject: 'dev@example.com', issuer: 'https://issuer.example' } });
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, keylessMaterial([{ issuer: 'https://issuer.example', subjectPattern: '*@example.com' }]), 'signature').verified).toBe(true);
    // Unanchored matching would accept these; ours does not.
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, keylessMaterial([{ issuer: 'https://issuer.example', subject: 'example.com' }]), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('is not trusted by the policy') });
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, keylessMaterial([{ issuer: 'https://issuer.example', subjectPattern: 'dev@example' }]), 'signature').verified).toBe(false);
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, keylessMaterial([{ issuer: 'https://other.example', subject: 'dev@example.com' }]), 'signature').verified).toBe(false);
  });
  it('verifies a keyless sigstore bundle v0.3 (SET, inclusion proof, checkpoint); a forged log proof is refused', () => {
    const ids = [{ issuer: 'https://issuer.example', subject: 'dev@example.com' }];
    const signer = sigstore.identity({ subject: 'dev@example.com', issuer: 'https://issuer.example' });
    const b = signer.bundle(inTotoStatement(digest, 'https://sigstore.dev/cosign/sign/v1'));
    expect(verifyLayer('bundle', b, {}, digest, keylessMaterial(ids), 'signature')).toMatchObject({ category: 'signature', verified: true, identity: { subject: 'dev@example.com', issuer: 'https://issuer.example' } });
    // A checkpoint whose root was changed after the log signed it.
    const doc = JSON.parse(b.toString()) as { verificationMaterial: { tlogEntries: { inclusionProof: { checkpoint: { envelope: string } } }[] } };
    const cp = doc.verificationMaterial.tlogEntries[0]!.inclusionProof.checkpoint;
    cp.envelope = cp.envelope.replace(/^(log\.example\n1\n)[^\n]+/, `$1${Buffer.alloc(32, 7).toString('base64')}`);
    expect(verifyLayer('bundle', Buffer.from(JSON.stringify(doc)), {}, digest, keylessMaterial(ids), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('transparency proof') });
    const forOther = signer.bundle(inTotoStatement(other, 'https://sigstore.dev/cosign/sign/v1'));
    expect(verifyLayer('bundle', forOther, {}, digest, keylessMaterial(ids), 'signature')).toMatchObject({ verified: false, identity: { subject: 'dev@example.com' }, reason: expect.stringContaining('digest mismatch') });
  });
  it('refuses an expired certificate, an untrusted CA, a missing transparency proof', () => {
    const ids = [{ issuer: 'https://issuer.example', subject: 'dev@example.com' }];
    const expired = keylessLayer(sigstore.identity({ subject: 'dev@example.com', issuer: 'https://issuer.example', notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() - 1800_000) }));
    expect(verifyLayer('simplesigning', expired.payload, expired.annotations, digest, keylessMaterial(ids), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('certificate rejected') });
    const l = keylessLayer(sigstore.identity({ subject: 'dev@example.com', issuer: 'https://issuer.example' }));
    const otherRoot = TrustedRoot.fromJSON(makeTestSigstore().trustedRoot);
    expect(verifyLayer('simplesigning', l.payload, l.annotations, digest, material([], { identities: ids, trustedRoot: otherRoot }), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('certificate rejected') });
    const { ['dev.sigstore.cosign/bundle']: _drop, ...noTlog } = l.annotations;
    expect(verifyLayer('simplesigning', l.payload, noTlog, digest, keylessMaterial(ids), 'signature')).toMatchObject({ verified: false, reason: expect.stringContaining('transparency proof') });
  });
});
