/**
 * Search parameters from a query string: validated, bounded, and the free text turned into an
 * FTS5 expression that can only mean "these words" (issue #16: users type plain terms; FTS5
 * operators, column filters and quotes in `q` are data, never syntax).
 */
import { ociError } from '../errors/catalogue.js';

export const SORTS = ['relevance', 'updated', 'name'] as const;
export type Sort = (typeof SORTS)[number];

export interface SearchQuery {
  /** Plain words; empty: every visible document. */
  q: string;
  type?: string;
  namespace?: string;
  /** `annotation.<key>=<value>` filters, all of which must match exactly. */
  annotations: [string, string][];
  signed?: boolean;
  /** Referrers (signatures, SBOMs, attestations) are children of what they describe: hidden unless asked for. */
  includeReferrers: boolean;
  sort: Sort;
  /** 1-based. */
  page: number;
  perPage: number;
}

const MAX_Q = 256;
const MAX_TERMS = 16;
const MAX_FILTER = 512;
const MAX_PAGE = 10_000;
export const MAX_PER_PAGE = 100;

const bad = (path: string, message: string): never => {
  throw ociError('INVALID_PAYLOAD', `${path}: ${message}`, { detail: [{ path, message }] });
};

function bounded(name: string, v: string | undefined): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (v.length > MAX_FILTER) bad(`$.${name}`, `at most ${MAX_FILTER} characters`);
  return v;
}

function intParam(name: string, v: string | undefined, dflt: number, max: number): number {
  if (v === undefined || v === '') return dflt;
  if (!/^[0-9]{1,6}$/.test(v)) bad(`$.${name}`, 'a positive integer');
  const n = Number(v);
  if (n < 1 || n > max) bad(`$.${name}`, `between 1 and ${max}`);
  return n;
}

/** Reads the query parameters (each given once; later duplicates are ignored, except annotations). */
export function parseSearchQuery(params: URLSearchParams): SearchQuery {
  const q = params.get('q') ?? '';
  if (q.length > MAX_Q) bad('$.q', `at most ${MAX_Q} characters`);
  const sortRaw = params.get('sort') || undefined;
  if (sortRaw !== undefined && !(SORTS as readonly string[]).includes(sortRaw)) bad('$.sort', `one of ${SORTS.join(', ')}`);
  const signedRaw = params.get('signed') || undefined;
  if (signedRaw !== undefined && signedRaw !== 'true' && signedRaw !== 'false') bad('$.signed', 'true or false');
  const annotations: [string, string][] = [];
  for (const [k, v] of params) {
    if (!k.startsWith('annotation.')) continue;
    const key = k.slice('annotation.'.length);
    if (key === '' || key.length > MAX_FILTER || v.length > MAX_FILTER) bad(`$.${k.slice(0, 64)}`, `key and value of 1 to ${MAX_FILTER} characters`);
    annotations.push([key, v]);
  }
  if (annotations.length > 8) bad('$.annotation', 'at most 8 annotation filters');
  const include = params.get('include') ?? '';
  if (include !== '' && include !== 'referrers') bad('$.include', 'only "referrers"');
  const terms = ftsTerms(q);
  return {
    q,
    type: bounded('type', params.get('type') ?? undefined),
    namespace: bounded('namespace', params.get('namespace') ?? undefined),
    annotations,
    signed: signedRaw === undefined ? undefined : signedRaw === 'true',
    includeReferrers: include === 'referrers',
    sort: (sortRaw as Sort | undefined) ?? (terms.length > 0 ? 'relevance' : 'updated'),
    page: intParam('page', params.get('page') ?? undefined, 1, MAX_PAGE),
    perPage: intParam('per_page', params.get('per_page') ?? undefined, 20, MAX_PER_PAGE),
  };
}

/**
 * Words of `q` as FTS5 phrases, quotes doubled (FTS5's only escape inside a string); the last
 * word is a prefix (`"wor"*`, search as you type). Only the last: a prefix phrase merges every
 * matching term's full document list before the AND can skip, which cost ~10 ms per common
 * word at 100k documents (the bench), while an exact phrase lets FTS5 skip to the rare word's
 * rows. A word without a letter or digit would tokenize to nothing (an FTS5 syntax error), so
 * it is dropped: such a search simply matches everything else the words say.
 */
export function ftsTerms(q: string): string[] {
  const words = plainWords(q).map((w) => `"${w.replace(/"/g, '""')}"`);
  if (words.length > 0) words[words.length - 1] += '*';
  return words;
}

/** The words of `q` ftsTerms reads, as typed (PostgreSQL's search_query takes them so: drizzle-pg/0001_search.sql). */
export function plainWords(q: string): string[] {
  return q
    .split(/\s+/)
    .filter((w) => /[\p{L}\p{N}]/u.test(w))
    .slice(0, MAX_TERMS);
}
