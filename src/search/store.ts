/**
 * Reads the search index (drizzle/0011_search.sql: `search_docs` + FTS5 `search_fts`, kept in
 * sync by triggers in the writers' own transactions).
 *
 * Visibility is part of the SQL, not a filter on a page afterwards: a user-defined function
 * `search_visible(repository, public)` asks the request's pull decision (memoised per
 * repository), so counts, facets and pages are computed over exactly what the caller may pull,
 * and a private name can never shape a count or a page boundary. The repository's visibility
 * is a column of the document (kept by triggers on repository_visibility: a function may not
 * query the connection it runs on), and better-sqlite3 is synchronous, so the per-request
 * predicate cannot be observed by another request.
 */
import type { Db } from '../meta/db.js';
import { ftsTerms, type SearchQuery } from './query.js';

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
  /** The order used: as asked, except `newest` when relevance was asked of more than FACET_SCAN matches. */
  sort: 'relevance' | 'newest' | 'name' | 'updated';
  page: number;
  perPage: number;
  results: SearchHit[];
  facets: { type: Facet[]; namespace: Facet[]; signed: Facet[] };
}

interface DocRow {
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
}

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

/** Whether the caller may pull `repository`, given whether it is public. Must not touch the database. */
export type PullCheck = (repository: string, isPublic: boolean) => boolean;

export class SearchStore {
  /** Set for the duration of one synchronous query; null: everything is visible. */
  private visible: PullCheck | null = null;

  constructor(private readonly db: Db) {
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
   * `readable`: when given, a superset of the caller's pullable repositories as SQL can test it
   * cheaply (public ones, and these namespaces); `canPull` still decides every row.
   */
  search(query: SearchQuery, canPull: PullCheck | null, readable?: { namespaces: string[] }): SearchResult {
    const terms = ftsTerms(query.q);
    const where: string[] = [];
    const args: unknown[] = [];
    let from = 'search_docs d';
    if (terms.length > 0) {
      from = 'search_fts f JOIN search_docs d ON d.id = f.rowid';
      where.push('search_fts MATCH ?');
      // A namespace is the first word(s) of the repository name: FTS5 narrows to names holding
      // it (intersecting lists, fast) and the exact `d.namespace = ?` below keeps only the right ones.
      const narrow = query.namespace !== undefined && /[\p{L}\p{N}]/u.test(query.namespace) ? [`{repository} : "${query.namespace.replace(/"/g, '""')}"`] : [];
      args.push([...terms, ...narrow].join(' AND '));
    }
    if (!query.includeReferrers) where.push('d.subject IS NULL');
    if (query.type !== undefined) (where.push('d.type = ?'), args.push(query.type));
    if (query.namespace !== undefined) (where.push('d.namespace = ?'), args.push(query.namespace));
    if (query.signed !== undefined) (where.push('d.signed = ?'), args.push(query.signed ? 1 : 0));
    for (const [k, v] of query.annotations) {
      where.push("EXISTS (SELECT 1 FROM json_each(d.annotations) WHERE json_each.key = ? AND json_each.value = ?)");
      args.push(k, v);
    }
    if (canPull !== null) {
      if (readable) {
        where.push(`(d.public = 1${readable.namespaces.length > 0 ? ` OR d.namespace IN (${readable.namespaces.map(() => '?').join(', ')})` : ''})`);
        args.push(...readable.namespaces);
      }
      where.push('search_visible(d.repository, d.public)');
    }
    const whereSql = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const sqlite = this.db.$client;
    return this.withVisibility(canPull, () => {
      // One pass for the total and the three facets over the same filtered set.
      const facetRows = sqlite
        .prepare(`SELECT type, namespace, signed, count(*) AS n FROM (SELECT d.type AS type, d.namespace AS namespace, d.signed AS signed FROM ${from} ${whereSql} LIMIT ${FACET_SCAN + 1}) GROUP BY type, namespace, signed`)
        .all(...args) as { type: string; namespace: string; signed: number; n: number }[];
      const counted = facetRows.reduce((s, r) => s + r.n, 0);
      // Relevance ranks every match (bm25 per row, ~90 ms for a word in 23k of 100k documents);
      // beyond FACET_SCAN matches the page is the newest matches instead (FTS5 walks its index
      // backwards and stops at the page), and the answer says so in `sort`.
      let sort: SearchResult['sort'] = query.sort === 'relevance' && terms.length === 0 ? 'updated' : query.sort;
      if (sort === 'relevance' && counted > FACET_SCAN) sort = 'newest';
      // Every order ends with the document id: equal keys never swap between pages.
      const order = {
        relevance: 'ORDER BY f.rank, d.id',
        newest: 'ORDER BY f.rowid DESC',
        name: 'ORDER BY d.repository, d.id',
        updated: 'ORDER BY d.updated_at DESC, d.id DESC',
      }[sort];
      const rows = sqlite
        .prepare(`SELECT d.repository, d.digest, d.type, d.media_type, d.subject, d.tags, d.annotations, d.signed, d.size, d.updated_at FROM ${from} ${whereSql} ${order} LIMIT ? OFFSET ?`)
        .all(...args, query.perPage, (query.page - 1) * query.perPage) as DocRow[];
      const tally = (key: (r: (typeof facetRows)[number]) => string): Facet[] => {
        const m = new Map<string, number>();
        for (const r of facetRows) m.set(key(r), (m.get(key(r)) ?? 0) + r.n);
        return [...m].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : 1)).slice(0, FACET_LIMIT);
      };
      return {
        total: Math.min(counted, FACET_SCAN),
        totalExact: counted <= FACET_SCAN,
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
    });
  }
}
