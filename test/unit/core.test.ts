import { describe, expect, it } from 'vitest';
import { tryParseDigest } from '../../src/core/digest.js';
import { isValidName, isValidTag } from '../../src/core/names.js';
import { parseManifest } from '../../src/core/manifest.js';
import { parseContentRange, parseRange } from '../../src/core/range.js';
import { AppError } from '../../src/errors/catalogue.js';
import { keys } from '../../src/data/keys.js';

describe('names', () => {
  it.each([
    ['a', true],
    ['team/app', true],
    ['a.b_c__d-e---f/g', true],
    ['a/b/c/d', true],
    ['A', false],
    ['a//b', false],
    ['a/../b', false],
    ['./a', false],
    ['a/.', false],
    ['-a', false],
    ['a-', false],
    ['a___b', false],
    ['a%2fb', false],
    ['', false],
    ['a/', false],
  ])('name %j valid=%s', (name, ok) => expect(isValidName(name)).toBe(ok));

  it.each([
    ['latest', true],
    ['_x', true],
    ['v1.0-rc_1', true],
    ['.x', false],
    ['-x', false],
    ['a'.repeat(128), true],
    ['a'.repeat(129), false],
    ['a/b', false],
  ])('tag %j valid=%s', (tag, ok) => expect(isValidTag(tag)).toBe(ok));
});

describe('digests', () => {
  const hex64 = 'a'.repeat(64);
  it.each([
    [`sha256:${hex64}`, true],
    [`sha512:${'b'.repeat(128)}`, true],
    [`blake3:${hex64}`, true],
    [`sha256:${hex64.toUpperCase()}`, false],
    [`sha256:${hex64}0`, false],
    [`sha512:${hex64}`, false],
    [`md5:${'a'.repeat(32)}`, false],
    ['sha256', false],
    [`sha256:../${hex64}`, false],
  ])('%s accepted=%s', (d, ok) => expect(tryParseDigest(d) !== null).toBe(ok));
});

describe('ranges', () => {
  it('parses Content-Range in both the spec and the RFC form', () => {
    expect(parseContentRange('0-99')).toEqual({ start: 0, end: 99 });
    expect(parseContentRange('bytes 100-199/*')).toEqual({ start: 100, end: 199 });
    expect(parseContentRange('bytes=5-9')).toEqual({ start: 5, end: 9 });
    expect(parseContentRange('9-5')).toBeNull();
    expect(parseContentRange('x')).toBeNull();
  });
  it('parses Range against a size', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'range', start: 0, end: 9 });
    expect(parseRange('bytes=90-200', 100)).toEqual({ kind: 'range', start: 90, end: 99 });
    expect(parseRange('bytes=50-', 100)).toEqual({ kind: 'range', start: 50, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'range', start: 90, end: 99 });
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'none' });
    expect(parseRange(undefined, 100)).toEqual({ kind: 'none' });
  });
});

describe('manifest parsing', () => {
  const d = `sha256:${'c'.repeat(64)}`;
  const m = (o: unknown) => Buffer.from(JSON.stringify(o));
  const codeOf = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      return (e as AppError).code;
    }
    return undefined;
  };

  it('extracts blobs, subject and artifactType; skips foreign layers', () => {
    const p = parseManifest(
      m({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.x.config', digest: d, size: 1 },
        layers: [{ mediaType: 'l', digest: d, size: 1, urls: ['https://example.invalid/layer'] }],
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d, size: 5 },
      }),
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect(p.blobs.map((b) => b.mediaType)).toEqual(['application/vnd.x.config']);
    expect(p.subject?.digest).toBe(d);
    expect(p.artifactType).toBe('application/vnd.x.config');
  });

  it('falls back to the Content-Type when mediaType is absent and ignores parameters', () => {
    const p = parseManifest(m({ schemaVersion: 2, manifests: [] }), 'application/vnd.oci.image.index.v1+json; charset=utf-8');
    expect(p.kind).toBe('index');
  });

  it('rejects malformed documents with MANIFEST_INVALID', () => {
    for (const bad of ['', 'null', '"x"', '{"schemaVersion":2,"mediaType":5}', JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: d, size: -1, mediaType: 'x' } })]) {
      expect(codeOf(() => parseManifest(Buffer.from(bad), undefined))).toBe('MANIFEST_INVALID');
    }
  });
});

describe('storage keys', () => {
  it('lays out content by digest and uploads by uuid only', () => {
    expect(keys.blob(`sha256:ab${'0'.repeat(62)}`)).toBe(`blobs/sha256/ab/ab${'0'.repeat(62)}`);
    expect(keys.uploadData('123e4567-e89b-12d3-a456-426614174000')).toBe('uploads/123e4567-e89b-12d3-a456-426614174000/data');
    expect(() => keys.blob('sha256:../../etc/passwd')).toThrow();
    expect(() => keys.uploadData('../x')).toThrow();
  });
});
