-- placeholder: the owning module replaces this with its tables
SELECT 1;
--> statement-breakpoint
-- uploads: the caller who opened a session (per-caller cap) and a cross-process lease (session lock)
ALTER TABLE `uploads` ADD `owner` text;
--> statement-breakpoint
ALTER TABLE `uploads` ADD `lease_holder` text;
--> statement-breakpoint
ALTER TABLE `uploads` ADD `lease_until` integer;
--> statement-breakpoint
CREATE INDEX `uploads_owner` ON `uploads` (`owner`);
--> statement-breakpoint
-- auth: a password change bumps the token generation; tokens of an older generation are void
ALTER TABLE `principals` ADD `token_generation` integer DEFAULT 0 NOT NULL;
--> statement-breakpoint
-- auth: _catalog pages public repositories by index, not by scanning every visibility row
CREATE INDEX `repository_visibility_by_kind` ON `repository_visibility` (`visibility`,`name`);
