/**
 * Operations (PRODUCT.md §9, §11 "Operations"): online garbage collection, tag immutability,
 * retention and quotas per namespace. Routes:
 *   POST /api/v1/gc {dryRun}                       registry.admin
 *   PUT|GET /api/v1/namespaces/{ns}/policies       namespace.manage
 *   GET /api/v1/namespaces/{ns}/usage              namespace.manage
 * Hooks: guardPush (immutable tags, quota; references are re-checked by the store), guardDelete
 * (immutable tags), checkPull (pull times for retention).
 */
import { z } from 'zod';
import { AppError, ociError } from '../errors/catalogue.js';
import type { Protection } from '../governance/contracts.js';
import type { ManifestPush, DeleteTarget, Tx } from '../governance/hooks.js';
import type { ModuleDeps } from '../governance/module.js';
import { readJson } from '../http/json.js';
import { GarbageCollector, type GcReport } from './gc.js';
import { EMPTY_POLICY, immutableRuleFor, namespaceOf, policySchema, type NamespacePolicy } from './policy.js';
import { PullRecorder } from './pulls.js';
import { OperationsStore } from './store.js';

export type { GcReport } from './gc.js';

const NAMESPACE_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const PULL_FLUSH_MS = 30_000;

/** The collector most recently registered in this process: the CLI starts a registry and runs it. */
let latestCollector: GarbageCollector | undefined;

function assertNamespace(ns: string): string {
  if (ns.length > 255 || !NAMESPACE_RE.test(ns)) throw ociError('NAME_INVALID', 'invalid namespace', { detail: { namespace: ns } });
  return ns;
}

// dryRun is required: an empty body must never delete by accident.
const gcBody = z.object({ dryRun: z.boolean() }).strict();

export function registerOperations(deps: ModuleDeps, modules: { protection: Protection }): void {
  const { app, access, config, db, governance, log } = deps;
  const store = new OperationsStore(db);
  const pulls = new PullRecorder(store, log);
  const graceMs = config.gcGraceSeconds * 1000;
  const gc = new GarbageCollector(store, deps.driver, governance, modules.protection, pulls, graceMs, log, deps.metrics);
  latestCollector = gc;

  const policyOf = (ns: string, q?: Tx): NamespacePolicy => store.policy(ns, q)?.policy ?? EMPTY_POLICY;

  governance.add({
    name: 'operations',
    guardPush(push: ManifestPush, tx: Tx): void {
      // The GC fence for references (blobs and child manifests still there) is
      // RegistryStore.putManifest's own re-check in this same transaction.
      const ns = namespaceOf(push.repository);
      const policy = policyOf(ns, tx);
      // Most namespaces have no immutable tags: no repository lookup then.
      const repoId = policy.immutableTags.length > 0 ? store.repositoryId(push.repository, tx) : undefined;
      if (repoId !== undefined) {
        for (const tag of push.tags) {
          const rule = immutableRuleFor(policy, tag);
          const current = rule ? store.tagDigest(repoId, tag, tx) : undefined;
          if (rule && current !== undefined && current !== push.digest) {
            throw ociError('DENIED', `tag ${tag} is immutable: rule ${JSON.stringify(rule)} of namespace ${ns}`, { detail: { rule, namespace: ns, tag, digest: current } });
          }
        }
      }
      if (policy.quotaBytes !== undefined && policy.quotaBytes !== null) {
        const sizes = new Map<string, number>(push.parsed.blobs.map((b) => [b.digest, b.size]));
        sizes.set(push.digest, push.payload.length);
        const counted = store.countedInNamespace(ns, [...sizes.keys()], tx);
        let added = 0;
        for (const [d, size] of sizes) if (!counted.has(d)) added += size;
        if (added > 0) {
          const bytes = store.usage(ns, tx);
          if (bytes + added > policy.quotaBytes) {
            throw ociError('DENIED', `namespace ${ns} quota exceeded: ${bytes} bytes used + ${added} pushed > quotaBytes ${policy.quotaBytes}`, {
              detail: { namespace: ns, bytes, pushBytes: added, quotaBytes: policy.quotaBytes },
            });
          }
        }
      }
    },
    guardDelete(target: DeleteTarget, tx: Tx): void {
      if (target.kind === 'blob') return; // no tag goes with a blob: immutability cannot apply (and GC asks per blob)
      const ns = namespaceOf(target.repository);
      const policy = policyOf(ns, tx);
      if (policy.immutableTags.length === 0) return;
      const repoId = store.repositoryId(target.repository, tx);
      if (repoId === undefined) return;
      let tagsHit: string[] = [];
      if (target.kind === 'tag' && target.tag) tagsHit = [target.tag];
      else if (target.kind === 'manifest' && target.digest) tagsHit = store.tagsOf(repoId, target.digest, tx);
      else if (target.kind === 'repository') tagsHit = store.tagsOf(repoId, null, tx);
      for (const tag of tagsHit) {
        const rule = immutableRuleFor(policy, tag);
        if (rule) throw ociError('DENIED', `tag ${tag} is immutable: rule ${JSON.stringify(rule)} of namespace ${ns}`, { detail: { rule, namespace: ns, tag } });
      }
    },
    checkPull(target): void {
      pulls.record(target.repository, target.digest);
    },
  });

  app.post('/api/v1/gc', async (c) => {
    access.require(c, { kind: 'registry.admin' });
    const body = await readJson(c, gcBody);
    const report = await gc.run({ dryRun: body.dryRun, actor: c.get('actor') });
    return c.json(report, 200);
  });

  app.put('/api/v1/namespaces/:ns/policies', async (c) => {
    const ns = assertNamespace(c.req.param('ns'));
    access.require(c, { kind: 'namespace.manage', namespace: ns });
    const body = await readJson(c, policySchema);
    const policy: NamespacePolicy = { immutableTags: body.immutableTags, retention: body.retention, quotaBytes: body.quotaBytes ?? null };
    const version = store.setPolicy(ns, policy, c.get('actor'));
    return c.json({ namespace: ns, version, ...policy }, 200);
  });

  app.get('/api/v1/namespaces/:ns/policies', (c) => {
    const ns = assertNamespace(c.req.param('ns'));
    access.require(c, { kind: 'namespace.manage', namespace: ns });
    const p = store.policy(ns);
    return c.json({ namespace: ns, version: p?.version ?? 0, ...(p?.policy ?? EMPTY_POLICY) }, 200);
  });

  app.get('/api/v1/namespaces/:ns/usage', (c) => {
    const ns = assertNamespace(c.req.param('ns'));
    access.require(c, { kind: 'namespace.manage', namespace: ns });
    return c.json({ namespace: ns, bytes: store.usage(ns), quotaBytes: policyOf(ns).quotaBytes ?? null }, 200);
  });

  schedule(deps, gc, pulls, store);
}

/** Background work: pull-time flushes, the GC interval, and resuming a sweep a crash interrupted. */
function schedule(deps: ModuleDeps, gc: GarbageCollector, pulls: PullRecorder, store: OperationsStore): void {
  const { db, log, config } = deps;
  const timers: NodeJS.Timeout[] = [];
  // Modules get no shutdown hook: a timer stops itself once the database is closed.
  const alive = (): boolean => {
    if (db.$client.open) return true;
    for (const t of timers) clearInterval(t);
    return false;
  };
  const background = (what: string, fn: () => Promise<unknown>): void => {
    if (!alive() || gc.busy) return;
    fn().catch((err: unknown) => {
      if (alive() && !(err instanceof AppError && err.code === 'CONFLICT')) log.error({ err }, `${what} failed`);
    });
  };
  timers.push(setInterval(() => alive() && pulls.flush(), PULL_FLUSH_MS));
  if (config.gcIntervalSeconds > 0) timers.push(setInterval(() => background('scheduled gc', () => gc.run({ dryRun: false, actor: 'gc' })), config.gcIntervalSeconds * 1000));
  // A crash between a sweep's metadata commit and its byte deletion: finish it soon after start
  // (retried while another collector, or a dead one's lease, holds the database lease).
  const resume = (): void => {
    if (!alive() || store.deletingTombstones().length === 0) return clearInterval(resumer);
    background('gc resume', () => gc.resume());
  };
  const resumer = setInterval(resume, 30_000);
  timers.push(resumer, setTimeout(resume, 100));
  for (const t of timers) t.unref();
}

/** `npm run cli -- gc [--dry-run]`: one run against the data directory, with every module's hooks. */
export async function runGcCommand(dryRun: boolean, actor: string): Promise<GcReport> {
  const { loadConfig } = await import('../config/index.js');
  const { startRegistry } = await import('../server.js');
  const { createLogger } = await import('../log.js');
  // The full registry on a loopback port 0 (hooks of every module registered), closed afterwards.
  const config = loadConfig(process.env, { port: 0, host: '127.0.0.1', gcIntervalSeconds: 0 });
  const reg = await startRegistry(config, createLogger('warn'));
  try {
    if (!latestCollector) throw new Error('operations module not registered');
    return await latestCollector.run({ dryRun, actor });
  } finally {
    await reg.close();
  }
}
