CREATE TABLE `webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`namespaces` text,
	`secret` text NOT NULL,
	`cursor_seq` integer NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer DEFAULT 0 NOT NULL,
	`last_error` text,
	`delivered` integer DEFAULT 0 NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `webhook_dead_letters` (
	`webhook_id` text NOT NULL,
	`seq` integer NOT NULL,
	`attempts` integer NOT NULL,
	`last_error` text,
	`failed_at` integer NOT NULL,
	PRIMARY KEY(`webhook_id`, `seq`)
);
--> statement-breakpoint
CREATE TABLE `event_checkpoints` (
	`seq` integer PRIMARY KEY NOT NULL,
	`head_hash` text NOT NULL,
	`time` integer NOT NULL,
	`key_id` text NOT NULL,
	`signature` text NOT NULL
);
