-- Search index (issue #16): one document per stored manifest, kept in sync by triggers on the
-- OCI tables, so every writer (pushes, deletes, GC, retention, the CLI) updates it in the SAME
-- transaction as its write without knowing the search module exists.
CREATE TABLE `search_docs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`repository_id` integer NOT NULL,
	`repository` text NOT NULL,
	`namespace` text NOT NULL,
	`digest` text NOT NULL,
	`media_type` text NOT NULL,
	`type` text NOT NULL,
	`subject` text,
	`annotations` text,
	`annotation_text` text DEFAULT '' NOT NULL,
	`tags` text DEFAULT '' NOT NULL,
	`signed` integer DEFAULT 0 NOT NULL,
	`public` integer DEFAULT 0 NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `search_docs_manifest` ON `search_docs` (`repository_id`,`digest`);
--> statement-breakpoint
CREATE INDEX `search_docs_updated` ON `search_docs` (`updated_at`,`id`);
--> statement-breakpoint
CREATE INDEX `search_docs_repository` ON `search_docs` (`repository`,`id`);
--> statement-breakpoint
CREATE INDEX `search_docs_namespace` ON `search_docs` (`namespace`,`updated_at`,`id`);
--> statement-breakpoint
CREATE INDEX `search_docs_public` ON `search_docs` (`public`,`updated_at`,`id`);
--> statement-breakpoint
CREATE VIRTUAL TABLE `search_fts` USING fts5(`repository`, `tags`, `annotation_text`, `type`, content='search_docs', content_rowid='id', tokenize='unicode61');
--> statement-breakpoint
-- Relevance: a name match outweighs a tag, a tag an annotation, an annotation a type.
INSERT INTO `search_fts`(`search_fts`, `rank`) VALUES ('rank', 'bm25(10.0, 5.0, 2.0, 1.0)');
--> statement-breakpoint
CREATE TRIGGER `search_docs_ai` AFTER INSERT ON `search_docs` BEGIN
	INSERT INTO `search_fts`(rowid, `repository`, `tags`, `annotation_text`, `type`) VALUES (new.id, new.repository, new.tags, new.annotation_text, new.type);
END;
--> statement-breakpoint
CREATE TRIGGER `search_docs_ad` AFTER DELETE ON `search_docs` BEGIN
	INSERT INTO `search_fts`(`search_fts`, rowid, `repository`, `tags`, `annotation_text`, `type`) VALUES ('delete', old.id, old.repository, old.tags, old.annotation_text, old.type);
END;
--> statement-breakpoint
CREATE TRIGGER `search_docs_au` AFTER UPDATE OF `tags` ON `search_docs` BEGIN
	INSERT INTO `search_fts`(`search_fts`, rowid, `repository`, `tags`, `annotation_text`, `type`) VALUES ('delete', old.id, old.repository, old.tags, old.annotation_text, old.type);
	INSERT INTO `search_fts`(rowid, `repository`, `tags`, `annotation_text`, `type`) VALUES (new.id, new.repository, new.tags, new.annotation_text, new.type);
END;
--> statement-breakpoint
-- A manifest's searchable tags: the 50 most recently set (bounded work per tag write, even for a digest with 10k tags).
CREATE TRIGGER `search_manifest_ai` AFTER INSERT ON `manifests` BEGIN
	INSERT INTO `search_docs`(`repository_id`, `repository`, `namespace`, `digest`, `media_type`, `type`, `subject`, `annotations`, `annotation_text`, `tags`, `signed`, `public`, `size`, `created_at`, `updated_at`)
	SELECT new.repository_id, r.name,
		CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END,
		new.digest, new.media_type, coalesce(new.artifact_type, new.media_type), new.subject, new.annotations,
		coalesce((SELECT group_concat(key || ' ' || value, ' ') FROM json_each(new.annotations)), ''),
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
CREATE TRIGGER `search_manifest_ad` AFTER DELETE ON `manifests` BEGIN
	DELETE FROM `search_docs` WHERE repository_id = old.repository_id AND digest = old.digest;
	UPDATE `search_docs` SET `signed` = EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = old.repository_id AND s.subject = old.subject AND (s.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR s.artifact_type LIKE 'application/vnd.dev.sigstore.bundle%'))
		OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = old.repository_id AND t.name = replace(old.subject, ':', '-') || '.sig')
		WHERE old.subject IS NOT NULL AND repository_id = old.repository_id AND digest = old.subject;
END;
--> statement-breakpoint
CREATE TRIGGER `search_tag_ai` AFTER INSERT ON `tags` BEGIN
	UPDATE `search_docs` SET `updated_at` = new.updated_at,
		`tags` = coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags WHERE repository_id = new.repository_id AND digest = new.digest ORDER BY updated_at DESC, name LIMIT 50)), '')
		WHERE repository_id = new.repository_id AND digest = new.digest;
	UPDATE `search_docs` SET `signed` = 1 WHERE new.name LIKE 'sha256-%.sig' AND repository_id = new.repository_id AND digest = replace(substr(new.name, 1, length(new.name) - 4), 'sha256-', 'sha256:');
END;
--> statement-breakpoint
CREATE TRIGGER `search_tag_au` AFTER UPDATE ON `tags` BEGIN
	UPDATE `search_docs` SET `tags` = coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags WHERE repository_id = old.repository_id AND digest = old.digest ORDER BY updated_at DESC, name LIMIT 50)), '')
		WHERE repository_id = old.repository_id AND digest = old.digest;
	UPDATE `search_docs` SET `updated_at` = new.updated_at,
		`tags` = coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags WHERE repository_id = new.repository_id AND digest = new.digest ORDER BY updated_at DESC, name LIMIT 50)), '')
		WHERE repository_id = new.repository_id AND digest = new.digest;
END;
--> statement-breakpoint
CREATE TRIGGER `search_tag_ad` AFTER DELETE ON `tags` BEGIN
	UPDATE `search_docs` SET `tags` = coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags WHERE repository_id = old.repository_id AND digest = old.digest ORDER BY updated_at DESC, name LIMIT 50)), '')
		WHERE repository_id = old.repository_id AND digest = old.digest;
END;
--> statement-breakpoint
INSERT INTO `search_docs`(`repository_id`, `repository`, `namespace`, `digest`, `media_type`, `type`, `subject`, `annotations`, `annotation_text`, `tags`, `signed`, `public`, `size`, `created_at`, `updated_at`)
SELECT m.repository_id, r.name,
	CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END,
	m.digest, m.media_type, coalesce(m.artifact_type, m.media_type), m.subject, m.annotations,
	coalesce((SELECT group_concat(key || ' ' || value, ' ') FROM json_each(m.annotations)), ''),
	coalesce((SELECT group_concat(name, ' ') FROM (SELECT name FROM tags WHERE repository_id = m.repository_id AND digest = m.digest ORDER BY updated_at DESC, name LIMIT 50)), ''),
	EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.subject = m.digest AND (s.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR s.artifact_type LIKE 'application/vnd.dev.sigstore.bundle%')),
	EXISTS (SELECT 1 FROM repository_visibility v WHERE v.name = r.name AND v.visibility = 'public'),
	m.size, m.created_at, m.created_at
FROM manifests m JOIN repositories r ON r.id = m.repository_id;
--> statement-breakpoint
-- Visibility copied onto the documents (same transaction as the change) so a search filters without a join.
CREATE TRIGGER `search_visibility_ai` AFTER INSERT ON `repository_visibility` BEGIN
	UPDATE `search_docs` SET `public` = (new.visibility = 'public') WHERE repository = new.name;
END;
--> statement-breakpoint
CREATE TRIGGER `search_visibility_au` AFTER UPDATE ON `repository_visibility` BEGIN
	UPDATE `search_docs` SET `public` = 0 WHERE repository = old.name;
	UPDATE `search_docs` SET `public` = (new.visibility = 'public') WHERE repository = new.name;
END;
--> statement-breakpoint
CREATE TRIGGER `search_visibility_ad` AFTER DELETE ON `repository_visibility` BEGIN
	UPDATE `search_docs` SET `public` = 0 WHERE repository = old.name;
END;
--> statement-breakpoint
-- Usage signals: download counters (flushed in batches from memory), stars per user.
CREATE TABLE `search_downloads` (
	`repository` text NOT NULL,
	`ref` text NOT NULL,
	`count` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`repository`, `ref`)
);
--> statement-breakpoint
CREATE TABLE `search_stars` (
	`repository` text NOT NULL,
	`user` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`repository`, `user`)
);
--> statement-breakpoint
CREATE TABLE `ui_sessions` (
	`id_hash` text PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`generation` integer NOT NULL,
	`csrf` text NOT NULL,
	`expires_at` integer NOT NULL
);
