/** Entry validation pieces: id grammar, JSON Schema admission (local refs only, 2020-12) and failure paths. */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/catalogue.js';
import { compileSchema, isEntryId, schemaFailures } from '../../src/families/entries.js';

const refusal = (schema: unknown): { message: string; detail: unknown } => {
  try {
    compileSchema(schema, 'configSchema');
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return { message: (err as AppError).message, detail: (err as AppError).detail };
  }
  throw new Error('schema was accepted');
};

describe('entry ids', () => {
  it.each([
    ['model-bundle', true],
    ['oci.manifest.push', true],
    ['_private', true],
    ['x'.repeat(128), true],
    ['x'.repeat(129), false],
    ['', false],
    ['Upper', false],
    ['a/b', false],
    ['-lead', false],
    ['.lead', false],
    ['sp ace', false],
  ])('%j valid=%s', (id, ok) => expect(isEntryId(id)).toBe(ok));
});

describe('schema admission', () => {
  it('refuses every non-local reference, wherever it is, and names its path', () => {
    expect(refusal({ $ref: 'https://example.com/s.json' }).detail).toEqual([{ path: '$.configSchema.$ref', message: 'non-local $ref is not allowed' }]);
    expect(refusal({ items: [{ $ref: 'other.json#/x' }] }).detail).toEqual([{ path: '$.configSchema.items[0].$ref', message: 'non-local $ref is not allowed' }]);
    expect(refusal({ properties: { 'a.b': { $dynamicRef: 'http://x/y' } } }).detail).toEqual([{ path: '$.configSchema.properties["a.b"].$dynamicRef', message: 'non-local $ref is not allowed' }]);
    expect(refusal({ $ref: 5 }).detail).toEqual([{ path: '$.configSchema.$ref', message: 'non-local $ref is not allowed' }]);
  });

  it('accepts local references and the 2020-12 meta-schema, refuses others and invalid schemas', () => {
    const v = compileSchema({ $schema: 'https://json-schema.org/draft/2020-12/schema', $defs: { n: { type: 'integer' } }, properties: { a: { $ref: '#/$defs/n' } } }, 'configSchema');
    expect(v({ a: 1 })).toBe(true);
    expect(v({ a: 'x' })).toBe(false);
    expect(refusal({ $schema: 'http://json-schema.org/draft-07/schema#' }).message).toBe('configSchema must be JSON Schema 2020-12 ($schema https://json-schema.org/draft/2020-12/schema)');
    expect(refusal({ type: 'banana' }).message).toMatch(/^configSchema is not a valid JSON Schema 2020-12: /);
    expect(refusal({ minimum: 'three' }).message).toMatch(/^configSchema is not a valid JSON Schema 2020-12: /);
    // Two entries may use the same $id: each version compiles on its own.
    compileSchema({ $id: 'https://acme.example/s', type: 'object' }, 'configSchema');
    compileSchema({ $id: 'https://acme.example/s', type: 'string' }, 'configSchema');
  });

  it('runs admins\' patterns in linear time (RE2): a catastrophic pattern answers at once, backreferences are refused', () => {
    const v = compileSchema({ properties: { title: { type: 'string', pattern: '^(a+)+$' } }, patternProperties: { '^(x+x+)+y$': { type: 'integer' } } }, 'configSchema');
    // Backtracking needs ~2^n steps here (JavaScript's engine takes >10 s at n = 28).
    const evil = `${'a'.repeat(100_000)}!`;
    const started = performance.now();
    expect(v({ title: evil })).toBe(false);
    expect(v({ [`${'x'.repeat(50_000)}`]: 'not checked: the key does not match' })).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(v({ title: 'aaa' })).toBe(true);
    expect(v({ xxy: 'no' })).toBe(false);
    // Unicode classes still work; what RE2 cannot run in linear time is a clear refusal.
    expect(compileSchema({ type: 'string', pattern: '^\\p{L}+$' }, 'configSchema')('héllo')).toBe(true);
    expect(refusal({ type: 'string', pattern: '(a)\\1' }).message).toMatch(/^configSchema is not a valid JSON Schema 2020-12: .*invalid escape/);
    expect(refusal({ type: 'string', pattern: '^(?=a)' }).message).toMatch(/^configSchema is not a valid JSON Schema 2020-12: /);
  });
});

describe('failure paths', () => {
  it('are JSON paths with bracket notation for keys that are not identifiers, naming missing and extra properties', () => {
    const v = compileSchema(
      { type: 'object', required: ['org.acme.team'], additionalProperties: false, properties: { 'org.acme.team': { type: 'string' }, 'a/b': { type: 'integer' }, list: { items: { type: 'string' } } } },
      'annotationsSchema',
    );
    const doc = { 'a/b': 'x', list: ['ok', 3], extra: '1' };
    expect(v(doc)).toBe(false);
    expect(schemaFailures('annotations', v.errors, doc).map((f) => f.path).sort()).toEqual(['$.extra', '$.list[1]', '$["a/b"]', '$["org.acme.team"]'].sort());
    // An object key that looks like a number stays a key.
    const keyed = compileSchema({ properties: { '1': { type: 'string' } } }, 'configSchema');
    expect(keyed({ '1': 2 })).toBe(false);
    expect(schemaFailures('config', keyed.errors, { '1': 2 })[0]!.path).toBe('$["1"]');
  });
});
