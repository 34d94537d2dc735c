-- placeholder: the owning module replaces this line with its tables (statements separated by --> statement-breakpoint)
SELECT 1;
--> statement-breakpoint
-- auth: a password change bumps the token generation; tokens of an older generation are void
ALTER TABLE `principals` ADD `token_generation` integer DEFAULT 0 NOT NULL;
--> statement-breakpoint
-- auth: _catalog pages public repositories by index, not by scanning every visibility row
CREATE INDEX `repository_visibility_by_kind` ON `repository_visibility` (`visibility`,`name`);
