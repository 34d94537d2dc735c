-- Trust policy per namespace (src/trust/schema.ts).
CREATE TABLE `trust_policies` (
	`namespace` text PRIMARY KEY NOT NULL,
	`version` integer NOT NULL,
	`document` text NOT NULL,
	`updated_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
