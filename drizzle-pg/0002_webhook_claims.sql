-- Webhook delivery claims (issue #15): the counterpart of drizzle/0013_webhook_claims.sql. A
-- subscription is delivered by the process holding its lease only; a crashed holder's lease runs
-- out (claimed_until, ms since the epoch) and another process takes over.
ALTER TABLE "webhooks" ADD COLUMN "claimed_by" text COLLATE "C";
ALTER TABLE "webhooks" ADD COLUMN "claimed_until" bigint;
