/**
 * Signatures and trust over real HTTP (PRODUCT.md §6, §11 "Trust"): each cosign shape pushed
 * as cosign writes it and verified against the namespace policy; bad signatures explained;
 * revocation quarantines; enforceOnPull refuses untrusted manifests while signatures stay
 * readable; keyless through a test-made CA and trusted root. Vectors come from helpers/cosign.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestDigestLegacyTag, generateKey, legacyTag, makeTestSigstore, signDigestBundle, signDigestLegacyTag, signDigestReferrer, type TestKey } from '../helpers/cosign.js';
import { expectError, pushBlob, pushImage, sha256 } from '../helpers/http.js';
import { writeLayout } from '../helpers/oci-layout.js';
import { removeDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { hasBinary } from '../helpers/clients.js';

let reg: TestRegistry;
const work = mkdtempSync(join(tmpdir(), 'as-trust-'));
const sigstore = makeTestSigstore();
const rootPath = join(work, 'trusted_root.json');
const k1 = generateKey('p256');
const k2 = generateKey('rsa');
const stranger = generateKey('p256');

beforeAll(async () => {
  writeFileSync(rootPath, JSON.stringify(sigstore.trustedRoot));
  reg = await startTestRegistry({ trustedRootPath: rootPath });
});
afterAll(async () => {
  await reg.stop();
  removeDir(work);
});

interface Report {
  kind: string;
  digest: string;
  verified: boolean;
  keyId?: string;
  identity?: { issuer: string; subject: string };
  predicateType?: string;
  reason: string;
}
interface Explanation {
  repository: string;
  digest: string;
  trusted: boolean;
  decision: string;
  policy: { namespace: string; mode: string; version: number };
  signatures: Report[];
  attestations: Report[];
  quarantined: boolean;
  truncated: boolean;
  inheritedFrom?: string;
}

async function putPolicy(ns: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${reg.url}/api/v1/namespaces/${ns}/trust`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}
async function setPolicy(ns: string, body: Record<string, unknown>): Promise<{ version: number }> {
  const res = await putPolicy(ns, body);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as { version: number };
}
async function explain(repo: string, digest: string): Promise<Explanation> {
  const res = await fetch(`${reg.url}/api/v1/trust?repository=${repo}&digest=${digest}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as Explanation;
}
const subjectOf = (img: { digest: string; bytes: Buffer }) => ({ digest: img.digest, size: img.bytes.length });
const keys = (...ks: [string, TestKey][]) => ks.map(([id, k]) => ({ id, publicKey: k.publicKeyPem }));

describe('policy API', () => {
  it('versions each change and refuses bad keys, patterns and roots with 400 INVALID_PAYLOAD', async () => {
    const a = await setPolicy('pol', { mode: 'warn', keys: keys(['k1', k1]) });
    const b = await setPolicy('pol', { mode: 'enforce', keys: keys(['k1', k1], ['k2', k2]), enforceOnPull: false });
    expect(b.version).toBe(a.version + 1);
    await expectError(await putPolicy('pol', { mode: 'warn', keys: [{ id: 'x', publicKey: 'not a pem' }] }), 400, 'INVALID_PAYLOAD');
    await expectError(await putPolicy('pol', { mode: 'warn', keys: [{ id: 'x', publicKey: `-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n` }] }), 400, 'INVALID_PAYLOAD');
    const { generateKeyPairSync } = await import('node:crypto');
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await expectError(await putPolicy('pol', { mode: 'warn', keys: [{ id: 'weak', publicKey: weak }] }), 400, 'INVALID_PAYLOAD');
    await expectError(await putPolicy('pol', { mode: 'sometimes' }), 400, 'INVALID_PAYLOAD');
    await expectError(await putPolicy('pol', { mode: 'warn', identities: [{ issuer: 'https://i', subjectPattern: '*'.repeat(300) }] }), 400, 'INVALID_PAYLOAD');
    await expectError(await putPolicy('pol', { mode: 'warn', identities: [{ issuer: 'https://i' }] }), 400, 'INVALID_PAYLOAD');
    await expectError(await putPolicy('pol', { mode: 'warn', trustedRoot: { certificateAuthorities: 'nope' } }), 400, 'INVALID_PAYLOAD');
    const raw = await fetch(`${reg.url}/api/v1/namespaces/pol/trust`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{not json' });
    await expectError(raw, 400, 'INVALID_PAYLOAD');
    // Nothing half-written: the version is where the last good PUT left it.
    const now = (await (await fetch(`${reg.url}/api/v1/namespaces/pol/trust`)).json()) as { version: number; mode: string };
    expect(now).toMatchObject({ version: b.version, mode: 'enforce' });
    const events = (await (await fetch(`${reg.url}/api/v1/events?limit=1000`)).json()) as { events: { action: string; repository: string }[] };
    expect(events.events.filter((e) => e.action === 'trust.policy.set' && e.repository === 'pol')).toHaveLength(2);
  });
});

describe('policy writes in parallel', () => {
  it('20 concurrent PUTs get 20 distinct versions; one of 10 concurrent revocations wins', async () => {
    const base = (await setPolicy('race', { mode: 'warn', keys: keys(['k1', k1]) })).version;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => setPolicy('race', { mode: i % 2 ? 'warn' : 'enforce', keys: keys(['k1', k1], ['k2', k2]) })));
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => base + 1 + i));
    const revokes = await Promise.all(Array.from({ length: 10 }, () => fetch(`${reg.url}/api/v1/namespaces/race/trust/keys/k2`, { method: 'DELETE' })));
    expect(revokes.map((r) => r.status).sort()).toEqual([200, ...Array.from({ length: 9 }, () => 404)]);
    const final = (await (await fetch(`${reg.url}/api/v1/namespaces/race/trust`)).json()) as { version: number; revokedKeys: unknown[] };
    expect(final).toMatchObject({ version: base + 21, revokedKeys: [expect.objectContaining({ id: 'k2' })] });
  });
});

describe('the four cosign shapes, key-based', () => {
  it('verifies a legacy .sig tag, an OCI 1.1 referrer, a sigstore bundle and a legacy .att', async () => {
    await setPolicy('shapes', { mode: 'warn', keys: keys(['k1', k1], ['k2', k2]) });
    const sigTag = await pushImage(reg.url, 'shapes/app', 'tag');
    const sigTagDigest = await signDigestLegacyTag(reg.url, 'shapes/app', subjectOf(sigTag), k1);
    const e1 = await explain('shapes/app', sigTag.digest);
    expect(e1).toMatchObject({ repository: 'shapes/app', digest: sigTag.digest, trusted: true, decision: 'trusted', policy: { namespace: 'shapes', mode: 'warn' } });
    expect(e1.signatures).toEqual([expect.objectContaining({ kind: 'legacy-sig-tag', digest: sigTagDigest, verified: true, keyId: 'k1', reason: 'verified with key k1' })]);

    const ref = await pushImage(reg.url, 'shapes/app', 'ref');
    const refDigest = await signDigestReferrer(reg.url, 'shapes/app', subjectOf(ref), k2);
    const e2 = await explain('shapes/app', ref.digest);
    expect(e2.signatures).toEqual([expect.objectContaining({ kind: 'oci-referrer', digest: refDigest, verified: true, keyId: 'k2' })]);
    expect(e2.decision).toBe('trusted');

    const bun = await pushImage(reg.url, 'shapes/app', 'bundle');
    const bunDigest = await signDigestBundle(reg.url, 'shapes/app', subjectOf(bun), k1);
    const provDigest = await signDigestBundle(reg.url, 'shapes/app', subjectOf(bun), k1, { predicateType: 'https://slsa.dev/provenance/v1' });
    const e3 = await explain('shapes/app', bun.digest);
    expect(e3.signatures).toEqual([expect.objectContaining({ kind: 'sigstore-bundle', digest: bunDigest, verified: true, keyId: 'k1', predicateType: 'https://sigstore.dev/cosign/sign/v1' })]);
    expect(e3.attestations).toEqual([expect.objectContaining({ kind: 'sigstore-bundle', digest: provDigest, verified: true, predicateType: 'https://slsa.dev/provenance/v1' })]);

    const att = await pushImage(reg.url, 'shapes/app', 'att');
    const attDigest = await attestDigestLegacyTag(reg.url, 'shapes/app', subjectOf(att), k2, 'https://spdx.dev/Document');
    const e4 = await explain('shapes/app', att.digest);
    // An attestation is reported but does not sign the image.
    expect(e4).toMatchObject({ decision: 'unsigned', trusted: false, signatures: [] });
    expect(e4.attestations).toEqual([expect.objectContaining({ kind: 'legacy-att-tag', digest: attDigest, verified: true, keyId: 'k2', predicateType: 'https://spdx.dev/Document' })]);
  });

  it('explains a wrong key, a tampered payload, a payload for another digest and a malformed bundle', async () => {
    await setPolicy('bad', { mode: 'warn', keys: keys(['k1', k1]) });
    const img = await pushImage(reg.url, 'bad/app', 'v1');
    const other = await pushImage(reg.url, 'bad/app', 'v2');
    await signDigestLegacyTag(reg.url, 'bad/app', subjectOf(img), stranger);
    await signDigestLegacyTag(reg.url, 'bad/app', subjectOf(img), k1, { tamper: true });
    await signDigestReferrer(reg.url, 'bad/app', subjectOf(img), k1, { claimDigest: other.digest });
    await signDigestBundle(reg.url, 'bad/app', subjectOf(img), k1, { claimDigest: other.digest });
    await signDigestBundle(reg.url, 'bad/app', subjectOf(img), k1, { tamper: true });
    await signDigestBundle(reg.url, 'bad/app', subjectOf(img), stranger);
    await signDigestBundle(reg.url, 'bad/app', subjectOf(img), k1, { rawBundle: Buffer.from('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":42}') });
    await signDigestBundle(reg.url, 'bad/app', subjectOf(img), k1, { rawBundle: Buffer.from('not json at all') });
    const e = await explain('bad/app', img.digest);
    expect(e).toMatchObject({ trusted: false, decision: 'untrusted', quarantined: false });
    expect(e.signatures.every((s) => !s.verified && s.reason.length > 0)).toBe(true);
    const reasons = e.signatures.map((s) => `${s.kind}: ${s.reason}`);
    expect(reasons.filter((r) => r.startsWith('legacy-sig-tag: bad signature or unknown key'))).toHaveLength(2); // stranger's key, tampered payload
    expect(reasons).toContainEqual(expect.stringMatching(/^oci-referrer: digest mismatch: the payload names sha256:/));
    expect(reasons).toContainEqual(expect.stringMatching(/^sigstore-bundle: digest mismatch: the statement's subjects do not include/));
    expect(reasons).toContainEqual('sigstore-bundle: bad signature: it does not verify with key k1, which its hint names');
    expect(reasons).toContainEqual(expect.stringMatching(/^sigstore-bundle: unknown key: no key of the policy has the hint /));
    expect(reasons).toContainEqual(expect.stringMatching(/^sigstore-bundle: the bundle does not parse/));
    expect(reasons).toContainEqual('sigstore-bundle: the bundle is not JSON');
    // The image the payload named is not signed by that signature either (it is attached elsewhere).
    expect((await explain('bad/app', other.digest)).decision).toBe('unsigned');
  });

  it('caps the work for an image with very many signatures and says so', async () => {
    await setPolicy('many', { mode: 'warn', keys: keys(['k1', k1]) });
    const img = await pushImage(reg.url, 'many/app', 'v1');
    // One .sig manifest with 200 layers (cosign dedupes identical payload blobs).
    const first = await signDigestLegacyTag(reg.url, 'many/app', subjectOf(img), stranger);
    const m = (await (await fetch(`${reg.url}/v2/many/app/manifests/${first}`)).json()) as { layers: unknown[]; config: unknown };
    const big = { ...m, layers: Array.from({ length: 200 }, () => m.layers[0]) };
    expect((await fetch(`${reg.url}/v2/many/app/manifests/${legacyTag(img.digest, 'sig')}`, { method: 'PUT', body: JSON.stringify(big), headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
    const t0 = Date.now();
    const e = await explain('many/app', img.digest);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(e.truncated).toBe(true);
    expect(e.signatures).toHaveLength(128);
    expect(e.decision).toBe('untrusted');
  });
});

describe('revocation and enforcement', () => {
  it('revoking a key quarantines what only it signed, at once; pulls under enforceOnPull follow', async () => {
    const v0 = await setPolicy('rev', { mode: 'enforce', enforceOnPull: true, keys: keys(['k1', k1], ['k2', k2]) });
    const onlyK1 = await pushImage(reg.url, 'rev/app', 'only-k1');
    const both = await pushImage(reg.url, 'rev/app', 'both');
    const unsigned = await pushImage(reg.url, 'rev/app', 'unsigned');
    const sigDigest = await signDigestLegacyTag(reg.url, 'rev/app', subjectOf(onlyK1), k1);
    await signDigestLegacyTag(reg.url, 'rev/app', subjectOf(both), k1);
    const bundleDigest = await signDigestBundle(reg.url, 'rev/app', subjectOf(both), k2);

    // Trusted content pulls by tag and digest (GET and HEAD); unsigned is refused naming the policy.
    for (const ref of ['only-k1', onlyK1.digest, 'both']) {
      expect((await fetch(`${reg.url}/v2/rev/app/manifests/${ref}`)).status).toBe(200);
      expect((await fetch(`${reg.url}/v2/rev/app/manifests/${ref}`, { method: 'HEAD' })).status).toBe(200);
    }
    const refused = await fetch(`${reg.url}/v2/rev/app/manifests/unsigned`);
    const body = (await refused.json()) as { errors: { code: string; message: string; detail: { decision: string } }[] };
    expect(refused.status).toBe(403);
    expect(body.errors[0]).toMatchObject({ code: 'DENIED', detail: { decision: 'unsigned' } });
    expect(body.errors[0]!.message).toContain('trust policy of namespace rev');
    expect((await fetch(`${reg.url}/v2/rev/app/manifests/${unsigned.digest}`, { method: 'HEAD' })).status).toBe(403);

    const del = await fetch(`${reg.url}/api/v1/namespaces/rev/trust/keys/k1?reason=leaked`, { method: 'DELETE' });
    const after = (await del.json()) as { version: number; keys: { id: string }[]; revokedKeys: { id: string }[] };
    expect(del.status).toBe(200);
    expect(after.version).toBe(v0.version + 1);
    expect(after.revokedKeys.map((k) => k.id)).toEqual(['k1']);
    await expectError(await fetch(`${reg.url}/api/v1/namespaces/rev/trust/keys/k1`, { method: 'DELETE' }), 404, 'NOT_FOUND');

    const e = await explain('rev/app', onlyK1.digest);
    expect(e).toMatchObject({ trusted: false, decision: 'untrusted', quarantined: true, policy: { version: after.version } });
    expect(e.signatures).toEqual([expect.objectContaining({ verified: false, keyId: 'k1', reason: 'signed by revoked key k1' })]);
    expect((await explain('rev/app', both.digest)).trusted).toBe(true); // k2 still vouches
    const q = await fetch(`${reg.url}/v2/rev/app/manifests/only-k1`);
    expect(q.status).toBe(403);
    expect(((await q.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('quarantined');
    expect((await fetch(`${reg.url}/v2/rev/app/manifests/both`)).status).toBe(200);

    // Signatures stay readable: the .sig tag, its manifest by digest, the bundle referrer, the referrers list.
    expect((await fetch(`${reg.url}/v2/rev/app/manifests/${legacyTag(onlyK1.digest, 'sig')}`)).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/rev/app/manifests/${sigDigest}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/rev/app/manifests/${bundleDigest}`)).status).toBe(200);
    const referrers = (await (await fetch(`${reg.url}/v2/rev/app/referrers/${both.digest}`)).json()) as { manifests: { digest: string }[] };
    expect(referrers.manifests.map((m) => m.digest)).toContain(bundleDigest);

    const events = (await (await fetch(`${reg.url}/api/v1/events?limit=1000`)).json()) as { events: { action: string; repository: string; reason: string | null }[] };
    expect(events.events.filter((ev) => ev.action === 'trust.key.revoke' && ev.repository === 'rev')).toEqual([expect.objectContaining({ reason: 'leaked' })]);
  });

  it('a new signature is seen at once (cached verdicts are invalidated by pushes)', async () => {
    await setPolicy('fresh', { mode: 'enforce', enforceOnPull: true, keys: keys(['k1', k1]) });
    const img = await pushImage(reg.url, 'fresh/app', 'v1');
    expect((await fetch(`${reg.url}/v2/fresh/app/manifests/v1`)).status).toBe(403);
    await signDigestBundle(reg.url, 'fresh/app', subjectOf(img), k1);
    expect((await fetch(`${reg.url}/v2/fresh/app/manifests/v1`)).status).toBe(200);
    await setPolicy('fresh', { mode: 'enforce', enforceOnPull: true, keys: keys(['k2', k2]) });
    expect((await fetch(`${reg.url}/v2/fresh/app/manifests/v1`)).status).toBe(403);
    await setPolicy('fresh', { mode: 'enforce', enforceOnPull: false, keys: keys(['k2', k2]) });
    expect((await fetch(`${reg.url}/v2/fresh/app/manifests/v1`)).status).toBe(200);
  });

  it('a signed index vouches for the manifests it lists', async () => {
    await setPolicy('idx', { mode: 'enforce', enforceOnPull: true, keys: keys(['k1', k1]) });
    const child = await pushImage(reg.url, 'idx/app', 'child');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: child.digest, size: child.bytes.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
    expect((await fetch(`${reg.url}/v2/idx/app/manifests/multi`, { method: 'PUT', body: index, headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' } })).status).toBe(201);
    expect((await fetch(`${reg.url}/v2/idx/app/manifests/${child.digest}`)).status).toBe(403);
    await signDigestLegacyTag(reg.url, 'idx/app', { digest: sha256(index), size: index.length, mediaType: 'application/vnd.oci.image.index.v1+json' }, k1);
    expect((await fetch(`${reg.url}/v2/idx/app/manifests/multi`)).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/idx/app/manifests/${child.digest}`)).status).toBe(200);
    expect((await explain('idx/app', child.digest)).inheritedFrom).toBe(sha256(index));
  });

  it('a referrer or self-declared signature that carries image layers is judged like any image', async () => {
    await setPolicy('smuggle', { mode: 'enforce', enforceOnPull: true, keys: keys(['k1', k1]) });
    const signed = await pushImage(reg.url, 'smuggle/app', 'signed');
    await signDigestBundle(reg.url, 'smuggle/app', subjectOf(signed), k1);
    // Pushers choose subject, artifactType and media types: neither makes unsigned layers pullable.
    const withSubject = await pushImage(reg.url, 'smuggle/app', 'with-subject', { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subjectOf(signed) } });
    const calledSig = await pushImage(reg.url, 'smuggle/app', 'called-sig', { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' });
    // Not only images: any layer that is not a document (here a Flux artifact) needs a signature.
    const fluxBlob = Buffer.from('not really a tarball');
    const fluxLayer = await pushBlob(reg.url, 'smuggle/app', fluxBlob);
    const fluxConfig = await pushBlob(reg.url, 'smuggle/app', Buffer.from('{}'));
    const fluxBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.cncf.flux.config.v1+json', digest: fluxConfig, size: 2 },
      layers: [{ mediaType: 'application/vnd.cncf.flux.content.v1.tar+gzip', digest: fluxLayer, size: fluxBlob.length }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subjectOf(signed) },
    }));
    expect((await fetch(`${reg.url}/v2/smuggle/app/manifests/flux`, { method: 'PUT', body: fluxBytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
    const flux = { digest: sha256(fluxBytes) };
    for (const img of [withSubject, calledSig, flux]) {
      const res = await fetch(`${reg.url}/v2/smuggle/app/manifests/${img.digest}`);
      expect(res.status, img.digest).toBe(403);
      expect(((await res.json()) as { errors: { detail: { decision: string } }[] }).errors[0]!.detail.decision).toBe('unsigned');
    }
    // A real referrer without deployable layers (an SBOM) stays readable, and so does the signature.
    const sbomBlob = Buffer.from('{"spdxVersion":"SPDX-2.3"}');
    const sbomLayer = await pushBlob(reg.url, 'smuggle/app', sbomBlob);
    const emptyConfig = await pushBlob(reg.url, 'smuggle/app', Buffer.from('{}'));
    const sbom = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig, size: 2 },
      layers: [{ mediaType: 'application/spdx+json', digest: sbomLayer, size: sbomBlob.length }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subjectOf(signed) },
    }));
    expect((await fetch(`${reg.url}/v2/smuggle/app/manifests/${sha256(sbom)}`, { method: 'PUT', body: sbom, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
    expect((await fetch(`${reg.url}/v2/smuggle/app/manifests/${sha256(sbom)}`)).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/smuggle/app/manifests/signed`)).status).toBe(200);
  });
});

describe('keyless', () => {
  it('verifies a keyless .sig against the trusted root and the policy identities', async () => {
    const signer = sigstore.identity({ subject: 'ci@example.com', issuer: 'https://issuer.example' });
    const img = await pushImage(reg.url, 'kl/app', 'v1');
    await signDigestLegacyTag(reg.url, 'kl/app', subjectOf(img), k1, { keyless: signer });
    await setPolicy('kl', { mode: 'enforce', identities: [{ issuer: 'https://issuer.example', subject: 'other@example.com' }] });
    const no = await explain('kl/app', img.digest);
    expect(no.signatures[0]).toMatchObject({ verified: false, reason: 'certificate identity ci@example.com from https://issuer.example is not trusted by the policy' });
    await setPolicy('kl', { mode: 'enforce', identities: [{ issuer: 'https://issuer.example', subjectPattern: '*@example.com' }] });
    const yes = await explain('kl/app', img.digest);
    expect(yes).toMatchObject({ trusted: true, decision: 'trusted' });
    expect(yes.signatures[0]).toMatchObject({ verified: true, identity: { subject: 'ci@example.com', issuer: 'https://issuer.example' } });

    // cosign 3's default keyless form: a sigstore bundle referrer with the leaf certificate.
    const b3 = await pushImage(reg.url, 'kl/app', 'v3');
    const bundleDigest = await signDigestBundle(reg.url, 'kl/app', subjectOf(b3), k1, { keyless: signer });
    const eb = await explain('kl/app', b3.digest);
    expect(eb).toMatchObject({ trusted: true, signatures: [{ kind: 'sigstore-bundle', digest: bundleDigest, verified: true, identity: { subject: 'ci@example.com', issuer: 'https://issuer.example' } }] });

    const expired = sigstore.identity({ subject: 'ci@example.com', issuer: 'https://issuer.example', notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    const old = await pushImage(reg.url, 'kl/app', 'v2');
    await signDigestLegacyTag(reg.url, 'kl/app', subjectOf(old), k1, { keyless: expired });
    const e = await explain('kl/app', old.digest);
    expect(e.decision).toBe('untrusted');
    expect(e.signatures[0]!.reason).toMatch(/^certificate rejected \(CERTIFICATE_ERROR\)/);
  });
});

describe('a registry-wide trusted root that does not parse', () => {
  it('makes keyless signatures unverified with that reason, never a 500; keys still work', async () => {
    const badRoot = join(work, 'bad_root.json');
    writeFileSync(badRoot, '{"certificateAuthorities": [{"certChain": 42}]');
    const other = await startTestRegistry({ trustedRootPath: badRoot });
    try {
      const img = await pushImage(other.url, 'br/app', 'v1');
      await signDigestLegacyTag(other.url, 'br/app', subjectOf(img), k1, { keyless: sigstore.identity({ subject: 'ci@example.com', issuer: 'https://issuer.example' }) });
      await signDigestBundle(other.url, 'br/app', subjectOf(img), k1);
      const put = await fetch(`${other.url}/api/v1/namespaces/br/trust`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ mode: 'warn', keys: keys(['k1', k1]), identities: [{ issuer: 'https://issuer.example', subject: 'ci@example.com' }] }) });
      expect(put.status).toBe(200);
      const res = await fetch(`${other.url}/api/v1/trust?repository=br/app&digest=${img.digest}`);
      expect(res.status).toBe(200);
      const e = (await res.json()) as Explanation;
      expect(e.signatures).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ kind: 'legacy-sig-tag', verified: false, reason: expect.stringContaining('the trusted root at trustedRootPath does not parse') }),
          expect.objectContaining({ kind: 'sigstore-bundle', verified: true, keyId: 'k1' }),
        ]),
      );
    } finally {
      await other.stop();
    }
  });
});

describe('bad queries', () => {
  it('400 for a bad repository or digest, 404 for an unknown manifest', async () => {
    await expectError(await fetch(`${reg.url}/api/v1/trust?repository=Bad..Name&digest=sha256:${'a'.repeat(64)}`), 400, 'INVALID_PAYLOAD');
    await expectError(await fetch(`${reg.url}/api/v1/trust?repository=x/y&digest=sha256:zz`), 400, 'INVALID_PAYLOAD');
    await expectError(await fetch(`${reg.url}/api/v1/trust?repository=x/y&digest=sha256:${'a'.repeat(64)}`), 404, 'MANIFEST_UNKNOWN');
    await expectError(await putPolicy('Not_A_Namespace', { mode: 'off' }), 400, 'NAME_INVALID');
    const blob = await pushBlob(reg.url, 'x/y', Buffer.from('x'));
    expect(blob).toBe(sha256('x'));
  });
});

const hasSkopeo = (): boolean => hasBinary('skopeo');

describe('real client', () => {
  it.runIf(process.env.CI || hasSkopeo())('skopeo pulls a signed image under enforceOnPull and is refused an unsigned one', async () => {
    const skopeo = async (...args: string[]) => (await promisify(execFile)('skopeo', args, { timeout: 60_000 })).stdout;
    const host = reg.url.replace('http://', '');
    const { top } = writeLayout(join(work, 'img'), 'v1', [{ os: 'linux', architecture: 'amd64' }]);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${join(work, 'img')}:v1`, `docker://${host}/sk/app:signed`);
    const { top: other } = writeLayout(join(work, 'img2'), 'v1', [{ os: 'linux', architecture: 'arm64' }]);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${join(work, 'img2')}:v1`, `docker://${host}/sk/app:unsigned`);
    await signDigestBundle(reg.url, 'sk/app', { digest: top.digest, size: top.size }, k1);
    await setPolicy('sk', { mode: 'enforce', enforceOnPull: true, keys: keys(['k1', k1]) });
    await skopeo('copy', '--src-tls-verify=false', `docker://${host}/sk/app:signed`, `oci:${join(work, 'back')}:v1`);
    await expect(skopeo('copy', '--src-tls-verify=false', `docker://${host}/sk/app:unsigned`, `oci:${join(work, 'back2')}:v1`)).rejects.toThrow(/denied|DENIED|403/);
    expect(other.digest).not.toBe(top.digest);
  });
});
