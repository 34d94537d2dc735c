/** Parsing of the byte-range headers the distribution spec uses. */

/**
 * `Content-Range` on a chunked PATCH: the spec writes `<start>-<end>` (inclusive); some
 * clients send the RFC 9110 form `bytes <start>-<end>/<total>`. Returns null when malformed.
 */
export function parseContentRange(value: string): { start: number; end: number } | null {
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
  return { start, end };
}

export type RangeRequest = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * `Range` on blob GET (RFC 9110 §14.1.2), single range only: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
 * Unparseable or multi-range headers are ignored (the whole blob is served), as HTTP allows.
 */
export function parseRange(value: string | undefined, size: number): RangeRequest {
  if (!value) return { kind: 'none' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'none' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end };
}
