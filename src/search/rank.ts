/**
 * Relevance as an SQL expression over a search's matches (at most FACET_SCAN of them), instead
 * of FTS5's bm25: bm25 first counts every query word's documents by reading its whole doclist
 * (~4 ms per common word at 100k documents, whatever the page), then ranks each match. Here a
 * word counts by where it matched — name 10, tag 5, type 1, else (it matched somewhere) its
 * annotations 2; equal scores go to the shorter name (`shop` before `shop/web-frontend` for
 * "shop"), then the lower document id. Names, tags and types are ASCII (their grammars), so
 * their tokens are their runs between `/ . _ - +`, matched whole (the last word's last token as
 * a prefix, as the full-text match does).
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
const COLUMNS = [
  { text: 'r', weight: 10 },
  { text: 't', weight: 5 },
  { text: 'y', weight: 1 },
];
const ANNOTATION_WEIGHT = 2;

/**
 * The columns relevanceSql reads, computed once per match: select them from the document `d`
 * into a materialized table, then order it by relevanceSql.
 */
export const RELEVANCE_COLUMNS = `${spaced('d.repository')} AS r, ${spaced('d.tags')} AS t, ${spaced('d.type')} AS y, length(d.repository) AS len`;

/**
 * Relevance over RELEVANCE_COLUMNS: `ORDER BY ${sql} DESC, len, id` (equal scores: the shorter
 * name, then the lower id). Its `?` take `args` in order.
 */
export function relevanceSql(q: string): { sql: string; args: string[] } {
  const words = queryWords(q);
  const parts: string[] = [];
  const args: string[] = [];
  words.forEach((word, wi) => {
    const last = wi === words.length - 1;
    const needles = word.map((t, ti) => (last && ti === word.length - 1 ? ` ${t}` : ` ${t} `));
    const hits = COLUMNS.map((c) => `(${needles.map(() => `instr(${c.text}, ?) > 0`).join(' AND ')})`);
    // A word found in none of these columns matched in the annotations (the nullif below).
    parts.push(`CASE WHEN ${hits[0]} THEN ${COLUMNS[0]!.weight} ELSE 0 END + CASE WHEN ${hits[1]} THEN ${COLUMNS[1]!.weight} ELSE 0 END + CASE WHEN ${hits[2]} THEN ${COLUMNS[2]!.weight} ELSE 0 END`);
    for (const _ of COLUMNS) args.push(...needles);
  });
  return { sql: parts.length > 0 ? parts.map((p) => `coalesce(nullif(${p}, 0), ${ANNOTATION_WEIGHT})`).join(' + ') : '0', args };
}
