-- Operations: namespace policies, GC tombstones and generation, batched pull times (src/operations/schema.ts).
CREATE TABLE `namespace_policies` (
	`namespace` text PRIMARY KEY NOT NULL,
	`policy` text NOT NULL,
	`version` integer NOT NULL,
	`updated_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `gc_tombstones` (
	`digest` text PRIMARY KEY NOT NULL,
	`generation` integer NOT NULL,
	`state` text NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `gc_tombstones_state` ON `gc_tombstones` (`state`);
--> statement-breakpoint
CREATE TABLE `gc_pins` (
	`token` text PRIMARY KEY NOT NULL,
	`digest` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `gc_pins_digest` ON `gc_pins` (`digest`);
--> statement-breakpoint
CREATE TABLE `gc_state` (
	`id` integer PRIMARY KEY NOT NULL,
	`generation` integer NOT NULL,
	`holder` text,
	`held_until` integer
);
--> statement-breakpoint
INSERT INTO `gc_state` (`id`, `generation`) VALUES (1, 0);
--> statement-breakpoint
CREATE TABLE `manifest_pulls` (
	`repository` text NOT NULL,
	`digest` text NOT NULL,
	`pulled_at` integer NOT NULL,
	PRIMARY KEY(`repository`, `digest`)
);
--> statement-breakpoint
-- GC asks "does any manifest in any repository reference this blob?": the existing index leads with repository_id.
CREATE INDEX `gc_manifest_references_target_any` ON `manifest_references` (`target_digest`);
