/**
 * Makes cosign signatures in every wire shape, as cosign writes them, with node:crypto and
 * @sigstore/sign only (no cosign binary, no copied fixtures). Research: trust-formats.md §1, §5.
 *
 * - `signDigestLegacyTag`: `sha256-<hex>.sig` tag, simple-signing layer (appends, like cosign).
 * - `signDigestReferrer`: cosign 2.x OCI 1.1 referrer (config media type as artifact type).
 * - `signDigestBundle`: cosign 3.x sigstore bundle v0.3 referrer (DSSE in-toto statement).
 * - `attestDigestLegacyTag`: `sha256-<hex>.att` tag, DSSE envelope layer.
 * - `makeTestSigstore`: a throw-away CA + transparency log + `trusted_root.json` for keyless.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { DSSEBundleBuilder } from '@sigstore/sign';
import { bundleToJSON } from '@sigstore/bundle';
import { expect } from 'vitest';
import { pushBlob, sha256 } from './http.js';

export type KeyType = 'p256' | 'p384' | 'rsa' | 'ed25519';

export interface TestKey {
  type: KeyType;
  privateKey: KeyObject;
  publicKeyPem: string;
}

export function generateKey(type: KeyType = 'p256'): TestKey {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: type === 'p256' ? 'prime256v1' : 'secp384r1' });
  return { type, privateKey: pair.privateKey, publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** The bytes cosign signs: ECDSA/RSA hash with SHA-256 (SHA-384 for P-384), Ed25519 pure. */
export function rawSign(key: TestKey | KeyObject, data: Buffer): Buffer {
  const k = 'privateKey' in key ? key.privateKey : key;
  const alg = k.asymmetricKeyType === 'ed25519' ? null : k.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  return cryptoSign(alg, data, k);
}

export interface Subject {
  digest: string;
  size: number;
  mediaType?: string;
}

export interface SignOptions {
  /** Authorization and other headers for the pushes. */
  headers?: Record<string, string>;
  /** Sign a payload naming this digest instead of the subject's (a signature for another image). */
  claimDigest?: string;
  /** Change the payload after signing (the signature no longer matches). */
  tamper?: boolean;
  /** Keyless: sign with this leaf identity instead of `key` (certificate + Rekor annotations). */
  keyless?: KeylessSigner;
  /** docker-reference in the simple-signing payload. */
  reference?: string;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** cosign's simple-signing payload, byte for byte (Go json.Marshal, no trailing newline). */
export function simpleSigningPayload(digest: string, reference = 'localhost/test'): Buffer {
  return Buffer.from(`{"critical":{"identity":{"docker-reference":"${reference}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`);
}

export function inTotoStatement(digest: string, predicateType: string, predicate: unknown = {}): Buffer {
  const [alg, hex] = digest.split(':');
  return Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'image', digest: { [alg!]: hex } }], predicateType, predicate }));
}

export const legacyTag = (digest: string, suffix: 'sig' | 'att'): string => `${digest.replace(':', '-')}.${suffix}`;

async function putManifest(url: string, repo: string, ref: string, manifest: unknown, headers: Record<string, string> = {}): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: bytes, headers: { ...headers, 'Content-Type': OCI_MANIFEST } });
  expect(res.status, await res.text()).toBe(201);
  return sha256(bytes);
}

/** ggcr's empty image config as cosign writes it (verifiers ignore it). */
function ggcrConfig(layerDigests: string[]): Buffer {
  return Buffer.from(JSON.stringify({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: layerDigests }, config: {} }));
}

interface SigLayer {
  mediaType: string;
  size: number;
  digest: string;
  annotations: Record<string, string>;
}

/** A simple-signing layer: payload blob pushed, signature (and keyless material) in annotations. */
async function simpleSigningLayer(url: string, repo: string, subject: Subject, key: TestKey, o: SignOptions): Promise<SigLayer> {
  const signed = simpleSigningPayload(o.claimDigest ?? subject.digest, o.reference);
  const signer = o.keyless ? o.keyless.privateKey : key.privateKey;
  const signature = rawSign(signer, signed);
  const payload = o.tamper ? Buffer.from(signed.toString().replace('"optional":null', '"optional":{"tampered":"yes"}')) : signed;
  const digest = await pushBlob(url, repo, payload, o.headers);
  const annotations: Record<string, string> = { 'dev.cosignproject.cosign/signature': signature.toString('base64') };
  if (o.keyless) Object.assign(annotations, o.keyless.annotations(signed, signature, 'hashedrekord'));
  return { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', size: payload.length, digest, annotations };
}

async function pushLegacyManifest(url: string, repo: string, tag: string, layers: SigLayer[], o: SignOptions, extra: Record<string, unknown> = {}, configMediaType = 'application/vnd.oci.image.config.v1+json'): Promise<string> {
  const config = ggcrConfig(layers.map((l) => l.digest));
  const configDigest = await pushBlob(url, repo, config, o.headers);
  return putManifest(url, repo, tag, { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: configMediaType, size: config.length, digest: configDigest }, layers, ...extra }, o.headers);
}

async function existingLayers(url: string, repo: string, tag: string, headers: Record<string, string> = {}): Promise<SigLayer[]> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { headers: { ...headers, Accept: OCI_MANIFEST } });
  if (res.status !== 200) return [];
  return ((await res.json()) as { layers: SigLayer[] }).layers;
}

/** Shape 1a: adds a signature layer to `sha256-<hex>.sig` and re-PUTs the tag, as cosign does. */
export async function signDigestLegacyTag(url: string, repo: string, subject: Subject, key: TestKey, o: SignOptions = {}): Promise<string> {
  const tag = legacyTag(subject.digest, 'sig');
  const layers = [...(await existingLayers(url, repo, tag, o.headers)), await simpleSigningLayer(url, repo, subject, key, o)];
  return pushLegacyManifest(url, repo, tag, layers, o);
}

/** Shape 1b: cosign 2.x `--registry-referrers-mode=oci-1-1`: subject set, no top-level artifactType. */
export async function signDigestReferrer(url: string, repo: string, subject: Subject, key: TestKey, o: SignOptions = {}): Promise<string> {
  const layer = await simpleSigningLayer(url, repo, subject, key, o);
  const manifest = { subject: { mediaType: subject.mediaType ?? OCI_MANIFEST, digest: subject.digest, size: subject.size } };
  // PUT by digest: compute it from the exact bytes.
  const config = ggcrConfig([layer.digest]);
  const configDigest = await pushBlob(url, repo, config, o.headers);
  const doc = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.dev.cosign.artifact.sig.v1+json', size: config.length, digest: configDigest }, layers: [layer], ...manifest };
  return putManifest(url, repo, sha256(JSON.stringify(doc)), doc, o.headers);
}

/** A DSSE signer for @sigstore/sign's bundle builder: local key, public-key hint, no network. */
function localSigner(key: TestKey) {
  const hint = createHash('sha256').update(createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' })).digest('base64');
  return { sign: async (data: Buffer) => ({ signature: rawSign(key, data), key: { $case: 'publicKey' as const, publicKey: key.publicKeyPem, hint } }) };
}

export interface BundleOptions extends SignOptions {
  /** `https://sigstore.dev/cosign/sign/v1` (a signature, the default) or any attestation predicate. */
  predicateType?: string;
  /** Replace the bundle layer's bytes (malformed-input tests). */
  rawBundle?: Buffer;
}

/** Shape 1c: cosign 3.x default: a sigstore bundle v0.3 referrer built with @sigstore/sign offline. */
export async function signDigestBundle(url: string, repo: string, subject: Subject, key: TestKey, o: BundleOptions = {}): Promise<string> {
  const predicateType = o.predicateType ?? 'https://sigstore.dev/cosign/sign/v1';
  let bytes = o.rawBundle ?? (o.keyless ? o.keyless.bundle(inTotoStatement(o.claimDigest ?? subject.digest, predicateType)) : undefined);
  if (!bytes) {
    const builder = new DSSEBundleBuilder({ signer: localSigner(key), witnesses: [] });
    const bundle = await builder.create({ data: inTotoStatement(o.claimDigest ?? subject.digest, predicateType), type: 'application/vnd.in-toto+json' });
    const json = bundleToJSON(bundle) as { dsseEnvelope: { payload: string } };
    if (o.tamper) json.dsseEnvelope.payload = inTotoStatement(subject.digest, predicateType, { tampered: true }).toString('base64');
    bytes = Buffer.from(JSON.stringify(json));
  }
  const layerDigest = await pushBlob(url, repo, bytes, o.headers);
  const empty = Buffer.from('{}');
  const emptyDigest = await pushBlob(url, repo, empty, o.headers);
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json', digest: emptyDigest, size: 2 },
    layers: [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', digest: layerDigest, size: bytes.length }],
    subject: { mediaType: subject.mediaType ?? OCI_MANIFEST, digest: subject.digest, size: subject.size },
    annotations: { 'org.opencontainers.image.created': new Date().toISOString(), 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': predicateType },
  };
  return putManifest(url, repo, sha256(JSON.stringify(doc)), doc, o.headers);
}

const pae = (type: string, body: Buffer): Buffer => Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `), body]);

/** Shape 1d: `sha256-<hex>.att` with a DSSE envelope layer (cosign attest, legacy format). */
export async function attestDigestLegacyTag(url: string, repo: string, subject: Subject, key: TestKey, predicateType: string, o: SignOptions = {}): Promise<string> {
  const type = 'application/vnd.in-toto+json';
  const statement = inTotoStatement(o.claimDigest ?? subject.digest, predicateType);
  const signer = o.keyless ? o.keyless.privateKey : key.privateKey;
  const signature = rawSign(signer, pae(type, statement));
  const payload = o.tamper ? inTotoStatement(subject.digest, predicateType, { tampered: true }) : statement;
  const envelope = Buffer.from(JSON.stringify({ payloadType: type, payload: payload.toString('base64'), signatures: [{ keyid: '', sig: signature.toString('base64') }] }));
  const digest = await pushBlob(url, repo, envelope, o.headers);
  const annotations: Record<string, string> = { 'dev.cosignproject.cosign/signature': '', predicateType };
  const tag = legacyTag(subject.digest, 'att');
  const layers = [...(await existingLayers(url, repo, tag, o.headers)), { mediaType: 'application/vnd.dsse.envelope.v1+json', size: envelope.length, digest, annotations }];
  return pushLegacyManifest(url, repo, tag, layers, o);
}

// ---- keyless: a throw-away CA, transparency log and trusted_root.json -----------------------

/** Minimal DER encoding, enough for X.509 v3 certificates. */
const der = {
  tlv(tag: number, content: Buffer): Buffer {
    const n = content.length;
    const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
    return Buffer.concat([Buffer.from([tag]), len, content]);
  },
  seq: (...items: Buffer[]): Buffer => der.tlv(0x30, Buffer.concat(items)),
  set: (...items: Buffer[]): Buffer => der.tlv(0x31, Buffer.concat(items)),
  int(n: number): Buffer {
    const hex = n.toString(16);
    let b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return der.tlv(0x02, b);
  },
  oid(dotted: string): Buffer {
    const parts = dotted.split('.').map(Number);
    const bytes = [40 * parts[0]! + parts[1]!];
    for (const p of parts.slice(2)) {
      const stack = [p & 0x7f];
      for (let v = p >> 7; v > 0; v >>= 7) stack.unshift((v & 0x7f) | 0x80);
      bytes.push(...stack);
    }
    return der.tlv(0x06, Buffer.from(bytes));
  },
  utf8: (s: string): Buffer => der.tlv(0x0c, Buffer.from(s)),
  time(d: Date): Buffer {
    const s = d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
    return d.getUTCFullYear() < 2050 ? der.tlv(0x17, Buffer.from(`${s.slice(2)}Z`)) : der.tlv(0x18, Buffer.from(`${s}Z`));
  },
  bits: (b: Buffer, unused = 0): Buffer => der.tlv(0x03, Buffer.concat([Buffer.from([unused]), b])),
  octets: (b: Buffer): Buffer => der.tlv(0x04, b),
  bool: (v: boolean): Buffer => der.tlv(0x01, Buffer.from([v ? 0xff : 0])),
  explicit: (n: number, content: Buffer): Buffer => der.tlv(0xa0 + n, content),
};

const ECDSA_SHA256 = der.seq(der.oid('1.2.840.10045.4.3.2'));
const name = (cn: string): Buffer => (cn ? der.seq(der.set(der.seq(der.oid('2.5.4.3'), der.utf8(cn)))) : der.seq());
const ext = (oid: string, value: Buffer, critical = false): Buffer => der.seq(der.oid(oid), ...(critical ? [der.bool(true)] : []), der.octets(value));
const spkiDer = (k: KeyObject): Buffer => (k.type === 'public' ? k : createPublicKey(k)).export({ type: 'spki', format: 'der' });
const keyId = (k: KeyObject): Buffer => createHash('sha1').update(spkiDer(k)).digest();

let serial = 1000;
function certificate(o: { issuer: string; subject: string; publicKey: KeyObject; signingKey: KeyObject; issuerKey: KeyObject; notBefore: Date; notAfter: Date; extensions: Buffer[] }): Buffer {
  const tbs = der.seq(
    der.explicit(0, der.int(2)),
    der.int(serial++),
    ECDSA_SHA256,
    name(o.issuer),
    der.seq(der.time(o.notBefore), der.time(o.notAfter)),
    name(o.subject),
    spkiDer(o.publicKey),
    der.explicit(3, der.seq(ext('2.5.29.14', der.octets(keyId(o.publicKey))), ext('2.5.29.35', der.seq(der.tlv(0x80, keyId(o.issuerKey)))), ...o.extensions)),
  );
  return der.seq(tbs, ECDSA_SHA256, der.bits(cryptoSign('sha256', tbs, o.signingKey)));
}

const pem = (derBytes: Buffer): string => `-----BEGIN CERTIFICATE-----\n${derBytes.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;

export interface KeylessSigner {
  privateKey: KeyObject;
  certificatePem: string;
  /** Certificate + Rekor bundle annotations for a legacy layer signed with this identity. */
  annotations(payload: Buffer, signature: Buffer, kind: 'hashedrekord'): Record<string, string>;
  /** A keyless sigstore bundle v0.3 (leaf certificate, DSSE, log entry with SET, inclusion proof and checkpoint). */
  bundle(statement: Buffer): Buffer;
}

export interface TestSigstore {
  /** A `trusted_root.json` document trusting this CA and log. */
  trustedRoot: Record<string, unknown>;
  /** Issues a leaf certificate (SAN email + Fulcio issuer extension) and returns a signer for it. */
  identity(o: { subject: string; issuer: string; notBefore?: Date; notAfter?: Date; integratedTime?: Date }): KeylessSigner;
}

export function makeTestSigstore(): TestSigstore {
  const ca = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const log = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const start = new Date(Date.now() - 24 * 3600_000);
  const caCert = certificate({
    issuer: 'test-ca',
    subject: 'test-ca',
    publicKey: ca.publicKey,
    signingKey: ca.privateKey,
    issuerKey: ca.publicKey,
    notBefore: start,
    notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
    extensions: [ext('2.5.29.19', der.seq(der.bool(true)), true), ext('2.5.29.15', der.bits(Buffer.from([0x06]), 1), true)],
  });
  const logSpki = spkiDer(log.publicKey);
  const logId = createHash('sha256').update(logSpki).digest();
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{ baseUrl: 'https://log.example', hashAlgorithm: 'SHA2_256', publicKey: { rawBytes: logSpki.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: start.toISOString() } }, logId: { keyId: logId.toString('base64') } }],
    certificateAuthorities: [{ subject: { organization: 'test', commonName: 'test-ca' }, uri: 'https://ca.example', certChain: { certificates: [{ rawBytes: caCert.toString('base64') }] }, validFor: { start: start.toISOString() } }],
    ctlogs: [],
    timestampAuthorities: [],
  };
  let logIndex = 0;
  /** A one-entry log per call: SET, inclusion proof (single leaf) and signed checkpoint. */
  function logEntry(body: Buffer, integratedTime: Date | undefined) {
    const time = Math.floor((integratedTime ?? new Date()).getTime() / 1000);
    const index = logIndex++;
    const set = cryptoSign('sha256', Buffer.from(JSON.stringify({ body: body.toString('base64'), integratedTime: time, logID: logId.toString('hex'), logIndex: index })), log.privateKey);
    const root = createHash('sha256').update(Buffer.concat([Buffer.from([0]), body])).digest();
    const note = `log.example\n1\n${root.toString('base64')}\n`;
    const noteSig = Buffer.concat([logId.subarray(0, 4), cryptoSign('sha256', Buffer.from(note), log.privateKey)]);
    return {
      time,
      index,
      set,
      json: {
        logIndex: String(index),
        logId: { keyId: logId.toString('base64') },
        kindVersion: { kind: 'dsse', version: '0.0.1' },
        integratedTime: String(time),
        inclusionPromise: { signedEntryTimestamp: set.toString('base64') },
        inclusionProof: { logIndex: '0', rootHash: root.toString('base64'), treeSize: '1', hashes: [], checkpoint: { envelope: `${note}\n\u2014 log.example ${noteSig.toString('base64')}\n` } },
        canonicalizedBody: body.toString('base64'),
      },
    };
  }
  return {
    trustedRoot,
    identity({ subject, issuer, notBefore, notAfter, integratedTime }) {
      const leaf = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const from = notBefore ?? new Date(Date.now() - 60_000);
      const leafCert = certificate({
        issuer: 'test-ca',
        subject: '',
        publicKey: leaf.publicKey,
        signingKey: ca.privateKey,
        issuerKey: ca.publicKey,
        notBefore: from,
        notAfter: notAfter ?? new Date(from.getTime() + 10 * 60_000),
        extensions: [
          ext('2.5.29.15', der.bits(Buffer.from([0x80]), 7), true),
          ext('2.5.29.37', der.seq(der.oid('1.3.6.1.5.5.7.3.3'))),
          ext('2.5.29.17', der.seq(der.tlv(0x81, Buffer.from(subject))), true),
          ext('1.3.6.1.4.1.57264.1.8', der.utf8(issuer)),
        ],
      });
      const certificatePem = pem(leafCert);
      return {
        privateKey: leaf.privateKey,
        certificatePem,
        annotations(payload, signature) {
          const body = Buffer.from(
            JSON.stringify({
              apiVersion: '0.0.1',
              kind: 'hashedrekord',
              spec: {
                data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
                signature: { content: signature.toString('base64'), publicKey: { content: Buffer.from(certificatePem).toString('base64') } },
              },
            }),
          );
          // The SET: the log's signature over the canonical (sorted-key) JSON of the entry.
          const { time, index, set } = logEntry(body, integratedTime);
          return {
            'dev.sigstore.cosign/certificate': certificatePem,
            'dev.sigstore.cosign/chain': pem(caCert),
            'dev.sigstore.cosign/bundle': JSON.stringify({ SignedEntryTimestamp: set.toString('base64'), Payload: { body: body.toString('base64'), integratedTime: time, logIndex: index, logID: logId.toString('hex') } }),
          };
        },
        bundle(statement) {
          const type = 'application/vnd.in-toto+json';
          const signature = cryptoSign('sha256', pae(type, statement), leaf.privateKey);
          const body = Buffer.from(
            JSON.stringify({
              apiVersion: '0.0.1',
              kind: 'dsse',
              spec: { payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(statement).digest('hex') }, signatures: [{ signature: signature.toString('base64'), verifier: Buffer.from(certificatePem).toString('base64') }] },
            }),
          );
          return Buffer.from(
            JSON.stringify({
              mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
              verificationMaterial: { certificate: { rawBytes: leafCert.toString('base64') }, tlogEntries: [logEntry(body, integratedTime).json] },
              dsseEnvelope: { payload: statement.toString('base64'), payloadType: type, signatures: [{ sig: signature.toString('base64'), keyid: '' }] },
            }),
          );
        },
      };
    },
  };
}
