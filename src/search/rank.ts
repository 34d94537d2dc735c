/**
 * Relevance as an SQL expression over a search's matches (at most FACET_SCAN of them), instead
 * of FTS5's bm25: bm25 first counts every query word's documents by reading its whole doclist
 * (~4 ms per common word at 100k documents, whatever the page), then ranks each match. Here a
 * word counts by where it matched — name 10, tag 5, type 1, else (it matched somewhere) its
 * annotations 2 — each name/tag/type hit weighted up for a short column (the name `shop`
 * outranks `shop/web-frontend` for "shop"); ties go to the lower document id. Names, tags and
 * types are ASCII (their grammars), so their tokens are their runs between `/ . _ - +`, matched
 * whole (the last word's last token as a prefix, as the full-text match does).
 */
const MAX_TERMS = 16;

/** Tokens as FTS5's unicode61 makes them: case and diacritics folded, split on non-alphanumerics. */
export function tokens(s: string): string[] {
  const folded = /^[\x00-\x7f]*$/.test(s) ? s.toLowerCase() : s.toLowerCase().normalize('NFKD').replace(/\p{M}+/gu, '');
  return folded.split(/[^\p{L}\p{N}]+/u).filter((t) => t !== '');
}

/** The words of `q` as ftsTerms reads them, each as its tokens. */
export function queryWords(q: string): string[][] {
  return q
    .split(/\s+/)
    .filter((w) => /[\p{L}\p{N}]/u.test(w))
    .slice(0, MAX_TERMS)
    .map(tokens)
    .filter((w) => w.length > 0);
}

/** A column as ' tok tok tok ' (separators to spaces). */
const spaced = (col: string) => `(' ' || lower(replace(replace(replace(replace(replace(${col}, '/', ' '), '.', ' '), '_', ' '), '-', ' '), '+', ' ')) || ' ')`;
const tokenCount = (col: string) => `max(1, length(trim(${col})) - length(replace(trim(${col}), ' ', '')) + 1)`;
const COLUMNS = [
  { text: 'r', count: 'rn', weight: 10 },
  { text: 't', count: 'tn', weight: 5 },
  { text: 'y', count: 'yn', weight: 1 },
];
const ANNOTATION_WEIGHT = 2;

/**
 * The columns relevanceSql reads, computed once per match: select them from rows with
 * `repository`, `tags` and `type` into a materialized table, then RELEVANCE_COUNTS from that.
 */
export const RELEVANCE_COLUMNS = `${spaced('repository')} AS r, ${spaced('tags')} AS t, ${spaced('type')} AS y`;
export const RELEVANCE_COUNTS = `${tokenCount('r')} AS rn, ${tokenCount('t')} AS tn, ${tokenCount('y')} AS yn`;

/** `ORDER BY` this (descending) for relevance over RELEVANCE_COLUMNS; its `?` take `args` in order. */
export function relevanceSql(q: string): { sql: string; args: string[] } {
  const words = queryWords(q);
  const parts: string[] = [];
  const args: string[] = [];
  words.forEach((word, wi) => {
    const last = wi === words.length - 1;
    const needles = word.map((t, ti) => (last && ti === word.length - 1 ? ` ${t}` : ` ${t} `));
    const hits = COLUMNS.map((c) => `(${needles.map(() => `instr(${c.text}, ?) > 0`).join(' AND ')})`);
    const scored = COLUMNS.map((c, i) => `(${hits[i]} * ${c.weight} * (1.0 + 1.0 / ${c.count}))`);
    parts.push(`(${scored.join(' + ')} + (NOT (${hits.join(' OR ')})) * ${ANNOTATION_WEIGHT})`);
    // Each column's needles once for its score, then once more for "found in any of them".
    for (let pass = 0; pass < 2; pass++) for (const _ of COLUMNS) args.push(...needles);
  });
  return { sql: parts.length > 0 ? parts.join(' + ') : '0', args };
}
