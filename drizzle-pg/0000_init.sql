-- PostgreSQL schema for artifact-store (issue #15): the SQLite schema of drizzle/0000…0012, one file.
-- Kept side by side with drizzle/; test/unit/schema-equivalence.test.ts fails when they drift.
-- Runs once per schema inside one transaction; the runner sets search_path to the target schema.
--
-- Type mapping, so the synchronous SQLite-style code reads the same values on both back ends:
--   integer → bigint (ms timestamps exceed int4; booleans stay 0/1 integers as in SQLite),
--   text → text COLLATE "C" (byte order, like SQLite's BINARY, whatever the database locale),
--   blob → bytea, (unixepoch('subsec') * 1000) → clock_timestamp() in ms.
-- Trigger functions pin search_path (SET search_path FROM CURRENT) so a session looking at
-- another schema still maintains this schema's tables. SQLite's LIKE folds ASCII case, so the
-- ported triggers use ILIKE (under COLLATE "C" it folds ASCII only, as SQLite does).

-- SQLite-compatible functions, so raw SQL written for SQLite runs unchanged ------------------

-- integer, not bigint: its result feeds substr(), whose positions are integer.
CREATE FUNCTION instr(haystack text, needle text) RETURNS integer
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT strpos(haystack, needle) $$;

-- group_concat(x, sep): string_agg's own state functions (linear, NULLs skipped, NULL with no rows).
CREATE AGGREGATE group_concat(text, text) (
  SFUNC = pg_catalog.string_agg_transfn, STYPE = internal, FINALFUNC = pg_catalog.string_agg_finalfn);

-- group_concat(x): separator ','. An array state keeps it linear (a text state re-copies per row).
CREATE FUNCTION group_concat_final(parts text[]) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN cardinality(array_remove(parts, NULL)) > 0 THEN array_to_string(parts, ',') END $$;
CREATE AGGREGATE group_concat(text) (
  SFUNC = pg_catalog.array_append, STYPE = text[], FINALFUNC = group_concat_final);

-- SQLite's scalar max(a, b) / min(a, b): NULL when either is NULL (greatest/least skip NULLs).
CREATE FUNCTION max(a bigint, b bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE greatest(a, b) END $$;
CREATE FUNCTION min(a bigint, b bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE least(a, b) END $$;

-- sum(condition): SQLite sums comparisons as 0/1 integers; NULL when no non-NULL input.
CREATE FUNCTION sum_bool_step(total bigint, flag boolean) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN flag IS NULL THEN total ELSE coalesce(total, 0) + flag::int END $$;
CREATE AGGREGATE sum(boolean) (SFUNC = sum_bool_step, STYPE = bigint);

-- A JSON value as SQLite's json_each/json_extract return it: strings unquoted, null → NULL,
-- true/false → 1/0, numbers and containers as their JSON text.
CREATE FUNCTION sqlite_json_value(v json) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE json_typeof(v) WHEN 'string' THEN v #>> '{}' WHEN 'null' THEN NULL
    WHEN 'boolean' THEN CASE WHEN v::text = 'true' THEN '1' ELSE '0' END ELSE v::text END $$;

-- json_each(text): arrays (key = index) and objects (key = member name) in document order (json,
-- not jsonb, which would sort keys); a scalar is one row with a NULL key; NULL → no rows.
CREATE FUNCTION json_each(doc text) RETURNS TABLE(key text, value text)
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE j json;
BEGIN
  IF doc IS NULL THEN RETURN; END IF;
  j := doc::json;
  CASE json_typeof(j)
    WHEN 'array' THEN
      RETURN QUERY SELECT (e.n - 1)::text, sqlite_json_value(e.v) FROM json_array_elements(j) WITH ORDINALITY AS e(v, n);
    WHEN 'object' THEN
      RETURN QUERY SELECT o.key, sqlite_json_value(o.value) FROM pg_catalog.json_each(j) AS o;
    ELSE
      RETURN QUERY SELECT NULL::text, sqlite_json_value(j);
  END CASE;
END $$;

-- json_extract(doc, path) for paths made of $, .name, ."quoted name" and [index].
CREATE FUNCTION json_extract(doc text, path text) RETURNS text
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  step constant text := '\.(?:"([^"]*)"|([^.\[]+))|\[([0-9]+)\]';
  keys text[] := '{}';
  m text[];
BEGIN
  IF doc IS NULL OR path IS NULL THEN RETURN NULL; END IF;
  IF left(path, 1) <> '$' OR regexp_replace(substr(path, 2), step, '', 'g') <> '' THEN
    RAISE EXCEPTION 'bad JSON path: %', path;
  END IF;
  FOR m IN SELECT regexp_matches(substr(path, 2), step, 'g') LOOP
    keys := keys || coalesce(m[1], m[2], m[3]);
  END LOOP;
  RETURN sqlite_json_value(doc::json #> keys);
END $$;

-- AUTOINCREMENT with SQLite's guarantees: ids ascend, a rolled-back insert gives its id back,
-- and the id of a deleted row is never used again. The next id is max(id) + 1 (a backward index
-- lookup) unless the table's highest rows were deleted: then autoincrement_counters holds that
-- floor (sqlite_sequence's role), written only by such a delete. Nothing is written per insert,
-- so a long transaction (a bulk load, a replay) stays linear: a counter row updated by every
-- insert grew a chain of row versions each later insert walked. Inserts are serialised by the
-- registry's write lock (src/meta/pg/facade.ts). Unlike SQLite, an INSERT skipped by ON CONFLICT
-- uses no id; live writes and a replay on PostgreSQL agree with each other.
CREATE TABLE "autoincrement_counters" (
	"name" text COLLATE "C" PRIMARY KEY NOT NULL,
	"seq" bigint NOT NULL
);

-- Tables, in an order that creates every foreign key's target first (SQLite resolves lazily) ----

CREATE TABLE "blobs" (
	"digest" text COLLATE "C" PRIMARY KEY NOT NULL,
	"size" bigint NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);

CREATE TABLE "events" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"time" bigint NOT NULL,
	"actor" text COLLATE "C" NOT NULL,
	"action" text COLLATE "C" NOT NULL,
	"repository" text COLLATE "C",
	"digest" text COLLATE "C",
	"tag" text COLLATE "C",
	"before" text COLLATE "C",
	"after" text COLLATE "C",
	"reason" text COLLATE "C",
	"prev_hash" text COLLATE "C" NOT NULL,
	"hash" text COLLATE "C" NOT NULL
);
CREATE INDEX "events_repository" ON "events" ("repository", "seq");

CREATE TABLE "repositories" (
	"id" bigint PRIMARY KEY NOT NULL,
	"name" text COLLATE "C" NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);
CREATE UNIQUE INDEX "repositories_name_unique" ON "repositories" ("name");

CREATE TABLE "manifest_references" (
	"repository_id" bigint NOT NULL,
	"manifest_digest" text COLLATE "C" NOT NULL,
	"target_digest" text COLLATE "C" NOT NULL,
	"kind" text COLLATE "C" NOT NULL,
	PRIMARY KEY ("repository_id", "manifest_digest", "target_digest")
);
CREATE INDEX "manifest_references_target" ON "manifest_references" ("repository_id", "target_digest");
CREATE INDEX "gc_manifest_references_target_any" ON "manifest_references" ("target_digest");

CREATE TABLE "manifests" (
	"repository_id" bigint NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"media_type" text COLLATE "C" NOT NULL,
	"payload" bytea NOT NULL,
	"size" bigint NOT NULL,
	"artifact_type" text COLLATE "C",
	"subject" text COLLATE "C",
	"annotations" text COLLATE "C",
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	PRIMARY KEY ("repository_id", "digest"),
	FOREIGN KEY ("repository_id") REFERENCES "repositories"("id") ON UPDATE no action ON DELETE no action
);
CREATE INDEX "manifests_subject" ON "manifests" ("repository_id", "subject");

CREATE TABLE "repository_blobs" (
	"repository_id" bigint NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	PRIMARY KEY ("repository_id", "digest"),
	FOREIGN KEY ("repository_id") REFERENCES "repositories"("id") ON UPDATE no action ON DELETE no action,
	FOREIGN KEY ("digest") REFERENCES "blobs"("digest") ON UPDATE no action ON DELETE no action
);
CREATE INDEX "repository_blobs_digest" ON "repository_blobs" ("digest");

CREATE TABLE "tags" (
	"repository_id" bigint NOT NULL,
	"name" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	PRIMARY KEY ("repository_id", "name"),
	FOREIGN KEY ("repository_id") REFERENCES "repositories"("id") ON UPDATE no action ON DELETE no action
);
CREATE INDEX "tags_digest" ON "tags" ("repository_id", "digest");

CREATE TABLE "uploads" (
	"id" text COLLATE "C" PRIMARY KEY NOT NULL,
	"repository" text COLLATE "C" NOT NULL,
	"state" text COLLATE "C" NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"owner" text COLLATE "C",
	"lease_holder" text COLLATE "C",
	"lease_until" bigint
);
CREATE INDEX "uploads_owner" ON "uploads" ("owner");

CREATE TABLE "principals" (
	"id" bigint PRIMARY KEY NOT NULL,
	"name" text COLLATE "C" NOT NULL,
	"kind" text COLLATE "C" NOT NULL,
	"password_hash" text COLLATE "C",
	"is_admin" bigint DEFAULT 0 NOT NULL,
	"disabled" bigint DEFAULT 0 NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"tokens_valid_after" bigint DEFAULT 0 NOT NULL,
	"token_generation" bigint DEFAULT 0 NOT NULL
);
CREATE UNIQUE INDEX "principals_name_unique" ON "principals" ("name");

CREATE TABLE "api_keys" (
	"id" text COLLATE "C" PRIMARY KEY NOT NULL,
	"user_id" bigint NOT NULL,
	"name" text COLLATE "C" NOT NULL,
	"secret_hash" text COLLATE "C" NOT NULL,
	"scopes" text COLLATE "C" NOT NULL,
	"repositories" text COLLATE "C",
	"expires_at" bigint,
	"revoked_at" bigint,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	FOREIGN KEY ("user_id") REFERENCES "principals"("id") ON UPDATE no action ON DELETE no action
);

CREATE TABLE "org_members" (
	"org_id" bigint NOT NULL,
	"user_id" bigint NOT NULL,
	"role" text COLLATE "C" NOT NULL,
	PRIMARY KEY ("org_id", "user_id"),
	FOREIGN KEY ("org_id") REFERENCES "principals"("id") ON UPDATE no action ON DELETE no action,
	FOREIGN KEY ("user_id") REFERENCES "principals"("id") ON UPDATE no action ON DELETE no action
);

CREATE TABLE "repository_visibility" (
	"name" text COLLATE "C" PRIMARY KEY NOT NULL,
	"visibility" text COLLATE "C" NOT NULL
);
CREATE INDEX "repository_visibility_by_kind" ON "repository_visibility" ("visibility", "name");

CREATE TABLE "family_entries" (
	"family" text COLLATE "C" NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"latest_version" bigint NOT NULL,
	"status" text COLLATE "C" NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	PRIMARY KEY ("family", "id")
);

CREATE TABLE "family_entry_versions" (
	"family" text COLLATE "C" NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"version" bigint NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"layer_digest" text COLLATE "C" NOT NULL,
	"entry" text COLLATE "C" NOT NULL,
	"actor" text COLLATE "C" NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	PRIMARY KEY ("family", "id", "version")
);

CREATE TABLE "family_delegations" (
	"family" text COLLATE "C" PRIMARY KEY NOT NULL,
	"org" text COLLATE "C" NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);

CREATE TABLE "namespace_governance" (
	"namespace" text COLLATE "C" PRIMARY KEY NOT NULL,
	"governed" bigint NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);

CREATE TABLE "trust_policies" (
	"namespace" text COLLATE "C" PRIMARY KEY NOT NULL,
	"version" bigint NOT NULL,
	"document" text COLLATE "C" NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);

CREATE TABLE "evidence" (
	"repository" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"subject" text COLLATE "C" NOT NULL,
	"type" text COLLATE "C",
	"declared_type" text COLLATE "C",
	"retention_days" bigint NOT NULL,
	"pushed_at" bigint NOT NULL,
	"push_seq" bigint NOT NULL,
	"pins_subject" bigint DEFAULT 1 NOT NULL,
	PRIMARY KEY ("repository", "digest")
);
CREATE INDEX "evidence_subject" ON "evidence" ("repository", "subject");

CREATE TABLE "legal_holds" (
	"id" text COLLATE "C" PRIMARY KEY NOT NULL,
	"repository" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C",
	"reason" text COLLATE "C" NOT NULL,
	"created_by" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL,
	"created_seq" bigint NOT NULL,
	"released_by" text COLLATE "C",
	"released_at" bigint,
	"release_reason" text COLLATE "C"
);
CREATE INDEX "legal_holds_repository" ON "legal_holds" ("repository", "released_at");

CREATE TABLE "scan_jobs" (
	"id" bigint PRIMARY KEY NOT NULL,
	"repository" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"state" text COLLATE "C" NOT NULL,
	"attempts" bigint DEFAULT 0 NOT NULL,
	"error" text COLLATE "C",
	"report" text COLLATE "C",
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);
CREATE INDEX "scan_jobs_state" ON "scan_jobs" ("state", "id");

CREATE TABLE "bundles" (
	"id" bigint PRIMARY KEY NOT NULL,
	"bundle_id" text COLLATE "C" NOT NULL,
	"bundle_version" text COLLATE "C" NOT NULL,
	"kind" text COLLATE "C" NOT NULL,
	"model_family" text COLLATE "C" NOT NULL,
	"repository" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"artifact_type" text COLLATE "C" NOT NULL,
	"config" text COLLATE "C" NOT NULL,
	"receipts" text COLLATE "C" NOT NULL,
	"state" text COLLATE "C" NOT NULL,
	"submitted_by" text COLLATE "C" NOT NULL,
	"submitted_at" bigint NOT NULL,
	"registered_seq" bigint NOT NULL
);
CREATE UNIQUE INDEX "bundles_identity" ON "bundles" ("bundle_id", "bundle_version");
CREATE INDEX "bundles_content" ON "bundles" ("repository", "digest");

CREATE TABLE "bundle_history" (
	"id" bigint PRIMARY KEY NOT NULL,
	"bundle" bigint NOT NULL,
	"event_seq" bigint NOT NULL,
	"action" text COLLATE "C" NOT NULL,
	"from_state" text COLLATE "C",
	"to_state" text COLLATE "C" NOT NULL,
	"scope" text COLLATE "C",
	"actor" text COLLATE "C" NOT NULL,
	"reason" text COLLATE "C",
	"time" bigint NOT NULL
);
CREATE INDEX "bundle_history_bundle" ON "bundle_history" ("bundle", "id");
CREATE INDEX "bundle_history_scope" ON "bundle_history" ("scope", "id");

CREATE TABLE "bundle_activations" (
	"environment" text COLLATE "C" NOT NULL,
	"model_family" text COLLATE "C" NOT NULL,
	"tenant" text COLLATE "C" NOT NULL,
	"bundle" bigint NOT NULL,
	"event_seq" bigint NOT NULL
);
CREATE UNIQUE INDEX "bundle_activations_scope" ON "bundle_activations" ("environment", "model_family", "tenant");
CREATE INDEX "bundle_activations_bundle" ON "bundle_activations" ("bundle");

CREATE TABLE "bundle_scope_stack" (
	"scope" text COLLATE "C" NOT NULL,
	"position" bigint NOT NULL,
	"bundle" bigint NOT NULL,
	"event_seq" bigint NOT NULL,
	PRIMARY KEY ("scope", "position")
);
CREATE INDEX "bundle_scope_stack_bundle" ON "bundle_scope_stack" ("bundle");

CREATE TABLE "platform_feature_groups" (
	"name" text COLLATE "C" PRIMARY KEY NOT NULL,
	"version" text COLLATE "C" NOT NULL
);

CREATE TABLE "namespace_policies" (
	"namespace" text COLLATE "C" PRIMARY KEY NOT NULL,
	"policy" text COLLATE "C" NOT NULL,
	"version" bigint NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);

CREATE TABLE "gc_tombstones" (
	"digest" text COLLATE "C" PRIMARY KEY NOT NULL,
	"generation" bigint NOT NULL,
	"state" text COLLATE "C" NOT NULL,
	"size" bigint NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);
CREATE INDEX "gc_tombstones_state" ON "gc_tombstones" ("state");

CREATE TABLE "gc_pins" (
	"token" text COLLATE "C" PRIMARY KEY NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL
);
CREATE INDEX "gc_pins_digest" ON "gc_pins" ("digest");

CREATE TABLE "gc_state" (
	"id" bigint PRIMARY KEY NOT NULL,
	"generation" bigint NOT NULL,
	"holder" text COLLATE "C",
	"held_until" bigint
);
INSERT INTO "gc_state" ("id", "generation") VALUES (1, 0);

CREATE TABLE "manifest_pulls" (
	"repository" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"pulled_at" bigint NOT NULL,
	PRIMARY KEY ("repository", "digest")
);

CREATE TABLE "webhooks" (
	"id" text COLLATE "C" PRIMARY KEY NOT NULL,
	"url" text COLLATE "C" NOT NULL,
	"events" text COLLATE "C" NOT NULL,
	"namespaces" text COLLATE "C",
	"secret" text COLLATE "C" NOT NULL,
	"cursor_seq" bigint NOT NULL,
	"attempts" bigint DEFAULT 0 NOT NULL,
	"next_attempt_at" bigint DEFAULT 0 NOT NULL,
	"last_error" text COLLATE "C",
	"delivered" bigint DEFAULT 0 NOT NULL,
	"created_by" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL
);

CREATE TABLE "webhook_dead_letters" (
	"webhook_id" text COLLATE "C" NOT NULL,
	"seq" bigint NOT NULL,
	"attempts" bigint NOT NULL,
	"last_error" text COLLATE "C",
	"failed_at" bigint NOT NULL,
	PRIMARY KEY ("webhook_id", "seq")
);

CREATE TABLE "event_checkpoints" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"head_hash" text COLLATE "C" NOT NULL,
	"time" bigint NOT NULL,
	"key_id" text COLLATE "C" NOT NULL,
	"signature" text COLLATE "C" NOT NULL
);

CREATE TABLE "search_docs" (
	"id" bigint PRIMARY KEY NOT NULL,
	"repository_id" bigint NOT NULL,
	"repository" text COLLATE "C" NOT NULL,
	"namespace" text COLLATE "C" NOT NULL,
	"digest" text COLLATE "C" NOT NULL,
	"media_type" text COLLATE "C" NOT NULL,
	"type" text COLLATE "C" NOT NULL,
	"subject" text COLLATE "C",
	"annotations" text COLLATE "C",
	"annotation_text" text COLLATE "C" DEFAULT '' NOT NULL,
	"tags" text COLLATE "C" DEFAULT '' NOT NULL,
	"signed" bigint DEFAULT 0 NOT NULL,
	"public" bigint DEFAULT 0 NOT NULL,
	"size" bigint NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	-- VIRTUAL in SQLite; PostgreSQL 15 only has STORED. Same expression.
	"scope" text COLLATE "C" GENERATED ALWAYS AS (CASE WHEN "public" = 1 THEN 'public' ELSE '' END || CASE WHEN "subject" IS NULL THEN '' ELSE ' referrer' END) STORED
);
CREATE UNIQUE INDEX "search_docs_manifest" ON "search_docs" ("repository_id", "digest");
CREATE INDEX "search_docs_updated" ON "search_docs" ("updated_at", "id");
CREATE INDEX "search_docs_repository" ON "search_docs" ("repository", "id");
CREATE INDEX "search_docs_namespace" ON "search_docs" ("namespace", "updated_at", "id");
CREATE INDEX "search_docs_public" ON "search_docs" ("public", "updated_at", "id");
CREATE INDEX "search_docs_facets" ON "search_docs" ("public", "type", "updated_at", "id", "namespace", "signed", "subject", "repository");

CREATE TABLE "search_downloads" (
	"repository" text COLLATE "C" NOT NULL,
	"ref" text COLLATE "C" NOT NULL,
	"count" bigint DEFAULT 0 NOT NULL,
	PRIMARY KEY ("repository", "ref")
);

CREATE TABLE "search_stars" (
	"repository" text COLLATE "C" NOT NULL,
	"user" text COLLATE "C" NOT NULL,
	"created_at" bigint NOT NULL,
	PRIMARY KEY ("repository", "user")
);

CREATE TABLE "ui_sessions" (
	"id_hash" text COLLATE "C" PRIMARY KEY NOT NULL,
	"user_id" bigint NOT NULL,
	"generation" bigint NOT NULL,
	"csrf" text COLLATE "C" NOT NULL,
	"expires_at" bigint NOT NULL
);

-- AUTOINCREMENT triggers: one per SQLite AUTOINCREMENT column (static SQL: plans are cached) ----

CREATE FUNCTION principals_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := greatest((SELECT max(id) FROM "principals"), (SELECT seq FROM autoincrement_counters WHERE name = 'principals'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "principals_autoincrement" BEFORE INSERT ON "principals" FOR EACH ROW EXECUTE FUNCTION principals_autoincrement();
CREATE FUNCTION principals_autoincrement_floor() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD.id > coalesce((SELECT max(id) FROM "principals"), 0) THEN
    INSERT INTO autoincrement_counters AS k (name, seq) VALUES ('principals', OLD.id)
      ON CONFLICT (name) DO UPDATE SET seq = greatest(k.seq, excluded.seq);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "principals_autoincrement_floor" AFTER DELETE ON "principals" FOR EACH ROW EXECUTE FUNCTION principals_autoincrement_floor();

CREATE FUNCTION repositories_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := greatest((SELECT max(id) FROM "repositories"), (SELECT seq FROM autoincrement_counters WHERE name = 'repositories'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "repositories_autoincrement" BEFORE INSERT ON "repositories" FOR EACH ROW EXECUTE FUNCTION repositories_autoincrement();
CREATE FUNCTION repositories_autoincrement_floor() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD.id > coalesce((SELECT max(id) FROM "repositories"), 0) THEN
    INSERT INTO autoincrement_counters AS k (name, seq) VALUES ('repositories', OLD.id)
      ON CONFLICT (name) DO UPDATE SET seq = greatest(k.seq, excluded.seq);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "repositories_autoincrement_floor" AFTER DELETE ON "repositories" FOR EACH ROW EXECUTE FUNCTION repositories_autoincrement_floor();

CREATE FUNCTION bundles_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := greatest((SELECT max(id) FROM "bundles"), (SELECT seq FROM autoincrement_counters WHERE name = 'bundles'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "bundles_autoincrement" BEFORE INSERT ON "bundles" FOR EACH ROW EXECUTE FUNCTION bundles_autoincrement();
CREATE FUNCTION bundles_autoincrement_floor() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD.id > coalesce((SELECT max(id) FROM "bundles"), 0) THEN
    INSERT INTO autoincrement_counters AS k (name, seq) VALUES ('bundles', OLD.id)
      ON CONFLICT (name) DO UPDATE SET seq = greatest(k.seq, excluded.seq);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "bundles_autoincrement_floor" AFTER DELETE ON "bundles" FOR EACH ROW EXECUTE FUNCTION bundles_autoincrement_floor();

CREATE FUNCTION bundle_history_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := greatest((SELECT max(id) FROM "bundle_history"), (SELECT seq FROM autoincrement_counters WHERE name = 'bundle_history'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "bundle_history_autoincrement" BEFORE INSERT ON "bundle_history" FOR EACH ROW EXECUTE FUNCTION bundle_history_autoincrement();
CREATE FUNCTION bundle_history_autoincrement_floor() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD.id > coalesce((SELECT max(id) FROM "bundle_history"), 0) THEN
    INSERT INTO autoincrement_counters AS k (name, seq) VALUES ('bundle_history', OLD.id)
      ON CONFLICT (name) DO UPDATE SET seq = greatest(k.seq, excluded.seq);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "bundle_history_autoincrement_floor" AFTER DELETE ON "bundle_history" FOR EACH ROW EXECUTE FUNCTION bundle_history_autoincrement_floor();

CREATE FUNCTION events_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.seq IS NULL THEN
    NEW.seq := greatest((SELECT max(seq) FROM "events"), (SELECT seq FROM autoincrement_counters WHERE name = 'events'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "events_autoincrement" BEFORE INSERT ON "events" FOR EACH ROW EXECUTE FUNCTION events_autoincrement();

CREATE FUNCTION scan_jobs_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := greatest((SELECT max(id) FROM "scan_jobs"), (SELECT seq FROM autoincrement_counters WHERE name = 'scan_jobs'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "scan_jobs_autoincrement" BEFORE INSERT ON "scan_jobs" FOR EACH ROW EXECUTE FUNCTION scan_jobs_autoincrement();
CREATE FUNCTION scan_jobs_autoincrement_floor() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD.id > coalesce((SELECT max(id) FROM "scan_jobs"), 0) THEN
    INSERT INTO autoincrement_counters AS k (name, seq) VALUES ('scan_jobs', OLD.id)
      ON CONFLICT (name) DO UPDATE SET seq = greatest(k.seq, excluded.seq);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "scan_jobs_autoincrement_floor" AFTER DELETE ON "scan_jobs" FOR EACH ROW EXECUTE FUNCTION scan_jobs_autoincrement_floor();

CREATE FUNCTION search_docs_autoincrement() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.id IS NULL THEN
    NEW.id := greatest((SELECT max(id) FROM "search_docs"), (SELECT seq FROM autoincrement_counters WHERE name = 'search_docs'), 0) + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "search_docs_autoincrement" BEFORE INSERT ON "search_docs" FOR EACH ROW EXECUTE FUNCTION search_docs_autoincrement();
CREATE FUNCTION search_docs_autoincrement_floor() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF OLD.id > coalesce((SELECT max(id) FROM "search_docs"), 0) THEN
    INSERT INTO autoincrement_counters AS k (name, seq) VALUES ('search_docs', OLD.id)
      ON CONFLICT (name) DO UPDATE SET seq = greatest(k.seq, excluded.seq);
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "search_docs_autoincrement_floor" AFTER DELETE ON "search_docs" FOR EACH ROW EXECUTE FUNCTION search_docs_autoincrement_floor();

-- The event log is append-only (as drizzle/0001). TRUNCATE skips row triggers, so it is refused too.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'events are append-only'; END $$;
CREATE TRIGGER "events_no_update" BEFORE UPDATE ON "events" FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER "events_no_delete" BEFORE DELETE ON "events" FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER "events_no_truncate" BEFORE TRUNCATE ON "events" FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- Search document maintenance (drizzle/0011, 0012), the same statements in plpgsql. Left out:
-- the FTS5 index search_fts and its triggers search_docs_ai/ad/au, which only feed it; the
-- PostgreSQL search index comes in its own migration. PostgreSQL runs AFTER ROW triggers at the
-- end of the statement rather than between rows; for these derived columns the end state is
-- the same (each trigger recomputes from the tables rather than adjusting by increments).

-- A manifest's tag list: the 50 most recently moved names, as the SQLite triggers build it.
CREATE FUNCTION search_tag_list(repo bigint, manifest text) RETURNS text
  LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT coalesce((SELECT string_agg(t.name, ' ' ORDER BY t.updated_at DESC, t.name)
    FROM (SELECT name, updated_at FROM tags WHERE repository_id = repo AND digest = manifest
          ORDER BY updated_at DESC, name LIMIT 50) t), '') $$;

-- 1 when a cosign/sigstore signature refers to the manifest (by subject or by sha256-….sig tag).
CREATE FUNCTION search_is_signed(repo bigint, manifest text) RETURNS bigint
  LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT (EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = repo AND s.subject = manifest
            AND (s.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR s.artifact_type ILIKE 'application/vnd.dev.sigstore.bundle%'))
      OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = repo AND t.name = replace(manifest, ':', '-') || '.sig'))::int $$;

-- A family entry's searchable words.
CREATE FUNCTION search_family_words(entry text) RETURNS text
  LANGUAGE sql IMMUTABLE SET search_path FROM CURRENT AS $$
  SELECT trim(coalesce(json_extract(entry, '$.name'), '') || ' ' || coalesce(json_extract(entry, '$.title'), '') || ' '
    || coalesce(json_extract(entry, '$.owner'), '') || ' ' || coalesce(json_extract(entry, '$.description'), '')) $$;

CREATE FUNCTION search_manifest_ai() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO search_docs (repository_id, repository, namespace, digest, media_type, type, subject, annotations, annotation_text, tags, signed, public, size, created_at, updated_at)
  SELECT NEW.repository_id, r.name,
    CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END,
    NEW.digest, NEW.media_type, coalesce(NEW.artifact_type, NEW.media_type), NEW.subject, NEW.annotations,
    coalesce((SELECT string_agg(a.key || ' ' || a.value, ' ' ORDER BY a.n) FROM json_each(NEW.annotations) WITH ORDINALITY AS a(key, value, n)), '')
      || CASE WHEN r.name ILIKE '\_registry/%' ESCAPE '\' THEN coalesce((SELECT ' ' || search_family_words(v.entry) FROM family_entry_versions v
           WHERE v.family = substr(r.name, 11) AND v.digest = NEW.digest LIMIT 1), '') ELSE '' END,
    search_tag_list(NEW.repository_id, NEW.digest),
    search_is_signed(NEW.repository_id, NEW.digest),
    EXISTS (SELECT 1 FROM repository_visibility v WHERE v.name = r.name AND v.visibility = 'public')::int,
    NEW.size, NEW.created_at, NEW.created_at
  FROM repositories r WHERE r.id = NEW.repository_id;
  UPDATE search_docs SET signed = 1 WHERE NEW.subject IS NOT NULL AND repository_id = NEW.repository_id AND digest = NEW.subject
    AND (NEW.artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR NEW.artifact_type ILIKE 'application/vnd.dev.sigstore.bundle%');
  RETURN NULL;
END $$;
CREATE TRIGGER "search_manifest_ai" AFTER INSERT ON "manifests" FOR EACH ROW EXECUTE FUNCTION search_manifest_ai();

CREATE FUNCTION search_manifest_ad() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM search_docs WHERE repository_id = OLD.repository_id AND digest = OLD.digest;
  UPDATE search_docs SET signed = search_is_signed(OLD.repository_id, OLD.subject)
    WHERE OLD.subject IS NOT NULL AND repository_id = OLD.repository_id AND digest = OLD.subject;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_manifest_ad" AFTER DELETE ON "manifests" FOR EACH ROW EXECUTE FUNCTION search_manifest_ad();

CREATE FUNCTION search_tag_ai() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET updated_at = NEW.updated_at, tags = search_tag_list(NEW.repository_id, NEW.digest)
    WHERE repository_id = NEW.repository_id AND digest = NEW.digest;
  UPDATE search_docs SET signed = 1 WHERE NEW.name ILIKE 'sha256-%.sig' AND repository_id = NEW.repository_id
    AND digest = replace(substr(NEW.name, 1, length(NEW.name) - 4), 'sha256-', 'sha256:');
  RETURN NULL;
END $$;
CREATE TRIGGER "search_tag_ai" AFTER INSERT ON "tags" FOR EACH ROW EXECUTE FUNCTION search_tag_ai();

CREATE FUNCTION search_tag_au() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET tags = search_tag_list(OLD.repository_id, OLD.digest)
    WHERE repository_id = OLD.repository_id AND digest = OLD.digest;
  UPDATE search_docs SET updated_at = NEW.updated_at, tags = search_tag_list(NEW.repository_id, NEW.digest)
    WHERE repository_id = NEW.repository_id AND digest = NEW.digest;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_tag_au" AFTER UPDATE ON "tags" FOR EACH ROW EXECUTE FUNCTION search_tag_au();

CREATE FUNCTION search_tag_ad() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET tags = search_tag_list(OLD.repository_id, OLD.digest)
    WHERE repository_id = OLD.repository_id AND digest = OLD.digest;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_tag_ad" AFTER DELETE ON "tags" FOR EACH ROW EXECUTE FUNCTION search_tag_ad();

CREATE FUNCTION search_visibility_ai() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET public = (NEW.visibility = 'public')::int WHERE repository = NEW.name;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_visibility_ai" AFTER INSERT ON "repository_visibility" FOR EACH ROW EXECUTE FUNCTION search_visibility_ai();

CREATE FUNCTION search_visibility_au() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET public = 0 WHERE repository = OLD.name;
  UPDATE search_docs SET public = (NEW.visibility = 'public')::int WHERE repository = NEW.name;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_visibility_au" AFTER UPDATE ON "repository_visibility" FOR EACH ROW EXECUTE FUNCTION search_visibility_au();

CREATE FUNCTION search_visibility_ad() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET public = 0 WHERE repository = OLD.name;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_visibility_ad" AFTER DELETE ON "repository_visibility" FOR EACH ROW EXECUTE FUNCTION search_visibility_ad();

CREATE FUNCTION search_family_ai() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE search_docs SET annotation_text = annotation_text || ' ' || (SELECT search_family_words(v.entry) FROM family_entry_versions v
      WHERE v.family = NEW.family AND v.id = NEW.id AND v.version = NEW.version)
    WHERE repository = '_registry/' || NEW.family AND digest = NEW.digest;
  RETURN NULL;
END $$;
CREATE TRIGGER "search_family_ai" AFTER INSERT ON "family_entry_versions" FOR EACH ROW EXECUTE FUNCTION search_family_ai();
