/**
 * Deterministic CBOR (RFC 8949 §4.2.1) of registry entries: hand-checked byte vectors (RFC 8949
 * Appendix A where it has them; floats checked with Python's struct), key order by encoded
 * bytes, and properties: any key order of the same value gives the same bytes and the same
 * manifest digest, and decoding gives the value back.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Decoder } from 'cbor-x';
import { buildArtifact } from '../../src/families/artifact.js';
import { decodeCbor, encodeDeterministic } from '../../src/families/cbor.js';

const plainDecoder = new Decoder({ mapsAsObjects: true, int64AsNumber: true } as ConstructorParameters<typeof Decoder>[0]);
const hex = (v: unknown): string => encodeDeterministic(v).toString('hex');

describe('deterministic CBOR byte vectors', () => {
  it.each([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [4294967295, '1affffffff'],
    [4294967296, '1b0000000100000000'],
    [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [-1, '20'],
    [-24, '37'],
    [-25, '3818'],
    [-256, '38ff'],
    [-257, '390100'],
    [-4294967296, '3affffffff'],
    [-0, '00'],
  ])('integer %d → %s (shortest head)', (v, expected) => {
    expect(hex(v)).toBe(expected);
  });

  it.each([
    [0.5, 'f93800'],
    [1.5, 'f93e00'],
    [-2.5, 'f9c100'],
    [2 ** -24, 'f90001'],
    [100000.5, 'fa47c35040'],
    [0.1, 'fb3fb999999999999a'],
    [1.1, 'fb3ff199999999999a'],
    [1e300, 'fb7e37e43c8800759c'],
  ])('float %d → %s (shortest exact width)', (v, expected) => {
    expect(hex(v)).toBe(expected);
  });

  it('strings, simple values and arrays', () => {
    expect(hex('')).toBe('60');
    expect(hex('a')).toBe('6161');
    expect(hex('ü')).toBe('62c3bc');
    expect(hex('x'.repeat(24))).toBe(`7818${'78'.repeat(24)}`);
    expect(hex('x'.repeat(256))).toBe(`790100${'78'.repeat(256)}`);
    expect(hex(true)).toBe('f5');
    expect(hex(false)).toBe('f4');
    expect(hex(null)).toBe('f6');
    expect(hex([])).toBe('80');
    expect(hex([1, [2, 3]])).toBe('8201820203');
    expect(hex(Array.from({ length: 25 }, (_, i) => i + 1))).toBe('98190102030405060708090a0b0c0d0e0f101112131415161718181819');
  });

  it('maps: RFC 8949 Appendix A examples', () => {
    expect(hex({})).toBe('a0');
    expect(hex({ a: 1, b: [2, 3] })).toBe('a26161016162820203');
    expect(hex(['a', { b: 'c' }])).toBe('826161a161626163');
    expect(hex({ a: 'A', b: 'B', c: 'C', d: 'D', e: 'E' })).toBe('a56161614161626142616361436164614461656145');
  });

  it('sorts keys by their encoded bytes: shorter first, then bytewise (integer-like keys included)', () => {
    // "b" 6162 < "c" 6163 < "10" 623130 < "aa" 626161
    expect(hex({ aa: 1, b: 2, '10': 3, c: 4 })).toBe('a461620261630462313003626161' + '01');
    // JavaScript enumerates "10" before "9"; CBOR puts the 1-byte key first.
    expect(hex({ '10': 1, '9': 2 })).toBe('a2613902623130' + '01');
    // UTF-8 bytes, not UTF-16 code units: "ｚ" (U+FF5A, ef bd 9a) after "z" (7a) and after "é" (c3 a9).
    expect(hex({ 'ｚ': 1, 'é': 2, z: 3 })).toBe('a3617a0362c3a90263efbd9a01');
  });

  it('a map with 24 keys uses the one-byte length form', () => {
    const obj = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [String.fromCharCode(97 + i), i]));
    expect(hex(obj).slice(0, 6)).toBe('b81861');
  });

  it('a `__proto__` key is an ordinary key, encoded and decoded as such', () => {
    const v = JSON.parse('{"__proto__":{"a":1},"b":2}') as unknown;
    expect(hex(v)).toBe('a2616202695f5f70726f746f5f5fa1616101');
    expect(Object.keys(decodeCbor(encodeDeterministic(v)) as object)).toEqual(['b', '__proto__']);
    expect(decodeCbor(encodeDeterministic(v))).toEqual(v);
  });

  it('refuses values JSON cannot hold', () => {
    expect(() => encodeDeterministic(Number.NaN)).toThrow();
    expect(() => encodeDeterministic(Number.POSITIVE_INFINITY)).toThrow();
    expect(() => encodeDeterministic(() => 1)).toThrow();
  });
});

/** The same value with every object's keys in a random order. */
function shuffled(v: unknown, rand: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffled(x, rand));
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).map(([k, x]) => [k, shuffled(x, rand)] as const);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    return Object.fromEntries(entries);
  }
  return v;
}

const jsonValue = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);

describe('deterministic CBOR properties', () => {
  it('any key order of a value gives identical bytes, and decoding gives the value back', () => {
    fc.assert(
      fc.property(jsonValue, fc.integer(), (v, seed) => {
        let s = seed >>> 0;
        const rand = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
        const bytes = encodeDeterministic(v);
        expect(encodeDeterministic(shuffled(v, rand)).equals(bytes)).toBe(true);
        expect(decodeCbor(bytes)).toEqual(v);
        // cbor-x's own decoder, with its defaults, reads the same value (it renames a `__proto__` key).
        if (!JSON.stringify(v).includes('"__proto__"')) expect(plainDecoder.decode(bytes)).toEqual(v);
      }),
      { numRuns: 300 },
    );
  });

  it('an entry sent with differently ordered keys has the same layer and manifest digest', () => {
    const entryArb = fc.record({
      id: fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/),
      owner: fc.constant('artifact-store'),
      description: fc.string(),
      artifactTypes: fc.array(fc.constantFrom('application/vnd.a+json', 'application/vnd.b'), { minLength: 1 }),
      signatureRequired: fc.boolean(),
      promotable: fc.boolean(),
      extra: fc.dictionary(fc.string(), jsonValue, { maxKeys: 5 }),
    });
    fc.assert(
      fc.property(entryArb, fc.integer(), (entry, seed) => {
        let s = seed >>> 0;
        const rand = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
        const a = buildArtifact('artifact-type', 3, entry);
        const b = buildArtifact('artifact-type', 3, shuffled(entry, rand) as typeof entry);
        expect(b.layer.equals(a.layer)).toBe(true);
        expect(b.manifest.digest).toBe(a.manifest.digest);
        expect(decodeCbor(a.layer)).toEqual(JSON.parse(JSON.stringify(entry)));
      }),
      { numRuns: 200 },
    );
  });
});
