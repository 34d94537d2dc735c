-- Webhook delivery claims (issue #15): several registry processes on one database each run a
-- dispatcher; a subscription is delivered by the process holding its lease only. A crashed
-- holder's lease runs out (claimed_until, ms since the epoch) and another process takes over.
ALTER TABLE `webhooks` ADD `claimed_by` text;
--> statement-breakpoint
ALTER TABLE `webhooks` ADD `claimed_until` integer;
