/**
 * Reads the search index (drizzle/0011_search.sql, 0012_search_speed.sql: `search_docs` + FTS5
 * `search_fts`, kept in sync by triggers in the writers' own transactions).
 *
 * Visibility is part of the SQL, not a filter on a page afterwards, so counts, facets and pages
 * are computed over exactly what the caller may pull and a private name can never shape a count
 * or a page boundary. Two forms: the caller's pullable set as SQL (public, or its namespaces;
 * exact for callers whose rights are that rule — search/index.ts readableFor), with the pull
 * decision judging every returned row; or the decision itself called from SQL for every row
 * (`search_visible(repository, public)`, memoised per repository) when no exact SQL form exists.
 * The repository's visibility is a column of the document (kept by triggers on
 * repository_visibility: a function may not query the connection it runs on), and
 * better-sqlite3 is synchronous, so the per-request predicate cannot be observed by another
 * request. On PostgreSQL (drizzle-pg/0001_search.sql; pg-query.ts) a tsvector index stands in
 * for FTS5 and the per-row decision is asked before the query, once per candidate repository.
 */
import { isPostgres, type Db } from '../meta/db.js';
import { pgTextMatch, pgVisible, type TextMatch } from './pg-query.js';
import { ftsTerms, type SearchQuery } from './query.js';
import { RELEVANCE_COLUMNS, relevanceSql } from './rank.js';

export interface SearchHit {
  repository: string;
  digest: string;
  type: string;
  mediaType: string;
  subject: string | null;
  tags: string[];
  annotations: Record<string, string>;
  signed: boolean;
  size: number;
  updatedAt: string;
  pull: string;
}

export interface Facet {
  value: string;
  count: number;
}

export interface SearchResult {
  /** Exact up to FACET_SCAN matches; beyond, FACET_SCAN with `totalExact: false` ("2000+"). */
  total: number;
  totalExact: boolean;
  /** Facet counts cover every match; false: they describe the first FACET_SCAN matches in index order. */
  facetsExact: boolean;
  /** The order used: as asked, except `newest` when relevance was asked of more than FACET_SCAN matches. */
  sort: 'relevance' | 'newest' | 'name' | 'updated';
  page: number;
  perPage: number;
  results: SearchHit[];
  facets: { type: Facet[]; namespace: Facet[]; signed: Facet[] };
}

interface DocRow {
  id: number;
  repository: string;
  digest: string;
  type: string;
  media_type: string;
  subject: string | null;
  tags: string;
  annotations: string | null;
  signed: number;
  size: number;
  updated_at: number;
  public: number;
}

const DOC_COLUMNS = 'd.repository AS repository, d.digest AS digest, d.type AS type, d.media_type AS media_type, d.subject AS subject, d.tags AS tags, d.annotations AS annotations, d.signed AS signed, d.size AS size, d.updated_at AS updated_at, d.public AS public';

interface FacetRow {
  type: string;
  namespace: string;
  signed: number;
  n: number;
  /** capped(): the greatest row number in the group. */
  last?: number;
}

/**
 * Facet counts over the first FACET_SCAN of at most FACET_SCAN + 1 rows (`rows`: a SELECT of
 * type, namespace, signed with that LIMIT); `last` says how many rows there were. (CASE, not
 * sum(rn <= N): PostgreSQL's sum(boolean) is the schema's SQL function, called per row.)
 */
const capped = (rows: string) =>
  `SELECT type, namespace, signed, sum(CASE WHEN rn <= ${FACET_SCAN} THEN 1 ELSE 0 END) AS n, max(rn) AS last FROM (SELECT type, namespace, signed, row_number() OVER () AS rn FROM (${rows}) AS x) AS y GROUP BY type, namespace, signed`;
const countOf = (rows: FacetRow[]): number => rows.reduce((m, r) => Math.max(m, r.last ?? 0), 0);

/** More namespaces than this and FTS5 is not asked to narrow by them (the SQL filter still does). */
const MAX_SCOPE_NAMESPACES = 32;
const FACET_LIMIT = 20;
/**
 * Totals and facets count at most this many matches: each match costs a row lookup (~2 µs), so
 * counting all 23k matches of a common word in 100k documents cost ~40 ms (the bench), and
 * "2000+ results" answers the same need.
 */
export const FACET_SCAN = 2_000;

function parseAnnotations(raw: string | null): Record<string, string> {
  if (!raw) return {};
  try {
    const v = JSON.parse(raw) as unknown;
    if (typeof v !== 'object' || v === null) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

/** A cheap SQL form of what the caller may pull: public repositories, these namespaces, these repositories. */
export interface Readable {
  namespaces: string[];
  /** Exact names (a bearer token's grants). */
  repositories?: string[];
  /** Public repositories are readable (default true; bearer tokens: false). */
  publicToo?: boolean;
  /** The set is exactly what the pull check allows (not only a superset). */
  exact?: boolean;
}

/** The readable set as disjoint SQL conditions, each answerable from an index; none: nothing. */
function armsOf(r: Readable): Arm[] {
  const list = (xs: string[]) => xs.map(() => '?').join(', ');
  const arms: Arm[] = [];
  if (r.publicToo !== false) arms.push({ sql: 'd.public = 1', args: [] });
  const priv = r.publicToo !== false ? 'd.public = 0 AND ' : '';
  if (r.namespaces.length > 0) arms.push({ sql: `${priv}d.namespace IN (${list(r.namespaces)})`, args: r.namespaces });
  const repos = r.repositories ?? [];
  if (repos.length > 0) {
    const notNs = r.namespaces.length > 0 ? ` AND d.namespace NOT IN (${list(r.namespaces)})` : '';
    arms.push({ sql: `${priv}d.repository IN (${list(repos)})${notNs}`, args: [...repos, ...(r.namespaces.length > 0 ? r.namespaces : [])] });
  }
  return arms.length > 0 ? arms : [{ sql: '1 = 0', args: [] }];
}

/** The arms as one condition (none when the only arm is "everything"). */
const supersetOf = (arms: Arm[]): string[] => (arms.length > 1 ? [`(${arms.map((a) => `(${a.sql})`).join(' OR ')})`] : arms[0]!.sql ? [arms[0]!.sql] : []);

interface Arm {
  sql: string;
  args: unknown[];
}

/**
 * What the full-text index is asked besides the words, to narrow inside it: supersets of exact
 * SQL conditions the search applies anyway, so they never change an answer. A namespace is the
 * first word(s) of the repository name; the caller's readable set is "public, or a name holding
 * one of these" (too many names, or a name with no word: not narrowed).
 */
export interface Narrowing {
  namespace?: string;
  within?: { names: string[]; publicToo: boolean };
  excludeReferrers: boolean;
}

const hasWord = (s: string) => /[\p{L}\p{N}]/u.test(s);

function narrowing(query: SearchQuery, readable?: Readable): Narrowing {
  const names = [...(readable?.namespaces ?? []), ...(readable?.repositories ?? [])];
  return {
    ...(query.namespace !== undefined && hasWord(query.namespace) ? { namespace: query.namespace } : {}),
    ...(readable && names.length <= MAX_SCOPE_NAMESPACES && names.every(hasWord) ? { within: { names, publicToo: readable.publicToo !== false } } : {}),
    excludeReferrers: !query.includeReferrers,
  };
}

/** The FTS5 MATCH string (`terms`: ftsTerms) and the join FTS5 drives. */
function ftsMatch(terms: string[], n: Narrowing): TextMatch {
  const phrase = (s: string) => `"${s.replace(/"/g, '""')}"`;
  let match = terms.join(' AND ');
  if (n.namespace !== undefined) match += ` AND {repository} : ${phrase(n.namespace)}`;
  if (n.within) {
    const alternatives = [...(n.within.publicToo ? ['{scope} : "public"'] : []), ...n.within.names.map((name) => `{repository} : ${phrase(name)}`)];
    if (alternatives.length > 0) match = `(${match}) AND (${alternatives.join(' OR ')})`;
  }
  if (n.excludeReferrers) match = `(${match}) NOT {scope} : "referrer"`;
  return {
    // CROSS JOIN: FTS5 drives (never a scan of the public index probing FTS5 per row).
    from: 'search_fts f CROSS JOIN search_docs d ON d.id = f.rowid',
    cond: 'search_fts MATCH ?',
    args: [match],
    count: (limit) => `SELECT count(*) FROM (SELECT rowid FROM search_fts WHERE search_fts MATCH ? LIMIT ${limit})`,
  };
}

/** Whether the caller may pull `repository`, given whether it is public. Must not touch the database. */
export type PullCheck = (repository: string, isPublic: boolean) => boolean;

export class SearchStore {
  /** Set for the duration of one synchronous query; null: everything is visible. */
  private visible: PullCheck | null = null;
  /** The rows of the last result (synchronous, so never another request's). */
  private lastRows: DocRow[] = [];

  private readonly pg: boolean;

  constructor(private readonly db: Db) {
    this.pg = isPostgres(db);
    // PostgreSQL cannot call back into JS: pgVisible asks the decision before the query instead.
    if (this.pg) return;
    db.$client.function('search_visible', { deterministic: false }, (repository: unknown, visibility: unknown) => {
      const check = this.visible;
      if (check === null) return 1;
      return typeof repository === 'string' && check(repository, visibility === 1) ? 1 : 0;
    });
  }

  /** Runs `fn` with `canPull` as the visibility predicate (null: the caller sees everything). */
  private withVisibility<T>(canPull: PullCheck | null, fn: () => T): T {
    const memo = new Map<string, boolean>();
    this.visible = canPull === null ? null : (r, pub) => {
      let v = memo.get(r);
      if (v === undefined) memo.set(r, (v = canPull(r, pub)));
      return v;
    };
    try {
      return fn();
    } finally {
      this.visible = null;
    }
  }

  /**
   * `readable`: when given, the caller's pullable repositories as SQL can test them cheaply
   * (public ones, and these namespaces). `exact`: that set is exactly what `canPull` allows
   * (capabilities.ts `catalogScope`, property-tested against `decide`), so totals and facets
   * are counted in SQL alone and `canPull` judges the returned rows; should it refuse one, the
   * search runs again with `canPull` deciding every row in SQL. Otherwise (bearer tokens, keys
   * limited to patterns) `canPull` always decides every row.
   */
  search(query: SearchQuery, canPull: PullCheck | null, readable?: Readable): SearchResult {
    const terms = ftsTerms(query.q);
    const where: string[] = [];
    const args: unknown[] = [];
    if (!query.includeReferrers) where.push('d.subject IS NULL');
    if (query.type !== undefined) (where.push('d.type = ?'), args.push(query.type));
    if (query.namespace !== undefined) (where.push('d.namespace = ?'), args.push(query.namespace));
    if (query.signed !== undefined) (where.push('d.signed = ?'), args.push(query.signed ? 1 : 0));
    for (const [k, v] of query.annotations) {
      where.push('EXISTS (SELECT 1 FROM json_each(d.annotations) WHERE json_each.key = ? AND json_each.value = ?)');
      args.push(k, v);
    }
    const scoped = canPull !== null && readable !== undefined ? readable : undefined;
    // The set as disjoint arms (public; private in one of the caller's namespaces), each
    // answerable from an index in the order asked — an OR of the two is a full sort instead.
    const arms: Arm[] = !scoped ? [{ sql: '', args: [] }] : armsOf(scoped);
    const perRow = canPull !== null && !scoped?.exact;
    const within = terms.length === 0 ? undefined : narrowing(query, scoped);
    const text = !within ? undefined : this.pg ? pgTextMatch(query.q, within) : ftsMatch(terms, within);
    if (perRow && this.pg) {
      const conds = [...(text ? [text.cond] : []), ...supersetOf(arms), ...where];
      const visible = pgVisible(this.db, text?.from ?? 'search_docs d', conds, [...(text?.args ?? []), ...arms.flatMap((a) => a.args), ...args], canPull);
      where.push(visible.sql);
      args.push(...visible.args);
    } else if (perRow) where.push('search_visible(d.repository, d.public)');
    const result = this.withVisibility(canPull, () => (text ? this.fullText(query, text, where, args, arms) : this.browse(query, where, args, arms)));
    if (canPull === null || perRow) return result;
    // The final word on every returned row is the evaluator's.
    const memo = new Map<string, boolean>();
    const refused = this.lastRows.some((r) => {
      let ok = memo.get(r.repository);
      if (ok === undefined) memo.set(r.repository, (ok = canPull(r.repository, r.public === 1)));
      return !ok;
    });
    return refused ? this.search(query, canPull, { ...scoped!, exact: false }) : result;
  }

  /** No words: facets from a covering index, the page in index order (merged across the arms). */
  private browse(query: SearchQuery, where: string[], args: unknown[], arms: Arm[]): SearchResult {
    const sqlite = this.db.$client;
    const armSql = (cols: string) =>
      arms.map((a) => `SELECT ${cols} FROM search_docs d${[...where, ...(a.sql ? [a.sql] : [])].length > 0 ? ` WHERE ${[...(a.sql ? [a.sql] : []), ...where].join(' AND ')}` : ''}`).join(' UNION ALL ');
    const armArgs = arms.flatMap((a) => [...a.args, ...args]);
    const facetRows = sqlite
      .prepare(capped(`${armSql('d.type AS type, d.namespace AS namespace, d.signed AS signed')} LIMIT ${FACET_SCAN + 1}`))
      .all(...armArgs) as FacetRow[];
    const counted = countOf(facetRows);
    const sort: SearchResult['sort'] = query.sort === 'name' ? 'name' : 'updated';
    const order = sort === 'name' ? 'ORDER BY repository, id' : 'ORDER BY updated_at DESC, id DESC';
    const rows = sqlite
      .prepare(`${armSql(`${DOC_COLUMNS}, d.id AS id`)} ${order} LIMIT ? OFFSET ?`)
      .all(...armArgs, query.perPage, (query.page - 1) * query.perPage) as DocRow[];
    return this.result(query, sort, counted, facetRows, rows);
  }

  /**
   * Words: the index narrows (ftsMatch, pgTextMatch), one pass over at most FACET_SCAN + 1
   * matches gives the total and facets; when that is every match, relevance is computed here
   * over them and only the page's rows are read.
   */
  private fullText(query: SearchQuery, text: TextMatch, where: string[], args: unknown[], arms: Arm[]): SearchResult {
    const sqlite = this.db.$client;
    const whereSql = [text.cond, ...supersetOf(arms), ...where].join(' AND ');
    const allArgs = [...text.args, ...arms.flatMap((a) => a.args), ...args];
    const from = text.from;
    const offset = (query.page - 1) * query.perPage;
    const ranked = () => this.ranked(query, from, whereSql, allArgs, offset);
    // The index alone counts its matches without reading a row (~0.5 ms): when they are few, rank.
    if (query.sort === 'relevance' && (sqlite.prepare(text.count(FACET_SCAN + 1)).pluck().get(...text.args) as number) <= FACET_SCAN) {
      const r = ranked();
      if (r) return r;
    }
    const facetRows = sqlite
      .prepare(capped(`SELECT d.type AS type, d.namespace AS namespace, d.signed AS signed FROM ${from} WHERE ${whereSql} LIMIT ${FACET_SCAN + 1}`))
      .all(...allArgs) as FacetRow[];
    const counted = countOf(facetRows);
    // Filters FTS5 cannot see (type, annotations…) left few: rank after all.
    if (query.sort === 'relevance' && counted <= FACET_SCAN) {
      const r = ranked();
      if (r) return r;
    }
    // Beyond FACET_SCAN matches relevance is not computed: the page is the newest matches (FTS5
    // walks its index backwards and stops at the page), and the answer says so in `sort`.
    const sort: SearchResult['sort'] = query.sort === 'relevance' ? 'newest' : query.sort;
    const order = { newest: 'ORDER BY f.rowid DESC', name: 'ORDER BY d.repository, d.id', updated: 'ORDER BY d.updated_at DESC, d.id DESC' }[sort as 'newest' | 'name' | 'updated'];
    const rows = sqlite.prepare(`SELECT ${DOC_COLUMNS}, d.id AS id FROM ${from} WHERE ${whereSql} ${order} LIMIT ? OFFSET ?`).all(...allArgs, query.perPage, offset) as DocRow[];
    return this.result(query, sort, counted, facetRows, rows);
  }

  /**
   * At most FACET_SCAN matches, in relevance order: one statement gives the facets and, ranked in
   * SQL (rank.ts; a row's words computed once, materialized), the page's ids; then the page's
   * rows are read.
   */
  private ranked(query: SearchQuery, from: string, whereSql: string, args: unknown[], offset: number): SearchResult | null {
    const sqlite = this.db.$client;
    const rel = relevanceSql(query.q);
    // `materialized` in lower case: the pg facade quotes a capitalised word after AS as an alias.
    const out = sqlite
      .prepare(
        `WITH m AS materialized (SELECT d.id AS id, d.type AS type, d.namespace AS namespace, d.signed AS signed, ${RELEVANCE_COLUMNS} FROM ${from} WHERE ${whereSql} LIMIT ${FACET_SCAN + 1})
         SELECT 0 AS page, type AS a, namespace AS b, signed AS c, count(*) AS n, NULL AS id, NULL AS score, NULL AS len FROM m GROUP BY type, namespace, signed
         UNION ALL SELECT 1, NULL, NULL, NULL, NULL, id, score, len FROM (SELECT id, ${rel.sql} AS score, len FROM m ORDER BY score DESC, len, id LIMIT ? OFFSET ?) AS p`,
      )
      .raw(true)
      .all(...args, ...rel.args, query.perPage, offset) as [number, string | null, string | null, number | null, number | null, number | null, number | null, number | null][];
    // Facet rows and page rows in separate columns: PostgreSQL types each column once.
    const facetRows = out.filter((r) => r[0] === 0).map(([, type, namespace, signed, n]) => ({ type: String(type), namespace: String(namespace), signed: Number(signed), n: Number(n) }));
    const ids = out
      .filter((r) => r[0] === 1)
      .map(([, , , , , id, score, len]) => ({ id: Number(id), score: Number(score), len: Number(len) }))
      .sort((a, b) => b.score - a.score || a.len - b.len || a.id - b.id)
      .map((r) => r.id);
    const byId = new Map(
      ids.length === 0 ? [] : (sqlite.prepare(`SELECT ${DOC_COLUMNS}, d.id AS id FROM search_docs d WHERE d.id IN (${ids.map(() => '?').join(', ')})`).all(...ids) as DocRow[]).map((r) => [r.id, r]),
    );
    const counted = facetRows.reduce((n, r) => n + r.n, 0);
    // More than FACET_SCAN only if another process wrote since the count: not all were ranked.
    return counted > FACET_SCAN ? null : this.result(query, 'relevance', counted, facetRows, ids.map((id) => byId.get(id)!));
  }

  private result(query: SearchQuery, sort: SearchResult['sort'], counted: number, facetRows: FacetRow[], rows: DocRow[]): SearchResult {
    this.lastRows = rows;
    const tally = (key: (r: FacetRow) => string): Facet[] => {
      const m = new Map<string, number>();
      for (const r of facetRows) if (r.n > 0) m.set(key(r), (m.get(key(r)) ?? 0) + r.n);
      return [...m].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : 1)).slice(0, FACET_LIMIT);
    };
    return {
      total: Math.min(counted, FACET_SCAN),
      totalExact: counted <= FACET_SCAN,
      facetsExact: counted <= FACET_SCAN,
      sort,
      page: query.page,
      perPage: query.perPage,
      results: rows.map((r) => ({
        repository: r.repository,
        digest: r.digest,
        type: r.type,
        mediaType: r.media_type,
        subject: r.subject,
        tags: r.tags === '' ? [] : r.tags.split(' '),
        annotations: parseAnnotations(r.annotations),
        signed: r.signed === 1,
        size: r.size,
        updatedAt: new Date(r.updated_at).toISOString(),
        pull: `${r.repository}@${r.digest}`,
      })),
      facets: { type: tally((r) => r.type), namespace: tally((r) => r.namespace), signed: tally((r) => (r.signed === 1 ? 'true' : 'false')) },
    };
  }
}
