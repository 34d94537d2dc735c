// Configuration of the conformance suite, read from environment variables.
// Nothing here is ever printed with its secret parts (see describeConfig).

export type Workflow = 'pull' | 'push' | 'content-discovery' | 'content-management' | 'referrers';

export interface ConformanceConfig {
  /** Base URL of the registry, e.g. http://127.0.0.1:5000 (no trailing /v2/). */
  rootUrl: string;
  /** Repository used by the suite, e.g. conformance/test. */
  namespace: string;
  /** Second repository, target of cross-repository mounts. */
  crossmountNamespace: string;
  username?: string;
  password?: string;
  workflows: Record<Workflow, boolean>;
  /** Delete manifests before the blobs they reference (default true). */
  deleteManifestBeforeBlobs: boolean;
  /** Treat every skip other than a disabled workflow as a failure (product CI mode). */
  requireOptional: boolean;
  /** Best-effort removal of everything the run pushed (default true). */
  cleanup: boolean;
  /** Seed of the deterministic test content; random per run unless given. */
  seed: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  /** Log every request (method, path without query string, status). */
  debug: boolean;
}

type Env = Record<string, string | undefined>;

function flag(env: Env, name: string, dflt: boolean): boolean {
  const v = env[name];
  if (v === undefined || v.trim() === '') return dflt;
  return !['0', 'false', 'no', 'off'].includes(v.trim().toLowerCase());
}

const NAME_RE = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

export function configFromEnv(env: Env = process.env): ConformanceConfig {
  const root = env.OCI_ROOT_URL?.trim();
  if (!root) throw new Error('OCI_ROOT_URL is required (e.g. http://127.0.0.1:5000)');
  let parsed: URL;
  try {
    parsed = new URL(root);
  } catch {
    throw new Error(`OCI_ROOT_URL is not a URL: ${root}`);
  }
  if (parsed.username || parsed.password) {
    throw new Error('OCI_ROOT_URL must not embed credentials; use OCI_USERNAME / OCI_PASSWORD');
  }
  const namespace = (env.OCI_NAMESPACE ?? 'conformance/test').trim();
  const crossmountNamespace = (env.OCI_CROSSMOUNT_NAMESPACE ?? `${namespace}-mount`).trim();
  for (const [k, v] of [['OCI_NAMESPACE', namespace], ['OCI_CROSSMOUNT_NAMESPACE', crossmountNamespace]]) {
    if (!NAME_RE.test(v!)) throw new Error(`${k} is not a valid repository name: ${v}`);
  }
  if (namespace === crossmountNamespace) {
    throw new Error('OCI_CROSSMOUNT_NAMESPACE must differ from OCI_NAMESPACE');
  }
  const timeout = Number(env.OCI_TIMEOUT_MS ?? '30000');
  return {
    rootUrl: root.replace(/\/+$/, ''),
    namespace,
    crossmountNamespace,
    username: env.OCI_USERNAME || undefined,
    password: env.OCI_PASSWORD || undefined,
    workflows: {
      pull: flag(env, 'OCI_TEST_PULL', true),
      push: flag(env, 'OCI_TEST_PUSH', true),
      'content-discovery': flag(env, 'OCI_TEST_CONTENT_DISCOVERY', true),
      'content-management': flag(env, 'OCI_TEST_CONTENT_MANAGEMENT', true),
      referrers: flag(env, 'OCI_TEST_REFERRERS', true),
    },
    deleteManifestBeforeBlobs: flag(env, 'OCI_DELETE_MANIFEST_BEFORE_BLOBS', true),
    requireOptional: flag(env, 'OCI_REQUIRE_OPTIONAL', false),
    cleanup: flag(env, 'OCI_CLEANUP', true),
    seed: env.OCI_SEED?.trim() || Math.random().toString(36).slice(2, 10),
    timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 30000,
    debug: flag(env, 'OCI_DEBUG', false),
  };
}

/** One-line description safe to print: never includes the password. */
export function describeConfig(cfg: ConformanceConfig): string {
  const on = (Object.keys(cfg.workflows) as Workflow[]).filter((w) => cfg.workflows[w]);
  const auth = cfg.username ? `user ${cfg.username} (password ${cfg.password ? 'set' : 'unset'})` : 'anonymous';
  return `registry ${cfg.rootUrl}, repo ${cfg.namespace}, mount repo ${cfg.crossmountNamespace}, ` +
    `${auth}, workflows [${on.join(', ')}], seed ${cfg.seed}` +
    (cfg.requireOptional ? ', optional checks required' : '');
}
