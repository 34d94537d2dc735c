/**
 * The only code that reads configuration. Sources, later wins: defaults, a config file
 * (YAML or JSON; path from ARTIFACT_STORE_CONFIG, else ./artifact-store.yaml if present),
 * then environment variables named ARTIFACT_STORE_ + the setting in upper snake case
 * (e.g. dataDir -> ARTIFACT_STORE_DATA_DIR). Returns a frozen, validated object.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isCidrOrAddress } from '../ops/trusted-proxies.js';

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])], { error: 'expected true, false, 1, 0, yes or no' }).transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const int = (def: number) => z.coerce.number().int().nonnegative().default(def);

export const configSchema = z
  .object({
    port: int(5000),
    host: z.string().default('0.0.0.0'),
    dataDir: z.string().default('./data'),
    /**
     * Metadata in PostgreSQL (`postgres://user:pass@host:5432/db`, `?schema=name` for a schema
     * other than public) instead of `<dataDir>/metadata.db` (SQLite, the embedded default).
     * Several registry processes share one such database and one S3 bucket (PRODUCT.md §9).
     */
    databaseUrl: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// URL').optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Where blob bytes live: local disk (embedded default) or an S3-compatible bucket. */
    storage: z.enum(['fs', 's3']).default('fs'),
    /** fsync blob bytes before they become visible under their digest. */
    fsync: bool.default(true),
    /**
     * Local disk: upload appends of 1 MiB or more bypass the page cache (O_DIRECT; only with
     * fsync). Less kernel CPU per pushed GiB and no eviction of cached blobs by uploads; the price
     * is that a just-pushed blob's first pull reads the disk (src/data/direct-writer.ts).
     */
    uploadDirectIo: bool.default(true),
    s3Endpoint: z.string().optional(),
    s3Bucket: z.string().optional(),
    s3Region: z.string().default('us-east-1'),
    s3Prefix: z.string().default(''),
    s3AccessKeyId: z.string().optional(),
    s3SecretAccessKey: z.string().optional(),
    s3ForcePathStyle: bool.default(false),
    /** Answer blob GET with a 307 to a presigned URL instead of streaming through the server. */
    s3Redirect: bool.default(false),
    s3PartSize: int(8 * 1024 * 1024),
    /** Largest manifest accepted on PUT, in bytes. */
    maxManifestSize: int(4 * 1024 * 1024),
    /** Largest blob accepted, in bytes; 0 means no limit. */
    maxBlobSize: int(0),
    /** Upload sessions untouched for this long are removed by the background sweep. */
    uploadTtlSeconds: int(24 * 3600),
    /** Open upload sessions one caller may hold at once (429 beyond); 0 means no limit. */
    maxUploadsPerCaller: int(100),
    /** Advertised as OCI-Chunk-Min-Length: the smallest PATCH (but the last) we ask clients for. */
    chunkMinLength: int(1),
    /** Default and maximum page sizes for tag and catalog listings. */
    pageSize: int(1000),
    /** `token`: users, organisations and API keys with docker's token flow; `none`: no authentication (trusted networks, tests). */
    auth: z.enum(['token', 'none']).default('token'),
    /** The `service` of the token flow (the JWT audience). */
    authService: z.string().default('artifact-store'),
    authIssuer: z.string().default('artifact-store'),
    /**
     * Reverse proxies (CIDRs or addresses) whose X-Forwarded-For / Forwarded header names the
     * client; from any other peer those headers are ignored. Env: comma-separated.
     */
    trustedProxies: z
      .union([z.array(z.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))])
      .pipe(z.array(z.string().refine(isCidrOrAddress, 'expected an IP address or CIDR such as 10.0.0.0/8 or ::1')))
      .default([]),
    /** The token endpoint URL advertised in challenges; by default derived from the request's Host. */
    authRealm: z.string().url().optional(),
    tokenTtlSeconds: int(300),
    /**
     * The key files, default `<dataDir>/auth/…`. Replicas (several processes on one PostgreSQL)
     * must share them, e.g. one mounted secret: a token signed by one process is verified by the
     * others, and every process signs checkpoints with the one event-log key. Created if missing.
     */
    tokenSigningKeyFile: z.string().min(1).optional(),
    eventLogSigningKeyFile: z.string().min(1).optional(),
    refreshTokenTtlSeconds: int(30 * 24 * 3600),
    /** Requests per second per credential (or per address for anonymous callers); 0 disables. */
    rateLimitPerSecond: int(200),
    rateLimitBurst: int(400),
    /** A connection idle this long (no bytes either way) is closed; there is no whole-request limit. */
    idleTimeoutMs: int(120_000),
    /** How often the event log head is signed (a checkpoint); 0 = only on demand. */
    checkpointIntervalSeconds: int(3600),
    /** Webhook targets on loopback, private or link-local addresses are refused unless this is set (SSRF guard). */
    webhookAllowPrivateTargets: bool.default(false),
    /** Attempts per event before it becomes a dead letter. */
    webhookMaxAttempts: z.coerce.number().int().min(1).default(8),
    /** First retry delay; doubles per attempt (with jitter), capped at 5 minutes. */
    webhookRetryBaseMs: int(1000),
    /** A receiver that does not answer within this is a failed attempt. */
    webhookTimeoutMs: int(10_000),
    /**
     * Processes sharing a database deliver each subscription from one of them, under a lease this
     * long, renewed while it runs: after a crash another process takes over within this time.
     * At least a second: it is renewed from the dispatcher's 250 ms loop, a third of it ahead.
     */
    webhookLeaseMs: z.coerce.number().int().min(1000).default(30_000),
    /** GC keeps blobs uploaded or linked within this many seconds (0 is valid: pushers then re-upload more often). */
    gcGraceSeconds: int(3600),
    /** Seconds between scheduled garbage collections; 0 turns the schedule off. */
    gcIntervalSeconds: int(86_400),
    /** How long SIGTERM waits for in-flight requests before closing anyway. */
    shutdownTimeoutMs: int(30_000),
    /** A sigstore `trusted_root.json` for keyless signatures (namespaces may supply their own). */
    trustedRootPath: z.string().optional(),
  })
  .strict();

export type Config = Readonly<z.infer<typeof configSchema>>;

const ENV_PREFIX = 'ARTIFACT_STORE_';

export const envName = (key: string): string => ENV_PREFIX + key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

function configFilePath(env: NodeJS.ProcessEnv): string | undefined {
  return env[`${ENV_PREFIX}CONFIG`] ?? (existsSync('artifact-store.yaml') ? 'artifact-store.yaml' : undefined);
}

function readFileConfig(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  const parsed: unknown = parseYaml(readFileSync(path, 'utf8')); // YAML is a superset of JSON
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`config file ${path}: expected a mapping of settings`);
  return parsed as Record<string, unknown>;
}

/** Environment variables that look like settings but name none (a typo is otherwise silently ignored). */
export function unknownEnvironmentVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  const known = new Set([`${ENV_PREFIX}CONFIG`, ...Object.keys(configSchema.shape).map(envName)]);
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && !known.has(name))
    .sort()
    .map((name) => {
      const close = [...known].find((k) => editDistance(k, name) <= 2);
      return `${name} is not a setting and is ignored${close ? ` (did you mean ${close}?)` : ''}`;
    });
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): Config {
  const file = configFilePath(env);
  const raw: Record<string, unknown> = { ...readFileConfig(file) };
  // Where each value came from, so a problem names the place the operator has to edit.
  const source = new Map<string, string>(Object.keys(raw).map((k) => [k, `config file ${file}`]));
  for (const key of Object.keys(configSchema.shape)) {
    const v = env[envName(key)];
    if (v !== undefined && v !== '') {
      raw[key] = v;
      source.set(key, 'the environment');
    }
  }
  for (const key of Object.keys(overrides)) source.set(key, 'the program');
  Object.assign(raw, overrides);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.flatMap((i) => {
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${source.get(k) ?? 'configuration'}: unknown setting "${k}"`);
      const key = String(i.path[0] ?? '');
      const where = source.get(key) ?? 'configuration';
      const value = key in raw ? ` = ${shown(raw[key])}` : '';
      return [`${key} (file key "${key}" / env ${envName(key)})${value}, set in ${where}: ${i.message}`];
    });
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const cfg = result.data;
  if (cfg.storage === 's3' && !cfg.s3Bucket) throw new Error(`invalid configuration: storage=s3 needs s3Bucket (file key "s3Bucket", env ${envName('s3Bucket')})`);
  return Object.freeze(cfg);
}
