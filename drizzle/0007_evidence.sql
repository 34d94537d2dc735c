-- Evidence index, legal holds and the scan queue (src/evidence/schema.ts).
CREATE TABLE `evidence` (
	`repository` text NOT NULL,
	`digest` text NOT NULL,
	`subject` text NOT NULL,
	`type` text,
	`declared_type` text,
	`retention_days` integer NOT NULL,
	`pushed_at` integer NOT NULL,
	`push_seq` integer NOT NULL,
	`pins_subject` integer DEFAULT true NOT NULL,
	PRIMARY KEY(`repository`, `digest`)
);
--> statement-breakpoint
CREATE INDEX `evidence_subject` ON `evidence` (`repository`,`subject`);
--> statement-breakpoint
CREATE TABLE `legal_holds` (
	`id` text PRIMARY KEY NOT NULL,
	`repository` text NOT NULL,
	`digest` text,
	`reason` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`created_seq` integer NOT NULL,
	`released_by` text,
	`released_at` integer,
	`release_reason` text
);
--> statement-breakpoint
CREATE INDEX `legal_holds_repository` ON `legal_holds` (`repository`,`released_at`);
--> statement-breakpoint
CREATE TABLE `scan_jobs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`repository` text NOT NULL,
	`digest` text NOT NULL,
	`state` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`error` text,
	`report` text,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`updated_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `scan_jobs_state` ON `scan_jobs` (`state`,`id`);
