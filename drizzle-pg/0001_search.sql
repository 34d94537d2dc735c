-- Search index for PostgreSQL (issue #15): the counterpart of SQLite's FTS5 table search_fts
-- (drizzle/0011_search.sql, 0012_search_speed.sql), kept the same way: a table of its own fed by
-- triggers on search_docs in the writer's transaction, so search_docs itself stays column for
-- column the SQLite table (test/unit/schema-equivalence.test.ts ignores search_fts*).
--
-- Matching follows FTS5's unicode61 tokenizer as src/search/rank.ts tokens() does: words are
-- runs of letters and digits, case folded, diacritics removed (NFKD, combining marks dropped),
-- everything else separates. PostgreSQL's own parser would keep `1.2.3`, `a-b`, `x.com` or
-- `/a/b` as single tokens, so the text is reduced to space-separated words first and the
-- 'simple' configuration (no stemming, no stop words) only lists them. The query side is built
-- from the same function (search_query), so a document and a query always agree on tokens.
--
-- FTS5 matches a phrase (one typed word, e.g. "web-frontend" = web followed by frontend) inside
-- one column. Here the columns are one tsvector; each gets a weight and neighbours never share
-- one (repository A, tags B, annotation_text C, type D, scope B), so a phrase asked with one
-- weight cannot run across a column boundary. A one-token word needs no weight (any column).
--
-- Runs once per schema inside one transaction; the runner sets search_path to the target schema.

-- The case folding and the letter/digit test of non-ASCII text need a Unicode-aware collation:
-- ICU's root collation when the server has ICU, else the database default (under a C locale
-- non-ASCII letters then count as separators; ASCII text is unaffected either way).
DO $do$
DECLARE coll text := CASE WHEN EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu') THEN 'und-x-icu' ELSE 'default' END;
BEGIN
  -- ASCII (octet_length = length, also true on SQL_ASCII databases) takes the cheap branch.
  EXECUTE format($f$
    CREATE FUNCTION search_words(t text) RETURNS text
      LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE WHEN t IS NULL THEN ''
        WHEN octet_length(t) = length(t) THEN regexp_replace(lower(t), '[^a-z0-9]+', ' ', 'g')
        ELSE regexp_replace(
          regexp_replace(normalize(lower(t COLLATE %1$I), NFKD), '[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+', '', 'g') COLLATE %1$I,
          '[^[:alnum:]]+', ' ', 'g') END $$ $f$, coll);
END $do$;

-- A document's words with their column's weight. annotation_text is cut at 200k characters: a
-- tsvector holds at most 1 MB and a larger one would refuse the whole write (FTS5 has no limit).
-- The scope words are also kept as '@public' / '@referrer', lexemes no typed word can produce:
-- weight B is shared with tags, so only these say "the scope column holds it" for the narrowing.
CREATE FUNCTION search_document(repository text, tags text, annotation_text text, type text, scope text) RETURNS tsvector
  LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
  SELECT setweight(to_tsvector('pg_catalog.simple', search_words(repository)), 'A')
    || setweight(to_tsvector('pg_catalog.simple', search_words(tags)), 'B')
    || setweight(to_tsvector('pg_catalog.simple', search_words(left(annotation_text, 200000))), 'C')
    || setweight(to_tsvector('pg_catalog.simple', search_words(type)), 'D')
    || setweight(to_tsvector('pg_catalog.simple', search_words(scope)), 'B')
    || array_to_tsvector(ARRAY(SELECT '@' || w FROM unnest(string_to_array(coalesce(scope, ''), ' ')) AS u(w) WHERE w <> '')) $$;

-- One typed word as tsquery text: its tokens as a phrase, the last a prefix when asked. With a
-- weight, the phrase must lie in a column of that weight; without one, a phrase of several
-- tokens is asked of each weight in turn (inside one column, as FTS5 matches a phrase), a single
-- token anywhere. NULL when the word has no token.
CREATE FUNCTION search_phrase(word text, weight text, prefix boolean) RETURNS text
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
DECLARE
  toks text[] := array_remove(string_to_array(search_words(word), ' '), '');
  n integer := cardinality(toks);
  alts text[] := '{}';
  w text;
BEGIN
  IF n = 0 THEN RETURN NULL; END IF;
  IF weight IS NULL AND n = 1 THEN
    RETURN '''' || toks[1] || '''' || CASE WHEN prefix THEN ':*' ELSE '' END;
  END IF;
  -- Tokens are letters and digits only: quoting them needs no escapes.
  FOREACH w IN ARRAY CASE WHEN weight IS NULL THEN ARRAY['A', 'B', 'C', 'D'] ELSE ARRAY[weight] END LOOP
    alts := alts || ('(' || array_to_string(ARRAY(
      SELECT '''' || t || ''':' || CASE WHEN prefix AND k = n THEN '*' ELSE '' END || w
        FROM unnest(toks) WITH ORDINALITY AS u(t, k) ORDER BY k), ' <-> ') || ')');
  END LOOP;
  RETURN '(' || array_to_string(alts, ' | ') || ')';
END $$;

-- The MATCH string search/store.ts builds for FTS5, as a tsquery. `words`: the typed words (a
-- JSON array, as src/search/query.ts plainWords splits q): all must match, each a phrase, the
-- last word's last token a prefix. `within` (JSON, optional): the pre-filters FTS5 is given,
-- "namespace" (its tokens in the name), "names" with "public" (one of these names, or a public
-- document), "referrers": false (not a referrer). Each is a superset of an exact SQL condition
-- the search also applies: they narrow inside the index and never change an answer.
CREATE FUNCTION search_query(words text, within text DEFAULT NULL) RETURNS tsquery
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
DECLARE
  n integer := json_array_length(words::json);
  f json := coalesce(within, '{}')::json;
  parts text[];
  alts text[];
BEGIN
  parts := array_remove(ARRAY(SELECT search_phrase(w, NULL, k = n) FROM json_array_elements_text(words::json) WITH ORDINALITY AS u(w, k) ORDER BY k), NULL);
  IF f ->> 'namespace' IS NOT NULL THEN
    parts := array_remove(parts || search_phrase(f ->> 'namespace', 'A', false), NULL);
  END IF;
  IF f -> 'names' IS NOT NULL THEN
    alts := array_remove(ARRAY(SELECT search_phrase(w, 'A', false) FROM json_array_elements_text(f -> 'names') AS u(w)), NULL);
    IF (f ->> 'public')::boolean THEN alts := alts || '''@public'''::text; END IF;
    IF cardinality(alts) > 0 THEN parts := parts || ('(' || array_to_string(alts, ' | ') || ')'); END IF;
  END IF;
  IF (f ->> 'referrers')::boolean IS FALSE THEN parts := parts || '!''@referrer'''::text; END IF;
  RETURN array_to_string(parts, ' & ')::tsquery;
END $$;

-- rowid: the search_docs id, named as FTS5 names it so the shared SQL orders by f.rowid.
CREATE TABLE "search_fts" (
	"rowid" bigint PRIMARY KEY NOT NULL,
	"doc" tsvector NOT NULL
);
CREATE INDEX "search_fts_doc" ON "search_fts" USING gin ("doc");

CREATE FUNCTION search_fts_sync() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN DELETE FROM search_fts WHERE rowid = OLD.id; END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO search_fts (rowid, doc) VALUES (NEW.id, search_document(NEW.repository, NEW.tags, NEW.annotation_text, NEW.type, NEW.scope));
  END IF;
  RETURN NULL;
END $$;
-- Named as the SQLite triggers that feed FTS5. Every tag write rewrites tags (and updated_at):
-- the index entry is rewritten only when a word can have changed.
CREATE TRIGGER "search_docs_ai" AFTER INSERT ON "search_docs" FOR EACH ROW EXECUTE FUNCTION search_fts_sync();
CREATE TRIGGER "search_docs_ad" AFTER DELETE ON "search_docs" FOR EACH ROW EXECUTE FUNCTION search_fts_sync();
CREATE TRIGGER "search_docs_au" AFTER UPDATE ON "search_docs" FOR EACH ROW
  WHEN ((OLD.id, OLD.repository, OLD.tags, OLD.annotation_text, OLD.type, OLD.scope) IS DISTINCT FROM (NEW.id, NEW.repository, NEW.tags, NEW.annotation_text, NEW.type, NEW.scope))
  EXECUTE FUNCTION search_fts_sync();

-- Documents written before this migration (none on a fresh schema; a copied database may have some).
INSERT INTO search_fts (rowid, doc) SELECT id, search_document(repository, tags, annotation_text, type, scope) FROM search_docs;
