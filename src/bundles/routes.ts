/**
 * HTTP surface of bundles (PRODUCT.md §11 "Bundles"): parse, authorise, call the service, shape
 * the answer. Who may do what is `bundle.transition` (to the target state) on the bundle's
 * repository; reads need pull on it; platform feature groups are registry administration.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { AccessControl } from '../auth/access.js';
import { tryParseDigest } from '../core/digest.js';
import { isValidName } from '../core/names.js';
import { ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import { readJson } from '../http/json.js';
import { featureGroupsSchema, issuesOf, scopeKeyOf, scopeOfKey, scopeSchema, type BundleConfig, type Scope, type ScopeKey } from './format.js';
import { BUNDLE_STATES } from './lifecycle.js';
import type { BundleService } from './service.js';
import type { BundleRow, BundleStore, HistoryRow } from './store.js';

const reason = z.string().max(4096).optional();
export const publishBody = z.object({
  repository: z.string().refine(isValidName, 'must be a valid repository name'),
  digest: z.string().refine((d) => tryParseDigest(d) !== null, 'must be a digest such as sha256:<64 hex>'),
});
export const transitionBody = z.object({ to: z.enum(BUNDLE_STATES), reason });
export const activationBody = z.object({ scope: scopeSchema, bundle_id: z.string().min(1).max(128), bundle_version: z.string().min(1).max(128), reason });
export const rollbackBody = z.object({ scope: scopeSchema, reason });
export const featureGroupsBody = featureGroupsSchema.extend({ reason });

const iso = (ms: number): string => new Date(ms).toISOString();

export function bundleSummary(b: BundleRow) {
  return { bundle_id: b.bundleId, bundle_version: b.bundleVersion, state: b.state, repository: b.repository, digest: b.digest };
}

function historyItem(h: HistoryRow) {
  return {
    event_seq: h.eventSeq,
    action: h.action,
    from: h.fromState,
    to: h.toState,
    ...(h.scope ? { scope: scopeOfKey(scopeFromString(h.scope)) } : {}),
    actor: h.actor,
    reason: h.reason,
    time: iso(h.time),
  };
}

function scopeFromString(s: string): ScopeKey {
  const [environment, modelFamily, tenant] = JSON.parse(s) as [string, string, string];
  return { environment, modelFamily, tenant };
}

/** Query-string scope, validated like a body (empty strings are refused). */
function queryScope(c: Context<AppEnv>): Scope {
  const q = c.req.query();
  const raw = { environment: q.environment, model_family: q.model_family, ...(q.tenant !== undefined ? { tenant: q.tenant } : {}) };
  const r = scopeSchema.safeParse(raw);
  if (!r.success) {
    const detail = issuesOf(r.error, '?');
    throw ociError('INVALID_PAYLOAD', detail.map((d) => `${d.path}: ${d.message}`).join('; '), { detail });
  }
  return r.data;
}

export function registerBundleRoutes(app: Hono<AppEnv>, access: AccessControl, store: BundleStore, service: BundleService): void {
  function record(b: BundleRow) {
    const config = JSON.parse(b.config) as BundleConfig;
    return {
      ...bundleSummary(b),
      kind: b.kind,
      model_family: b.modelFamily,
      artifact_type: b.artifactType,
      required_feature_groups: config.required_feature_groups,
      config_hash: config.config_hash,
      provenance: config.provenance,
      config,
      receipts: JSON.parse(b.receipts) as unknown,
      submitted_by: b.submittedBy,
      submitted_at: iso(b.submittedAt),
      event_seq: b.registeredSeq,
      active_scopes: store.activeScopes(b.id).map(scopeOfKey),
    };
  }

  function bundleOr404(id: string, version: string): BundleRow {
    const b = store.byIdentity(id, version);
    if (!b) throw ociError('UNKNOWN_BUNDLE', `no bundle ${id}@${version}`, { detail: { bundle_id: id, bundle_version: version } });
    return b;
  }

  app.post('/api/v1/bundles', async (c) => {
    const body = await readJson(c, publishBody);
    access.require(c, { kind: 'bundle.transition', repository: body.repository, to: 'REGISTERED' });
    const digest = tryParseDigest(body.digest)!.value;
    const r = await service.publish(body.repository, digest, c.get('actor'));
    if (r.status === 'CONFLICT') {
      throw ociError('CONFLICT', `${r.bundle.bundleId}@${r.bundle.bundleVersion} is already registered as ${r.bundle.repository}@${r.bundle.digest}; publish a correction as a new version`, {
        detail: { existing: bundleSummary(r.bundle), repository: body.repository, digest },
      });
    }
    return c.json({ status: r.status, ...record(r.bundle) }, r.status === 'ACCEPTED' ? 201 : 200);
  });

  app.get('/api/v1/bundles/:bundle_id/:bundle_version', (c) => {
    const b = bundleOr404(c.req.param('bundle_id'), c.req.param('bundle_version'));
    access.require(c, { kind: 'repository', repository: b.repository, action: 'pull' });
    return c.json({ ...record(b), history: store.history(b.id).map(historyItem) });
  });

  app.post('/api/v1/bundles/:bundle_id/:bundle_version/transitions', async (c) => {
    const body = await readJson(c, transitionBody);
    const b = bundleOr404(c.req.param('bundle_id'), c.req.param('bundle_version'));
    access.require(c, { kind: 'bundle.transition', repository: b.repository, to: body.to });
    const r = store.transition(b.id, body.to, c.get('actor'), body.reason ?? null);
    return c.json({ ...bundleSummary(r.bundle), changed: r.eventSeq !== null, event_seq: r.eventSeq });
  });

  app.put('/api/v1/platform/feature-groups', async (c) => {
    const body = await readJson(c, featureGroupsBody);
    access.require(c, { kind: 'registry.admin' });
    const seq = store.setFeatureGroups(body.groups, c.get('actor'), body.reason ?? null);
    return c.json({ groups: store.featureGroups(), changed: seq !== null, event_seq: seq });
  });

  app.post('/api/v1/activations', async (c) => {
    const body = await readJson(c, activationBody);
    const b = bundleOr404(body.bundle_id, body.bundle_version);
    access.require(c, { kind: 'bundle.transition', repository: b.repository, to: 'ACTIVE' });
    if (body.scope.model_family !== b.modelFamily) {
      throw ociError('INCOMPATIBLE', `${b.bundleId}@${b.bundleVersion} is for model family ${b.modelFamily}, not ${body.scope.model_family}`, {
        detail: { scope: body.scope, model_family: b.modelFamily },
      });
    }
    const r = await service.activate(b, scopeKeyOf(body.scope), c.get('actor'), body.reason ?? null);
    return c.json({ scope: body.scope, bundle_id: r.bundle.bundleId, bundle_version: r.bundle.bundleVersion, event_seq: r.eventSeq, repository: r.bundle.repository, digest: r.bundle.digest, changed: !r.noop, replaced: r.replaced ? bundleSummary(r.replaced) : null });
  });

  app.post('/api/v1/activations/rollback', async (c) => {
    const body = await readJson(c, rollbackBody);
    const scope = scopeKeyOf(body.scope);
    const plan = store.rollbackTarget(scope);
    if ('error' in plan) throw ociError('INVALID_TRANSITION', plan.error, { detail: { scope: body.scope } });
    // Both the bundle leaving and the one returning change state: the caller must be allowed both.
    access.require(c, { kind: 'bundle.transition', repository: plan.target.repository, to: 'ACTIVE' });
    if (plan.current) access.require(c, { kind: 'bundle.transition', repository: plan.current.repository, to: 'ACTIVE' });
    const r = await service.rollback(scope, c.get('actor'), body.reason ?? null);
    return c.json({ scope: body.scope, bundle_id: r.bundle.bundleId, bundle_version: r.bundle.bundleVersion, event_seq: r.eventSeq, repository: r.bundle.repository, digest: r.bundle.digest, changed: true, replaced: r.replaced ? bundleSummary(r.replaced) : null });
  });

  /** Deterministic: the scope's activation row (unique per scope), else the tenant-less scope's. */
  app.get('/api/v1/resolve', (c) => {
    const scope = queryScope(c);
    const hit = store.resolve(scopeKeyOf(scope));
    if (!hit) throw ociError('UNKNOWN_BUNDLE', 'no bundle is active for this scope', { detail: { scope } });
    access.require(c, { kind: 'repository', repository: hit.bundle.repository, action: 'pull' });
    return c.json({
      scope,
      resolved_scope: scopeOfKey(hit.resolved),
      fallback: hit.fallback,
      bundle_id: hit.bundle.bundleId,
      bundle_version: hit.bundle.bundleVersion,
      repository: hit.bundle.repository,
      digest: hit.bundle.digest,
      event_seq: hit.eventSeq,
    });
  });

  /** Scope history: the active bundle, the rollback stack and every change, filtered to what the caller may pull. */
  app.get('/api/v1/activations', (c) => {
    const scope = queryScope(c);
    const key = scopeKeyOf(scope);
    const visible = (b: BundleRow): boolean => access.can(c, { kind: 'repository', repository: b.repository, action: 'pull' });
    const active = store.active(key);
    const stack = store
      .stack(key)
      .map((e) => ({ bundle: store.byRowId(e.bundle)!, eventSeq: e.eventSeq }))
      .filter((e) => visible(e.bundle));
    return c.json({
      scope,
      active: active && visible(active.bundle) ? { ...bundleSummary(active.bundle), event_seq: active.eventSeq } : null,
      rollback_stack: stack.map((e) => ({ ...bundleSummary(e.bundle), event_seq: e.eventSeq })),
      history: store
        .scopeHistory(key)
        .filter((h) => visible(h.bundle))
        .map((h) => ({ bundle_id: h.bundle.bundleId, bundle_version: h.bundle.bundleVersion, ...historyItem(h.row) })),
    });
  });
}
