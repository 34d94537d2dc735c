/** Digest grammar and algorithms (OCI image-spec descriptor.md#digests). */
import { ociError } from '../errors/catalogue.js';

export type DigestAlgorithm = 'sha256' | 'sha512' | 'blake3';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128, blake3: 64 };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `<algo>:<hex>`, the content address used everywhere inside the store. */
  value: string;
}

const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Parses a digest; returns null when it is not a digest we accept. */
export function tryParseDigest(input: string): ParsedDigest | null {
  const m = DIGEST_RE.exec(input);
  if (!m) return null;
  const algorithm = m[1] as DigestAlgorithm;
  const hex = m[2]!;
  const len = HEX_LENGTH[algorithm];
  if (len === undefined || hex.length !== len || !/^[a-f0-9]+$/.test(hex)) return null;
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

export function parseDigest(input: string | undefined | null): ParsedDigest {
  const d = input ? tryParseDigest(input) : null;
  if (!d) throw ociError('DIGEST_INVALID', 'invalid or unsupported digest', { detail: { digest: input ?? null } });
  return d;
}

export const isDigest = (ref: string): boolean => ref.includes(':');
