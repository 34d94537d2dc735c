/**
 * Event-type globs (PRODUCT.md §11 "Webhooks"): `*` matches any run of characters, dots
 * included; everything else is literal. Matched without regular expressions (no backtracking
 * blow-up on hostile patterns): the classic greedy wildcard walk, O(pattern × text).
 */
export function globMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star !== -1) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
