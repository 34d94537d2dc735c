/**
 * Relevance, computed over a search's candidates (at most FACET_SCAN of them) instead of FTS5's
 * bm25: bm25 first counts every query word's documents by reading its whole doclist (~4 ms per
 * common word at 100k documents, whatever the page), then ranks each match. Here a word counts
 * by where it matched — name 10, tag 5, annotation 2, type 1 — plus a bonus for a short column
 * (the name `shop` outranks `shop/web-frontend` for "shop"); ties go to the lower document id.
 * Tokens as FTS5's unicode61 makes them: case and diacritics folded, split on non-alphanumerics.
 */
const WEIGHTS = { repository: 10, tags: 5, type: 1 } as const;
const ANNOTATION_WEIGHT = 2;
const MAX_TERMS = 16;

export function tokens(s: string): string[] {
  // Names, tags and types are ASCII: skip the Unicode folding for them.
  const folded = /^[\x00-\x7f]*$/.test(s) ? s.toLowerCase() : s.toLowerCase().normalize('NFKD').replace(/\p{M}+/gu, '');
  return folded.split(/[^\p{L}\p{N}]+/u).filter((t) => t !== '');
}

/** The words of `q` as ftsTerms reads them, each as its tokens (the last word's last token is a prefix). */
export function queryWords(q: string): string[][] {
  return q
    .split(/\s+/)
    .filter((w) => /[\p{L}\p{N}]/u.test(w))
    .slice(0, MAX_TERMS)
    .map(tokens)
    .filter((w) => w.length > 0);
}

export interface Rankable {
  repository: string;
  tags: string;
  type: string;
}

export function score(doc: Rankable, words: string[][]): number {
  const columns = (Object.keys(WEIGHTS) as (keyof typeof WEIGHTS)[]).map((k) => ({ weight: WEIGHTS[k], toks: tokens(doc[k]) }));
  let total = 0;
  words.forEach((word, wi) => {
    const prefixAt = wi === words.length - 1 ? word.length - 1 : -1;
    let found = false;
    for (const { weight, toks } of columns) {
      if (toks.length === 0) continue;
      const has = word.every((t, ti) => (ti === prefixAt ? toks.some((x) => x.startsWith(t)) : toks.includes(t)));
      if (has) {
        total += weight * (1 + 1 / toks.length);
        found = true;
      }
    }
    // Every candidate matched every word somewhere: if not in these columns, in its annotations.
    if (!found) total += ANNOTATION_WEIGHT;
  });
  return total;
}
