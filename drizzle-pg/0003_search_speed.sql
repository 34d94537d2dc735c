-- Search maintenance at the cost of cached plans (issue #15). A LANGUAGE sql function that
-- cannot be inlined (a SET clause, a subquery) is parsed and planned again every time a calling
-- statement runs: in the triggers of one pushed manifest that was search_document twice
-- (~220 µs each), search_tag_list twice (~130 µs each) and search_is_signed once (~120 µs), half
-- of the triggers' cost (pg_stat_user_functions, PostgreSQL 15). plpgsql keeps each statement's
-- plan for the session, so the same bodies as plpgsql cost a plan lookup instead. Bodies and
-- results are unchanged; only the language. The manifest and tag triggers also skip, with an IF,
-- the signature update that a statement's WHERE would have found nothing for (an unsigned
-- manifest, a tag not named sha256-….sig): executor start-up for nothing, on every push.
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

CREATE OR REPLACE FUNCTION search_manifest_ai() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO search_docs (repository_id, repository, namespace, digest, media_type, type, subject, annotations, annotation_text, tags, signed, public, size, created_at, updated_at)
  SELECT NEW.repository_id, r.name,
    CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END,
    NEW.digest, NEW.media_type, coalesce(NEW.artifact_type, NEW.media_type), NEW.subject, NEW.annotations,
    coalesce((SELECT string_agg(a.key || ' ' || a.value, ' ' ORDER BY a.n) FROM json_each(NEW.annotations) WITH ORDINALITY AS a(key, value, n)), '')
      || CASE WHEN r.name ILIKE '\_registry/%' ESCAPE '\' THEN coalesce((SELECT ' ' || search_family_words(v.entry) FROM family_entry_versions v
           WHERE v.family = substr(r.name, 11) AND v.digest = NEW.digest LIMIT 1), '') ELSE '' END,
    search_tag_list(NEW.repository_id, NEW.digest),
    search_is_signed(NEW.repository_id, NEW.digest),
    EXISTS (SELECT 1 FROM repository_visibility v WHERE v.name = r.name AND v.visibility = 'public')::int,
    NEW.size, NEW.created_at, NEW.created_at
  FROM repositories r WHERE r.id = NEW.repository_id;
  IF NEW.subject IS NOT NULL AND (NEW.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR NEW.artifact_type ILIKE 'application/vnd.dev.sigstore.bundle%') THEN
    UPDATE search_docs SET signed = 1 WHERE repository_id = NEW.repository_id AND digest = NEW.subject;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION search_tag_ai() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET updated_at = NEW.updated_at, tags = search_tag_list(NEW.repository_id, NEW.digest)
    WHERE repository_id = NEW.repository_id AND digest = NEW.digest;
  IF NEW.name ILIKE 'sha256-%.sig' THEN
    UPDATE search_docs SET signed = 1 WHERE repository_id = NEW.repository_id
      AND digest = replace(substr(NEW.name, 1, length(NEW.name) - 4), 'sha256-', 'sha256:');
  END IF;
  RETURN NULL;
END $$;
