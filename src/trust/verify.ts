/**
 * Verifies one cosign/sigstore signature layer against a namespace's trust material, with
 * @sigstore/verify (research: trust-formats.md §2). Every outcome is a result with a reason:
 * malformed input, a bad signature or an untrusted certificate never throws out of here.
 *
 * - Key-based: like `cosign verify --key … --insecure-ignore-tlog`: stored tlog entries and
 *   timestamps are stripped, any key of the policy may have signed (hints only sharpen the
 *   reason: "unknown key" vs "bad signature").
 * - Keyless: the certificate must chain to the trusted root at the transparency-log time, the
 *   log entry must verify, and the SAN + issuer must match an identity of the policy (matched
 *   here, by exact string or glob, not by the library's unanchored regex).
 * - Then the claim: the signed payload must name exactly the subject digest.
 */
import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { bundleFromJSON, toDSSEBundle, toMessageSignatureBundle, type Bundle, type TransparencyLogEntry } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial, type SignedEntity } from '@sigstore/verify';
import { matchIdentity, type TrustIdentity } from './policy.js';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const DSSE_ENVELOPE = 'application/vnd.dsse.envelope.v1+json';
export const BUNDLE_PREFIX = 'application/vnd.dev.sigstore.bundle';
export const SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
export const IN_TOTO = 'application/vnd.in-toto+json';
export const ANN_SIGNATURE = 'dev.cosignproject.cosign/signature';
export const ANN_CERTIFICATE = 'dev.sigstore.cosign/certificate';
export const ANN_REKOR_BUNDLE = 'dev.sigstore.cosign/bundle';

/** Parsed trust material of one policy version. */
export interface TrustMaterial {
  keys: { id: string; key: KeyObject }[];
  revokedKeys: { id: string; key: KeyObject }[];
  identities: TrustIdentity[];
  /** The trusted root for keyless signatures, or why there is none usable. */
  trustedRoot: TrustedRoot | { error: string };
}

export interface VerifyOutcome {
  /** `signature` (simple signing, or a statement with the cosign sign/v1 predicate) or `attestation`. */
  category: 'signature' | 'attestation';
  verified: boolean;
  keyId?: string;
  identity?: { issuer: string; subject: string };
  revokedKeyId?: string;
  predicateType?: string;
  reason: string;
}

/** What was signed, in a form both the library and the node:crypto fallback can check. */
interface Signed {
  entity: SignedEntity;
  /** The exact bytes the signature covers (payload, or the DSSE PAE) and the raw signature. */
  data: Buffer;
  signature: Buffer;
  path: 'message' | 'dsse';
  hasCertificate: boolean;
  /** The bundle's public-key hint (base64 SHA-256 of the SPKI), when it names one. */
  hint?: string;
}

class Rejected extends Error {}
const reject = (reason: string): never => {
  throw new Rejected(reason);
};

const EMPTY_ROOT = TrustedRoot.fromJSON({});
const STRICT_B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64(value: string, what: string): Buffer {
  if (value.length === 0 || value.length % 4 !== 0 || !STRICT_B64.test(value)) reject(`${what} is not base64`);
  return Buffer.from(value, 'base64');
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return reject(`${what} is not JSON`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The legacy Rekor "bundle" annotation as a tlog entry with an inclusion promise (SET). */
function rekorEntry(annotation: string): TransparencyLogEntry {
  const rb = parseJson(Buffer.from(annotation), 'the Rekor bundle annotation');
  const p = isObject(rb) ? rb.Payload : undefined;
  if (!isObject(rb) || !isObject(p) || typeof rb.SignedEntryTimestamp !== 'string' || typeof p.body !== 'string' || typeof p.logID !== 'string' || !/^[0-9a-f]{64}$/.test(p.logID)) {
    return reject('the Rekor bundle annotation is malformed');
  }
  const body = base64(p.body, 'the Rekor entry body');
  const entry = parseJson(body, 'the Rekor entry body');
  if (!isObject(entry) || typeof entry.kind !== 'string' || typeof entry.apiVersion !== 'string') return reject('the Rekor entry body is malformed');
  return {
    logIndex: String(Number(p.logIndex)),
    logId: { keyId: Buffer.from(p.logID, 'hex') },
    kindVersion: { kind: entry.kind, version: entry.apiVersion },
    integratedTime: String(Number(p.integratedTime)),
    canonicalizedBody: body,
    inclusionPromise: { signedEntryTimestamp: base64(rb.SignedEntryTimestamp, 'the Rekor SET') },
    inclusionProof: undefined,
  };
}

function certificateDer(pem: string | undefined): Buffer | undefined {
  if (!pem) return undefined;
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem.slice(0, 64 * 1024));
  if (!m) return reject('the certificate annotation is not a PEM certificate');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

function withTlog(bundle: Bundle, annotations: Record<string, string>): Bundle {
  const rekor = annotations[ANN_REKOR_BUNDLE];
  if (rekor) bundle.verificationMaterial.tlogEntries = [rekorEntry(rekor)];
  return bundle;
}

/** Shapes 1a/1b: a simple-signing payload blob and its signature annotation. */
function signedSimpleSigning(payload: Buffer, annotations: Record<string, string>): Signed {
  const sig = annotations[ANN_SIGNATURE];
  if (!sig) reject('the layer has no signature annotation');
  const signature = base64(sig!, 'the signature annotation');
  const cert = certificateDer(annotations[ANN_CERTIFICATE]);
  const digest = createHash('sha256').update(payload).digest();
  const bundle = withTlog(toMessageSignatureBundle({ digest, signature, ...(cert ? { certificate: cert } : { keyHint: '' }) }), annotations);
  return { entity: toSignedEntity(bundle, payload), data: payload, signature, path: 'message', hasCertificate: cert !== undefined };
}

function pae(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `), body]);
}

/** Shape 1d: a bare DSSE envelope layer (`.att`), wrapped into a bundle. */
function signedEnvelope(bytes: Buffer, annotations: Record<string, string>): { signed: Signed; payloadType: string; payload: Buffer } {
  const env = parseJson(bytes, 'the DSSE envelope');
  if (!isObject(env) || typeof env.payloadType !== 'string' || typeof env.payload !== 'string' || !Array.isArray(env.signatures)) return reject('the DSSE envelope is malformed');
  const first: unknown = env.signatures[0];
  if (!isObject(first) || typeof first.sig !== 'string') return reject('the DSSE envelope has no signature');
  const payload = base64(env.payload, 'the DSSE payload');
  const signature = base64(first.sig, 'the DSSE signature');
  const cert = certificateDer(annotations[ANN_CERTIFICATE]);
  const bundle = withTlog(toDSSEBundle({ artifact: payload, artifactType: env.payloadType, signature, ...(cert ? { certificate: cert } : { keyHint: '' }) }), annotations);
  return { signed: { entity: toSignedEntity(bundle), data: pae(env.payloadType, payload), signature, path: 'dsse', hasCertificate: cert !== undefined }, payloadType: env.payloadType, payload };
}

/** Shape 1c: a sigstore bundle (v0.3 in cosign 3) holding a DSSE envelope. */
function signedBundle(bytes: Buffer): { signed: Signed; payloadType: string; payload: Buffer } {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(parseJson(bytes, 'the bundle'));
  } catch (e) {
    if (e instanceof Rejected) throw e;
    return reject(`the bundle does not parse: ${(e as Error).message}`);
  }
  if (bundle.content.$case !== 'dsseEnvelope') return reject('message-signature bundles are not image signatures (cosign writes DSSE)');
  const env = bundle.content.dsseEnvelope;
  const signature = env.signatures[0]?.sig ?? Buffer.alloc(0);
  const vm = bundle.verificationMaterial.content;
  const hint = vm.$case === 'publicKey' && vm.publicKey.hint ? vm.publicKey.hint : undefined;
  return { signed: { entity: toSignedEntity(bundle), data: pae(env.payloadType, env.payload), signature, path: 'dsse', hasCertificate: vm.$case !== 'publicKey', ...(hint ? { hint } : {}) }, payloadType: env.payloadType, payload: env.payload };
}

/** Whether @sigstore/verify 3.1.1 computes the right digest for this key on this path (gotcha 3). */
function libraryHandles(key: KeyObject, path: Signed['path']): boolean {
  if (key.asymmetricKeyType === 'rsa') return true;
  if (key.asymmetricKeyType === 'ec') return key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  return key.asymmetricKeyType === 'ed25519' && path === 'dsse';
}

function fallbackVerify(signed: Signed, key: KeyObject): boolean {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const alg = key.asymmetricKeyType === 'ed25519' ? null : curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256';
  try {
    return cryptoVerify(alg, signed.data, key, signed.signature);
  } catch {
    return false;
  }
}

/** The id of the first key that verifies the signature, key-only (tlog and timestamps stripped). */
function verifyWithKeys(signed: Signed, keys: TrustMaterial['keys']): string | undefined {
  const stripped: SignedEntity = { ...signed.entity, tlogEntries: [], timestamps: [] };
  for (const { id, key } of keys) {
    if (!libraryHandles(key, signed.path)) {
      if (fallbackVerify(signed, key)) return id;
      continue;
    }
    const verifier = new Verifier(toTrustMaterial(EMPTY_ROOT, () => ({ publicKey: key, validFor: () => true })), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
    try {
      // A certificate-bearing signature is checked against the key as cosign --key does.
      verifier.verify(signed.hasCertificate ? { ...stripped, key: { $case: 'public-key', hint: '' } } : stripped);
      return id;
    } catch {
      /* try the next key */
    }
  }
  return undefined;
}

const hints = new WeakMap<KeyObject, string>();
/** cosign's key hint: base64 SHA-256 of the SPKI DER. */
function keyHint(key: KeyObject): string {
  let h = hints.get(key);
  if (!h) hints.set(key, (h = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64')));
  return h;
}

function describeError(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof code !== 'string') return message;
  if (code === 'SIGNATURE_ERROR') return `bad signature: ${message}`;
  if (code.startsWith('CERTIFICATE')) return `certificate rejected (${code}): ${message}`;
  if (code.startsWith('TLOG') || code.startsWith('TIMESTAMP')) return `missing or invalid transparency proof (${code}): ${message}`;
  return `${code}: ${message}`;
}

type KeylessResult = { identity: { issuer: string; subject: string } } | { reason: string };

function verifyKeyless(signed: Signed, m: TrustMaterial): KeylessResult {
  if ('error' in m.trustedRoot) return { reason: `keyless signature, but ${m.trustedRoot.error}` };
  if (m.identities.length === 0) return { reason: 'keyless signature, but the policy lists no identities' };
  const root = m.trustedRoot;
  const verifier = new Verifier(toTrustMaterial(root), { ctlogThreshold: root.ctlogs.length > 0 ? 1 : 0 });
  let signer;
  try {
    signer = verifier.verify(signed.entity);
  } catch (e) {
    return { reason: describeError(e) };
  }
  const subject = signer.identity?.subjectAlternativeName;
  const issuer = signer.identity?.extensions?.issuer;
  if (!matchIdentity(m.identities, subject, issuer)) return { reason: `certificate identity ${subject ?? '(none)'} from ${issuer ?? '(no issuer)'} is not trusted by the policy` };
  return { identity: { issuer: issuer!, subject: subject! } };
}

/** Signature first, then the claim: a well-signed payload for another digest still fails. */
function decide(signed: Signed, m: TrustMaterial, claim: () => void, base: Pick<VerifyOutcome, 'category' | 'predicateType'>): VerifyOutcome {
  const claimFailure = (): string | undefined => {
    try {
      claim();
      return undefined;
    } catch (e) {
      if (e instanceof Rejected) return e.message;
      throw e;
    }
  };
  const keyId = verifyWithKeys(signed, m.keys);
  if (keyId !== undefined) {
    const failed = claimFailure();
    return failed ? { ...base, verified: false, keyId, reason: failed } : { ...base, verified: true, keyId, reason: `verified with key ${keyId}` };
  }
  const revoked = verifyWithKeys(signed, m.revokedKeys);
  if (revoked !== undefined) return { ...base, verified: false, revokedKeyId: revoked, keyId: revoked, reason: `signed by revoked key ${revoked}` };
  if (signed.hasCertificate) {
    const r = verifyKeyless(signed, m);
    if ('reason' in r) return { ...base, verified: false, reason: r.reason };
    const failed = claimFailure();
    if (failed) return { ...base, verified: false, identity: r.identity, reason: failed };
    return { ...base, verified: true, identity: r.identity, reason: `verified keyless signature of ${r.identity.subject} (${r.identity.issuer})` };
  }
  if (m.keys.length === 0) return { ...base, verified: false, reason: 'the policy has no keys to verify a key-based signature' };
  if (signed.hint) {
    const named = m.keys.find((k) => keyHint(k.key) === signed.hint);
    return named
      ? { ...base, verified: false, keyId: named.id, reason: `bad signature: it does not verify with key ${named.id}, which its hint names` }
      : { ...base, verified: false, reason: `unknown key: no key of the policy has the hint ${signed.hint.slice(0, 64)}` };
  }
  return { ...base, verified: false, reason: 'bad signature or unknown key: no key of the policy verifies it' };
}

function simpleSigningClaim(payload: Buffer, subjectDigest: string): void {
  const doc = parseJson(payload, 'the simple-signing payload');
  const critical = isObject(doc) ? doc.critical : undefined;
  const image = isObject(critical) ? critical.image : undefined;
  const named = isObject(image) ? image['docker-manifest-digest'] : undefined;
  if (typeof named !== 'string') reject('the payload names no docker-manifest-digest');
  if (named !== subjectDigest) reject(`digest mismatch: the payload names ${String(named).slice(0, 80)}, not ${subjectDigest}`);
}

function statementOf(payloadType: string, payload: Buffer): { predicateType: string; subjects: unknown[] } {
  if (payloadType !== IN_TOTO) reject(`payload type ${payloadType.slice(0, 80)} is not an in-toto statement`);
  const st = parseJson(payload, 'the in-toto statement');
  if (!isObject(st) || !Array.isArray(st.subject)) return reject('the in-toto statement has no subject');
  return { predicateType: typeof st.predicateType === 'string' ? st.predicateType : '', subjects: st.subject };
}

function statementClaim(subjects: unknown[], subjectDigest: string): void {
  const [alg, hex] = subjectDigest.split(':');
  const names = subjects.some((s) => isObject(s) && isObject(s.digest) && s.digest[alg!] === hex);
  if (!names) reject(`digest mismatch: the statement's subjects do not include ${subjectDigest}`);
}

export type LayerFormat = 'simplesigning' | 'dsse' | 'bundle';

/**
 * Verifies one signature layer. `category` is decided from the content (predicateType); when
 * the content is too broken to tell, `fallbackCategory` (from where it was found) is used.
 */
export function verifyLayer(format: LayerFormat, bytes: Buffer, annotations: Record<string, string>, subjectDigest: string, m: TrustMaterial, fallbackCategory: VerifyOutcome['category']): VerifyOutcome {
  let base: Pick<VerifyOutcome, 'category' | 'predicateType'> = { category: fallbackCategory };
  try {
    if (format === 'simplesigning') {
      base = { category: 'signature' };
      return decide(signedSimpleSigning(bytes, annotations), m, () => simpleSigningClaim(bytes, subjectDigest), base);
    }
    const { signed, payloadType, payload } = format === 'dsse' ? signedEnvelope(bytes, annotations) : signedBundle(bytes);
    const st = statementOf(payloadType, payload);
    base = { category: st.predicateType === SIGN_PREDICATE ? 'signature' : 'attestation', predicateType: st.predicateType };
    return decide(signed, m, () => statementClaim(st.subjects, subjectDigest), base);
  } catch (e) {
    const reason = e instanceof Rejected ? e.message : `malformed signature: ${e instanceof Error ? e.message : String(e)}`;
    return { ...base, verified: false, reason };
  }
}
