/**
 * The SQL our stores write (SQLite dialect, as drizzle's sqlite-core and hand-written statements
 * emit it) rewritten for PostgreSQL where the difference is mechanical. What is not mechanical
 * (FTS5, PRAGMAs, rowid) is branched at the call site on `isPostgres(db)`; SQLite functions the
 * raw SQL relies on (instr, group_concat, json_each, json_extract) exist in the pg schema.
 */

/** AUTOINCREMENT tables and their id column: an INSERT into one reports the new id (lastInsertRowid). */
export const AUTOINCREMENT_COLUMNS: Readonly<Record<string, string>> = {
  principals: 'id',
  repositories: 'id',
  bundles: 'id',
  bundle_history: 'id',
  events: 'seq',
  scan_jobs: 'id',
  search_docs: 'id',
};

export interface TranslatedSql {
  text: string;
  /** For INSERTs into an AUTOINCREMENT table: the column RETURNING adds, unless the SQL returns already. */
  returningId?: string;
  /** The statement is a plain transaction control statement (BEGIN / COMMIT / ROLLBACK). */
  control?: 'begin' | 'commit' | 'rollback';
}

const cache = new Map<string, TranslatedSql>();

export function translate(sql: string): TranslatedSql {
  let t = cache.get(sql);
  if (!t) {
    t = translateUncached(sql);
    if (cache.size > 5000) cache.clear();
    cache.set(sql, t);
  }
  return t;
}

function translateUncached(sql: string): TranslatedSql {
  const trimmed = sql.trim().replace(/;$/, '').trim();
  const head = trimmed.slice(0, 32).toLowerCase();
  if (/^begin( (deferred|immediate|exclusive))?( transaction)?$/.test(head)) return { text: trimmed, control: 'begin' };
  if (/^(commit|end)( transaction)?$/.test(head)) return { text: 'COMMIT', control: 'commit' };
  if (/^rollback( transaction)?$/.test(head)) return { text: 'ROLLBACK', control: 'rollback' };

  // drizzle inlines the schema's SQL defaults into INSERTs: SQLite's clock in ms, as PostgreSQL writes it.
  let text = rewriteOutsideStrings(trimmed.replaceAll("(unixepoch('subsec') * 1000)", '(extract(epoch from clock_timestamp()) * 1000)::bigint'));
  let orIgnore = false;
  text = text.replace(/^insert\s+or\s+ignore\s+into\b/i, () => {
    orIgnore = true;
    return 'INSERT INTO';
  });
  if (orIgnore) text = insertBeforeReturning(text, ' ON CONFLICT DO NOTHING');
  // drizzle qualifies a composite conflict target ("t"."a", "t"."b"); PostgreSQL accepts only bare columns there.
  text = text.replace(/\bon conflict \(([^)]*)\)/i, (m, cols: string) => m.replace(cols, cols.replace(/"[a-z_][a-z0-9_]*"\./gi, '')));

  const insert = /^insert\s+into\s+"?([a-z_]+)"?/i.exec(text);
  let returningId: string | undefined;
  if (insert) {
    const col = AUTOINCREMENT_COLUMNS[insert[1]!.toLowerCase()];
    if (col && !/\breturning\b/i.test(text)) {
      returningId = col;
      text += ` RETURNING "${col}"`;
    }
  }
  return { text, returningId };
}

function insertBeforeReturning(text: string, clause: string): string {
  const m = /\s+returning\s/i.exec(text);
  return m ? text.slice(0, m.index) + clause + text.slice(m.index) : text + clause;
}

/**
 * Outside string literals: `?` → `$n`, backtick identifiers → double quotes, and unquoted
 * mixed-case aliases (`AS repoId`) quoted, since PostgreSQL folds them to lower case and the
 * callers read the row by the alias they wrote (all-capital words are SQL: `AS SELECT`).
 */
function rewriteOutsideStrings(sql: string): string {
  let out = '';
  let n = 0;
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === "'") {
      const end = endOfQuoted(sql, i, "'");
      out += sql.slice(i, end);
      i = end;
    } else if (ch === '"') {
      const end = endOfQuoted(sql, i, '"');
      out += sql.slice(i, end);
      i = end;
    } else if (ch === '`') {
      const end = endOfQuoted(sql, i, '`');
      out += '"' + sql.slice(i + 1, end - 1).replace(/"/g, '""') + '"';
      i = end;
    } else if (ch === '?') {
      let j = i + 1;
      while (j < sql.length && sql[j]! >= '0' && sql[j]! <= '9') j++;
      out += '$' + (j > i + 1 ? sql.slice(i + 1, j) : String(++n));
      i = j;
    } else {
      let j = i;
      while (j < sql.length && !"'\"`?".includes(sql[j]!)) j++;
      // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE is its equivalent.
      out += sql.slice(i, j).replace(/\bLIKE\b/gi, 'ILIKE').replace(/\bAS\s+([A-Za-z_][A-Za-z0-9_]*)\b/gi, (m, alias: string) => (/[A-Z]/.test(alias) && /[a-z]/.test(alias) && !SQL_TYPES.has(alias.toLowerCase()) ? `AS "${alias}"` : m));
      i = j;
    }
  }
  return out;
}

const SQL_TYPES = new Set(['integer', 'int', 'bigint', 'text', 'real', 'blob', 'numeric', 'bytea', 'json', 'jsonb', 'boolean', 'varchar', 'double']);

function endOfQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else i++;
  }
  return sql.length;
}
