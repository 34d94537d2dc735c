/**
 * `artifact-store bundle publish|transition|activate|rollback|resolve` for scripts. Like `gc`, it
 * starts the full registry in-process on a loopback port (every module's hooks, the configured
 * storage and trust) and calls the bundle service directly as the operator: whoever can run the
 * CLI can already write the database. Same checks, same events, answers as JSON.
 */
import { tryParseDigest } from '../core/digest.js';
import { isValidName } from '../core/names.js';
import { AppError, ociError } from '../errors/catalogue.js';
import { scopeKeyOf, scopeSchema, type Scope } from './format.js';
import { latestBundles } from './index.js';
import { BUNDLE_STATES, type BundleState } from './lifecycle.js';

export interface BundleCommandOptions {
  reason?: string;
  tenant?: string;
}

const USAGE = 'bundle publish <repository> <digest> | transition <id> <version> <to> | activate <id> <version> <environment> <model_family> | rollback <environment> <model_family> | resolve <environment> <model_family>  [--tenant T] [--reason R]';

function scopeOf(environment: string | undefined, modelFamily: string | undefined, tenant: string | undefined): Scope {
  const r = scopeSchema.safeParse({ environment, model_family: modelFamily, ...(tenant !== undefined ? { tenant } : {}) });
  if (!r.success) throw ociError('INVALID_PAYLOAD', `invalid scope: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export async function runBundleCommand(command: string, args: string[], opts: BundleCommandOptions, actor: string): Promise<unknown> {
  const { loadConfig } = await import('../config/index.js');
  const { startRegistry } = await import('../server.js');
  const { createLogger } = await import('../log.js');
  const config = loadConfig(process.env, { port: 0, host: '127.0.0.1', gcIntervalSeconds: 0 });
  // 'error': the JSON answer on stdout must stay parseable (pino writes to stdout).
  const reg = await startRegistry(config, createLogger('error'));
  try {
    const m = latestBundles();
    if (!m) throw new Error('bundles module not registered');
    const reason = opts.reason ?? null;
    const bundle = (id: string | undefined, version: string | undefined) => {
      const b = id && version ? m.store.byIdentity(id, version) : undefined;
      if (!b) throw ociError('UNKNOWN_BUNDLE', `no bundle ${id ?? ''}@${version ?? ''}`);
      return b;
    };
    switch (command) {
      case 'publish': {
        const [repository, digestArg] = args;
        const digest = digestArg ? tryParseDigest(digestArg)?.value : undefined;
        if (!repository || !isValidName(repository) || !digest) throw new Error(USAGE);
        const r = await m.service.publish(repository, digest, actor);
        if (r.status === 'CONFLICT') throw ociError('CONFLICT', `${r.bundle.bundleId}@${r.bundle.bundleVersion} is already registered as ${r.bundle.repository}@${r.bundle.digest}`);
        return { status: r.status, bundle_id: r.bundle.bundleId, bundle_version: r.bundle.bundleVersion, state: r.bundle.state, repository: r.bundle.repository, digest: r.bundle.digest };
      }
      case 'transition': {
        const [id, version, to] = args;
        if (!to || !(BUNDLE_STATES as readonly string[]).includes(to)) throw new Error(USAGE);
        const r = m.store.transition(bundle(id, version).id, to as BundleState, actor, reason);
        return { bundle_id: r.bundle.bundleId, bundle_version: r.bundle.bundleVersion, state: r.bundle.state, changed: r.eventSeq !== null, event_seq: r.eventSeq };
      }
      case 'activate': {
        const [id, version, environment, modelFamily] = args;
        const b = bundle(id, version);
        const scope = scopeOf(environment, modelFamily, opts.tenant);
        if (scope.model_family !== b.modelFamily) throw ociError('INCOMPATIBLE', `${b.bundleId}@${b.bundleVersion} is for model family ${b.modelFamily}, not ${scope.model_family}`);
        const r = await m.service.activate(b, scopeKeyOf(scope), actor, reason);
        return { scope, bundle_id: r.bundle.bundleId, bundle_version: r.bundle.bundleVersion, event_seq: r.eventSeq, changed: !r.noop };
      }
      case 'rollback': {
        const scope = scopeOf(args[0], args[1], opts.tenant);
        const r = await m.service.rollback(scopeKeyOf(scope), actor, reason);
        return { scope, bundle_id: r.bundle.bundleId, bundle_version: r.bundle.bundleVersion, event_seq: r.eventSeq, changed: true };
      }
      case 'resolve': {
        const scope = scopeOf(args[0], args[1], opts.tenant);
        const hit = m.store.resolve(scopeKeyOf(scope));
        if (!hit) throw ociError('UNKNOWN_BUNDLE', 'no bundle is active for this scope');
        return { scope, resolved_scope: { environment: hit.resolved.environment, model_family: hit.resolved.modelFamily, ...(hit.resolved.tenant ? { tenant: hit.resolved.tenant } : {}) }, fallback: hit.fallback, bundle_id: hit.bundle.bundleId, bundle_version: hit.bundle.bundleVersion, repository: hit.bundle.repository, digest: hit.bundle.digest, event_seq: hit.eventSeq };
      }
      default:
        throw new Error(USAGE);
    }
  } catch (err) {
    // Scripts key on the product code, as they would on the HTTP answer.
    if (err instanceof AppError) throw new Error(`${err.code}: ${err.message}`);
    throw err;
  } finally {
    await reg.close();
  }
}
