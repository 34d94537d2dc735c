CREATE TABLE `family_entries` (
	`family` text NOT NULL,
	`id` text NOT NULL,
	`latest_version` integer NOT NULL,
	`status` text NOT NULL,
	`updated_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	PRIMARY KEY(`family`, `id`)
);
--> statement-breakpoint
CREATE TABLE `family_entry_versions` (
	`family` text NOT NULL,
	`id` text NOT NULL,
	`version` integer NOT NULL,
	`digest` text NOT NULL,
	`layer_digest` text NOT NULL,
	`entry` text NOT NULL,
	`actor` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	PRIMARY KEY(`family`, `id`, `version`)
);
--> statement-breakpoint
CREATE TABLE `family_delegations` (
	`family` text PRIMARY KEY NOT NULL,
	`org` text NOT NULL,
	`updated_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `namespace_governance` (
	`namespace` text PRIMARY KEY NOT NULL,
	`governed` integer NOT NULL,
	`updated_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
