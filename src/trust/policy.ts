/**
 * The trust policy document: what `PUT /api/v1/namespaces/{ns}/trust` accepts, how keys and
 * identities are validated, and how a certificate identity is matched. Identity patterns are
 * globs matched by a linear-time matcher, never a regular expression built from user input.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { z } from 'zod';
import { ociError } from '../errors/catalogue.js';

export type TrustMode = 'off' | 'warn' | 'enforce';

export interface TrustKey {
  id: string;
  publicKey: string;
}

export interface RevokedKey extends TrustKey {
  revokedAt: number;
  revokedBy: string;
}

export interface TrustIdentity {
  issuer: string;
  subject?: string;
  /** Glob: `*` any run of characters, `?` one character; anchored at both ends. */
  subjectPattern?: string;
}

export interface TrustPolicyDocument {
  mode: TrustMode;
  enforceOnPull: boolean;
  keys: TrustKey[];
  /** Keys removed by DELETE …/keys/{id}: what only they signed is reported as revoked, never trusted. */
  revokedKeys: RevokedKey[];
  identities: TrustIdentity[];
  /** A `trusted_root.json` for keyless signatures in this namespace; else the registry-wide one. */
  trustedRoot?: unknown;
}

export interface TrustPolicy extends TrustPolicyDocument {
  namespace: string;
  version: number;
}

/** No policy stored: nothing is trusted, nothing is enforced. */
export const defaultPolicy = (namespace: string): TrustPolicy => ({ namespace, version: 0, mode: 'off', enforceOnPull: false, keys: [], revokedKeys: [], identities: [] });

export const MAX_PATTERN_LENGTH = 256;
const MAX_PATTERN_WILDCARDS = 16;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const identitySchema = z
  .object({
    issuer: z.string().min(1).max(512),
    subject: z.string().min(1).max(1024).optional(),
    subjectPattern: z
      .string()
      .min(1)
      .max(MAX_PATTERN_LENGTH)
      .refine((p) => [...p].filter((ch) => ch === '*' || ch === '?').length <= MAX_PATTERN_WILDCARDS, `at most ${MAX_PATTERN_WILDCARDS} wildcards`)
      .optional(),
  })
  .strict()
  .refine((i) => (i.subject === undefined) !== (i.subjectPattern === undefined), 'exactly one of subject or subjectPattern');

export const putPolicySchema = z
  .object({
    mode: z.enum(['off', 'warn', 'enforce']),
    keys: z
      .array(z.object({ id: z.string().regex(KEY_ID, 'key id: letters, digits, . _ - (max 64)'), publicKey: z.string().min(1).max(16 * 1024) }).strict())
      .max(64)
      .default([]),
    identities: z.array(identitySchema).max(64).default([]),
    enforceOnPull: z.boolean().default(false),
    trustedRoot: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export type PutPolicyBody = z.infer<typeof putPolicySchema>;

/** Parses a PEM public key and refuses types we cannot verify. Throws INVALID_PAYLOAD naming the key. */
export function parsePublicKey(pem: string, where = 'publicKey'): KeyObject {
  let key: KeyObject;
  // createPublicKey would happily derive a public key from a private one; never store a secret.
  if (pem.includes('PRIVATE KEY')) throw ociError('INVALID_PAYLOAD', `${where}: this is a private key; send only the public key`, { detail: [{ path: `$.${where}`, message: 'private key' }] });
  try {
    if (!pem.includes('-----BEGIN')) throw new Error('not PEM');
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw ociError('INVALID_PAYLOAD', `${where}: not a PEM public key`, { detail: [{ path: `$.${where}`, message: 'not a PEM public key' }] });
  }
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  const ok = type === 'ed25519' || (type === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1' || curve === 'secp521r1')) || (type === 'rsa' && bits >= 2048);
  if (!ok) throw ociError('INVALID_PAYLOAD', `${where}: unsupported key type ${type}${curve ? ` ${curve}` : ''}${type === 'rsa' ? ` ${bits} bits` : ''}; use ECDSA P-256/P-384/P-521, Ed25519 or RSA >= 2048`, { detail: [{ path: `$.${where}`, message: 'unsupported key type' }] });
  return key;
}

/** Validates a trusted_root.json document; throws INVALID_PAYLOAD (or returns false with `quiet`). */
export function checkTrustedRoot(doc: unknown): TrustedRoot {
  try {
    const root = TrustedRoot.fromJSON(doc);
    if (root.certificateAuthorities.length === 0) throw new Error('no certificateAuthorities');
    for (const ca of root.certificateAuthorities) {
      if (!ca.certChain || ca.certChain.certificates.length === 0) throw new Error('a certificate authority has no certificates');
    }
    return root;
  } catch (e) {
    throw ociError('INVALID_PAYLOAD', `trustedRoot: ${(e as Error).message}`, { detail: [{ path: '$.trustedRoot', message: 'not a usable trusted_root.json' }] });
  }
}

/** Validates the body against everything zod cannot: PEM keys, duplicate ids, the trusted root. */
export function validatePolicy(body: PutPolicyBody): void {
  const seen = new Set<string>();
  body.keys.forEach((k, i) => {
    if (seen.has(k.id)) throw ociError('INVALID_PAYLOAD', `keys[${i}].id: duplicate key id ${k.id}`, { detail: [{ path: `$.keys[${i}].id`, message: 'duplicate' }] });
    seen.add(k.id);
    parsePublicKey(k.publicKey, `keys[${i}].publicKey`);
  });
  if (body.trustedRoot !== undefined) checkTrustedRoot(body.trustedRoot);
}

/**
 * Glob match, anchored at both ends: `*` any run, `?` one character, everything else literal.
 * Greedy with a single backtrack point, so O(len(text) × len(pattern)) at worst, no recursion.
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || (pattern[p] !== '*' && pattern[p] === text[t]))) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** The first identity of the policy that a certificate's SAN and issuer satisfy. */
export function matchIdentity(identities: TrustIdentity[], subject: string | undefined, issuer: string | undefined): TrustIdentity | undefined {
  if (!subject || !issuer) return undefined;
  return identities.find((i) => i.issuer === issuer && (i.subject !== undefined ? i.subject === subject : globMatch(i.subjectPattern!, subject)));
}
