/**
 * The two places where search SQL differs on PostgreSQL (drizzle-pg/0001_search.sql): the
 * full-text match, and the per-row pull decision, which SQLite asks of a JS function registered
 * on the connection (`search_visible`) and PostgreSQL cannot call.
 */
import type { Db } from '../meta/db.js';
import { plainWords } from './query.js';
import type { Narrowing } from './store.js';

/** A full-text condition over `from` (which joins the index `f` to the documents `d`). */
export interface TextMatch {
  from: string;
  cond: string;
  args: unknown[];
  /** Counts the index's matches, at most `limit` (its `?` take `args`). */
  count: (limit: number) => string;
}

/**
 * The words and the narrowing as search_query builds them into a tsquery, with the meaning of
 * the FTS5 MATCH string. search_query runs once per statement (an init plan), never per row;
 * the planner then sees an unknown query and lets the GIN index drive, as FTS5 does on SQLite.
 */
export function pgTextMatch(q: string, n: Narrowing): TextMatch {
  const cond = 'f.doc @@ (SELECT search_query(?, ?))';
  const within = { ...(n.namespace !== undefined ? { namespace: n.namespace } : {}), ...(n.within ? { names: n.within.names, public: n.within.publicToo } : {}), referrers: !n.excludeReferrers };
  return {
    from: 'search_fts f JOIN search_docs d ON d.id = f.rowid',
    cond,
    args: [JSON.stringify(plainWords(q)), JSON.stringify(within)],
    count: (limit) => `SELECT count(*) FROM (SELECT f.rowid FROM search_fts f WHERE ${cond} LIMIT ${limit}) AS c`,
  };
}

/**
 * `search_visible(d.repository, d.public)` as plain SQL: the pull decision is asked once per
 * (repository, visibility) among the candidate documents (`from`/`conds`: the search without
 * visibility), as the memoised SQLite function would ask it, and the answer becomes two name
 * lists. Visibility is part of the key, so a repository whose visibility changed between the
 * two statements is not shown under a decision made for the other visibility.
 */
export function pgVisible(db: Db, from: string, conds: string[], args: unknown[], canPull: (repository: string, isPublic: boolean) => boolean): { sql: string; args: unknown[] } {
  const rows = db.$client.prepare(`SELECT DISTINCT d.repository AS repository, d.public AS public FROM ${from}${conds.length > 0 ? ` WHERE ${conds.join(' AND ')}` : ''}`).all(...args) as { repository: string; public: number }[];
  const pub: string[] = [];
  const priv: string[] = [];
  for (const r of rows) if (canPull(r.repository, r.public === 1)) (r.public === 1 ? pub : priv).push(r.repository);
  const inList = 'd.repository IN (SELECT json_array_elements_text(?::json))';
  return { sql: `((d.public = 1 AND ${inList}) OR (d.public = 0 AND ${inList}))`, args: [JSON.stringify(pub), JSON.stringify(priv)] };
}
