-- Search speed and coverage (issue #16).
--
-- 1. `scope`: who may see a document and whether it is a referrer, as FTS5 tokens ('public',
--    'referrer'), so a search narrows to the caller's candidates inside the full-text index
--    (doclist intersections) instead of fetching every match's row to test it. A generated
--    column: it cannot drift from `public` and `subject`. Only a pre-filter: the exact SQL
--    filter and the pull decision still judge every row.
-- 2. A covering index for the facet scan and type-filtered pages of what is public.
-- 3. Family entries' description, owner and name are searchable: written onto the entry's
--    document by trigger, in the transaction that writes the entry version.
DROP TRIGGER `search_docs_ai`;
--> statement-breakpoint
DROP TRIGGER `search_docs_ad`;
--> statement-breakpoint
DROP TRIGGER `search_docs_au`;
--> statement-breakpoint
DROP TABLE `search_fts`;
--> statement-breakpoint
-- Existing family entries' words, while search_docs has no FTS5 triggers (the index is rebuilt last).
UPDATE `search_docs` SET `annotation_text` = `annotation_text` || ' ' || (SELECT trim(coalesce(json_extract(v.entry, '$.name'), '') || ' ' || coalesce(json_extract(v.entry, '$.title'), '') || ' ' || coalesce(json_extract(v.entry, '$.owner'), '') || ' ' || coalesce(json_extract(v.entry, '$.description'), '')) FROM family_entry_versions v WHERE v.family = substr(search_docs.repository, 11) AND v.digest = search_docs.digest LIMIT 1)
	WHERE repository LIKE '\_registry/%' ESCAPE '\' AND EXISTS (SELECT 1 FROM family_entry_versions v WHERE v.family = substr(search_docs.repository, 11) AND v.digest = search_docs.digest);
--> statement-breakpoint
ALTER TABLE `search_docs` ADD COLUMN `scope` text GENERATED ALWAYS AS (CASE WHEN `public` = 1 THEN 'public' ELSE '' END || CASE WHEN `subject` IS NULL THEN '' ELSE ' referrer' END) VIRTUAL;
--> statement-breakpoint
-- Relevance is computed by the search module over the candidates (bm25's document-frequency pass
-- reads every query word's whole doclist: ~4 ms a common word at 100k documents), so no rank.
CREATE VIRTUAL TABLE `search_fts` USING fts5(`repository`, `tags`, `annotation_text`, `type`, `scope`, content='search_docs', content_rowid='id', tokenize='unicode61');
--> statement-breakpoint
CREATE TRIGGER `search_docs_ai` AFTER INSERT ON `search_docs` BEGIN
	INSERT INTO `search_fts`(rowid, `repository`, `tags`, `annotation_text`, `type`, `scope`) VALUES (new.id, new.repository, new.tags, new.annotation_text, new.type, new.scope);
END;
--> statement-breakpoint
CREATE TRIGGER `search_docs_ad` AFTER DELETE ON `search_docs` BEGIN
	INSERT INTO `search_fts`(`search_fts`, rowid, `repository`, `tags`, `annotation_text`, `type`, `scope`) VALUES ('delete', old.id, old.repository, old.tags, old.annotation_text, old.type, old.scope);
END;
--> statement-breakpoint
CREATE TRIGGER `search_docs_au` AFTER UPDATE OF `tags`, `annotation_text`, `public` ON `search_docs`
	WHEN old.tags IS NOT new.tags OR old.annotation_text IS NOT new.annotation_text OR old.public IS NOT new.public BEGIN
	INSERT INTO `search_fts`(`search_fts`, rowid, `repository`, `tags`, `annotation_text`, `type`, `scope`) VALUES ('delete', old.id, old.repository, old.tags, old.annotation_text, old.type, old.scope);
	INSERT INTO `search_fts`(rowid, `repository`, `tags`, `annotation_text`, `type`, `scope`) VALUES (new.id, new.repository, new.tags, new.annotation_text, new.type, new.scope);
END;
--> statement-breakpoint
CREATE INDEX `search_docs_facets` ON `search_docs` (`public`, `type`, `updated_at`, `id`, `namespace`, `signed`, `subject`, `repository`);
--> statement-breakpoint
-- A family entry's words (its version row's JSON), appended to its document's annotation text.
CREATE TRIGGER `search_family_ai` AFTER INSERT ON `family_entry_versions` BEGIN
	UPDATE `search_docs` SET `annotation_text` = `annotation_text` || ' ' || (SELECT trim(coalesce(json_extract(v.entry, '$.name'), '') || ' ' || coalesce(json_extract(v.entry, '$.title'), '') || ' ' || coalesce(json_extract(v.entry, '$.owner'), '') || ' ' || coalesce(json_extract(v.entry, '$.description'), '')) FROM family_entry_versions v WHERE v.family = new.family AND v.id = new.id AND v.version = new.version)
		WHERE repository = '_registry/' || new.family AND digest = new.digest;
END;
--> statement-breakpoint
-- The manifest trigger, as in 0011, plus the family entry's words when the version row already
-- exists (a rebuild re-inserts manifests after every other table).
DROP TRIGGER `search_manifest_ai`;
--> statement-breakpoint
CREATE TRIGGER `search_manifest_ai` AFTER INSERT ON `manifests` BEGIN
	INSERT INTO `search_docs`(`repository_id`, `repository`, `namespace`, `digest`, `media_type`, `type`, `subject`, `annotations`, `annotation_text`, `tags`, `signed`, `public`, `size`, `created_at`, `updated_at`)
	SELECT new.repository_id, r.name,
		CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END,
		new.digest, new.media_type, coalesce(new.artifact_type, new.media_type), new.subject, new.annotations,
		coalesce((SELECT group_concat(key || ' ' || value, ' ') FROM json_each(new.annotations)), '')
			|| CASE WHEN r.name LIKE '\_registry/%' ESCAPE '\' THEN coalesce((SELECT ' ' || trim(coalesce(json_extract(v.entry, '$.name'), '') || ' ' || coalesce(json_extract(v.entry, '$.title'), '') || ' ' || coalesce(json_extract(v.entry, '$.owner'), '') || ' ' || coalesce(json_extract(v.entry, '$.description'), '')) FROM family_entry_versions v WHERE v.family = substr(r.name, 11) AND v.digest = new.digest LIMIT 1), '') ELSE '' END,
		coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags WHERE repository_id = new.repository_id AND digest = new.digest ORDER BY updated_at DESC, name LIMIT 50)), ''),
		EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = new.repository_id AND s.subject = new.digest AND (s.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR s.artifact_type LIKE 'application/vnd.dev.sigstore.bundle%'))
			OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = new.repository_id AND t.name = replace(new.digest, ':', '-') || '.sig'),
		EXISTS (SELECT 1 FROM repository_visibility v WHERE v.name = r.name AND v.visibility = 'public'),
		new.size, new.created_at, new.created_at
	FROM repositories r WHERE r.id = new.repository_id;
	UPDATE `search_docs` SET `signed` = 1 WHERE new.subject IS NOT NULL AND repository_id = new.repository_id AND digest = new.subject
		AND (new.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR new.artifact_type LIKE 'application/vnd.dev.sigstore.bundle%');
END;
--> statement-breakpoint
INSERT INTO `search_fts`(`search_fts`) VALUES ('rebuild');
