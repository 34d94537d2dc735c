-- Search maintenance at the cost of cached plans (issue #15). A LANGUAGE sql function that
-- cannot be inlined (a SET clause, a subquery) is parsed and planned again every time a calling
-- statement runs: in the triggers of one pushed manifest that was search_document twice
-- (~220 µs each), search_tag_list twice (~130 µs each) and search_is_signed once (~120 µs), half
-- of the triggers' cost (pg_stat_user_functions, PostgreSQL 15). plpgsql keeps each statement's
-- plan for the session, so the same bodies as plpgsql cost a plan lookup instead. Bodies and
-- results are unchanged; only the language.
CREATE OR REPLACE FUNCTION search_tag_list(repo bigint, manifest text) RETURNS text
  LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN coalesce((SELECT string_agg(t.name, ' ' ORDER BY t.updated_at DESC, t.name)
    FROM (SELECT name, updated_at FROM tags WHERE repository_id = repo AND digest = manifest
          ORDER BY updated_at DESC, name LIMIT 50) t), '');
END $$;

CREATE OR REPLACE FUNCTION search_is_signed(repo bigint, manifest text) RETURNS bigint
  LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = repo AND s.subject = manifest
            AND (s.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR s.artifact_type ILIKE 'application/vnd.dev.sigstore.bundle%'))
      OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = repo AND t.name = replace(manifest, ':', '-') || '.sig'))::int;
END $$;

CREATE OR REPLACE FUNCTION search_family_words(entry text) RETURNS text
  LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN trim(coalesce(json_extract(entry, '$.name'), '') || ' ' || coalesce(json_extract(entry, '$.title'), '') || ' '
    || coalesce(json_extract(entry, '$.owner'), '') || ' ' || coalesce(json_extract(entry, '$.description'), ''));
END $$;

CREATE OR REPLACE FUNCTION search_document(repository text, tags text, annotation_text text, type text, scope text) RETURNS tsvector
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN setweight(to_tsvector('pg_catalog.simple', search_words(repository)), 'A')
    || setweight(to_tsvector('pg_catalog.simple', search_words(tags)), 'B')
    || setweight(to_tsvector('pg_catalog.simple', search_words(left(annotation_text, 200000))), 'C')
    || setweight(to_tsvector('pg_catalog.simple', search_words(type)), 'D')
    || setweight(to_tsvector('pg_catalog.simple', search_words(scope)), 'B')
    || array_to_tsvector(ARRAY(SELECT '@' || w FROM unnest(string_to_array(coalesce(scope, ''), ' ')) AS u(w) WHERE w <> ''));
END $$;
