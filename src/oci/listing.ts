/** Shared pagination for tag, catalog and referrer listings (`n`, `last`, RFC 5988 `Link`). */
import { ociError } from '../errors/catalogue.js';

export interface Page<T> {
  items: T[];
  /** Value for the next page's `last`, when there is one. */
  nextLast?: string;
}

/** Parses `n`: absent means "all" (capped by `max`); 0 is a legal empty page. */
export function pageSize(n: string | undefined, max: number): number {
  if (n === undefined || n === '') return max;
  const v = Number(n);
  if (!Number.isSafeInteger(v) || v < 0) throw ociError('UNSUPPORTED', 'n must be a non-negative integer', { status: 400 });
  return Math.min(v, max);
}

/** Fetches one more than asked so we know whether a next page exists without a count query. */
export function paginate<T>(fetch: (limit: number) => T[], size: number, key: (t: T) => string): Page<T> {
  if (size === 0) return { items: [] };
  const rows = fetch(size + 1);
  if (rows.length <= size) return { items: rows };
  const items = rows.slice(0, size);
  return { items, nextLast: key(items[items.length - 1]!) };
}

export function linkHeader(path: string, params: Record<string, string>): string {
  return `<${path}?${new URLSearchParams(params).toString()}>; rel="next"`;
}
