CREATE TABLE `bundles` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`bundle_id` text NOT NULL,
	`bundle_version` text NOT NULL,
	`kind` text NOT NULL,
	`model_family` text NOT NULL,
	`repository` text NOT NULL,
	`digest` text NOT NULL,
	`artifact_type` text NOT NULL,
	`config` text NOT NULL,
	`receipts` text NOT NULL,
	`state` text NOT NULL,
	`submitted_by` text NOT NULL,
	`submitted_at` integer NOT NULL,
	`registered_seq` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `bundles_identity` ON `bundles` (`bundle_id`,`bundle_version`);
--> statement-breakpoint
CREATE INDEX `bundles_content` ON `bundles` (`repository`,`digest`);
--> statement-breakpoint
CREATE TABLE `bundle_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`bundle` integer NOT NULL,
	`event_seq` integer NOT NULL,
	`action` text NOT NULL,
	`from_state` text,
	`to_state` text NOT NULL,
	`scope` text,
	`actor` text NOT NULL,
	`reason` text,
	`time` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `bundle_history_bundle` ON `bundle_history` (`bundle`,`id`);
--> statement-breakpoint
CREATE INDEX `bundle_history_scope` ON `bundle_history` (`scope`,`id`);
--> statement-breakpoint
CREATE TABLE `bundle_activations` (
	`environment` text NOT NULL,
	`model_family` text NOT NULL,
	`tenant` text NOT NULL,
	`bundle` integer NOT NULL,
	`event_seq` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `bundle_activations_scope` ON `bundle_activations` (`environment`,`model_family`,`tenant`);
--> statement-breakpoint
CREATE INDEX `bundle_activations_bundle` ON `bundle_activations` (`bundle`);
--> statement-breakpoint
CREATE TABLE `bundle_scope_stack` (
	`scope` text NOT NULL,
	`position` integer NOT NULL,
	`bundle` integer NOT NULL,
	`event_seq` integer NOT NULL,
	PRIMARY KEY(`scope`, `position`)
);
--> statement-breakpoint
CREATE INDEX `bundle_scope_stack_bundle` ON `bundle_scope_stack` (`bundle`);
--> statement-breakpoint
CREATE TABLE `platform_feature_groups` (
	`name` text PRIMARY KEY NOT NULL,
	`version` text NOT NULL
);
