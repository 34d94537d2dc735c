/**
 * Deterministic CBOR for registry entries (RFC 8949 §4.2.1 "core deterministic encoding").
 *
 * cbor-x writes scalars (text strings, integers) in their shortest form, but it keeps object
 * key order as JavaScript enumerates it (integer-like keys first!), gives plain objects a
 * 3-byte map header and writes every non-integer as a float64. So the structure is walked
 * here: maps get shortest headers and keys sorted by the bytewise order of their encodings,
 * floats get the shortest IEEE width that holds them exactly, and cbor-x encodes the scalars.
 *
 * Entries are JSON documents, so the value space is JSON's: null, booleans, numbers, strings,
 * arrays, objects. Numbers that are safe integers are CBOR integers; any other number is a
 * float (JSON does not tell 1.0 from 1; -0 is written as the integer 0).
 */
import { Decoder, Encoder } from 'cbor-x';

const scalarEncoder = new Encoder({ useRecords: false, tagUint8Array: false, pack: false, variableMapSize: true });
// int64AsNumber: 64-bit integers inside the safe range come back as numbers, not BigInt. Maps
// stay Maps (cbor-x renames a `__proto__` key when it builds objects) and become plain objects below.
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false, int64AsNumber: true } as ConstructorParameters<typeof Decoder>[0]);

/** Maps to plain objects with own properties (Object.fromEntries keeps `__proto__` as a key). */
function toJson(v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toJson(x)]));
  if (Array.isArray(v)) return v.map(toJson);
  return v;
}

export class CborValueError extends Error {}

/** Major type + argument in the shortest form (RFC 8949 §4.2.1: "preferred serialization"). */
function head(major: number, n: number): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = m | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  if (n < 0x100000000) {
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = m | 27;
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

/** The float16 bit pattern of `d` when float16 holds it exactly, else undefined. */
function float16Bits(d: number): number | undefined {
  const sign = d < 0 ? 0x8000 : 0;
  const a = Math.abs(d);
  if (a === 0) return sign;
  if (a < 2 ** -14) {
    const m = a / 2 ** -24; // subnormal: a multiple of 2^-24
    return Number.isInteger(m) ? sign | m : undefined;
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  if (e > 15) return undefined;
  const mant = (a / 2 ** e - 1) * 1024;
  return Number.isInteger(mant) ? sign | ((e + 15) << 10) | mant : undefined;
}

function encodeFloat(d: number): Buffer {
  if (!Number.isFinite(d)) throw new CborValueError('NaN and infinities are not JSON values');
  const h = float16Bits(d);
  if (h !== undefined) return Buffer.from([0xf9, h >> 8, h & 0xff]);
  if (Math.fround(d) === d) {
    const b = Buffer.alloc(5);
    b[0] = 0xfa;
    b.writeFloatBE(d, 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xfb;
  b.writeDoubleBE(d, 1);
  return b;
}

function encodeScalar(v: string | boolean | null): Buffer {
  return Buffer.from(scalarEncoder.encode(v));
}

function encodeValue(v: unknown, depth: number): Buffer {
  if (depth > 64) throw new CborValueError('value nested deeper than 64 levels');
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return encodeScalar(v);
  if (typeof v === 'number') {
    // Integers by hand: cbor-x writes integers of 2^32 and beyond as float64.
    if (Number.isSafeInteger(v)) return v >= 0 ? head(0, v) : head(1, -1 - v);
    return encodeFloat(v);
  }
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map((x) => encodeValue(x, depth + 1))]);
  if (typeof v === 'object') {
    const pairs = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [encodeScalar(k), encodeValue(x, depth + 1)] as const);
    // Bytewise order of the encoded keys: a shorter key sorts first (its head byte is smaller).
    pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
    return Buffer.concat([head(5, pairs.length), ...pairs.flatMap(([k, x]) => [k, x])]);
  }
  throw new CborValueError(`${typeof v} is not a JSON value`);
}

/** The deterministic CBOR encoding of a JSON value. */
export function encodeDeterministic(value: unknown): Buffer {
  return encodeValue(value, 0);
}

/** Decodes CBOR produced by encodeDeterministic back to the JSON value. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return toJson(decoder.decode(bytes));
}
