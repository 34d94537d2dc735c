/**
 * Replay of the bundles module: bundles, their history, the active bundle per scope, the
 * rollback stack per scope, and the platform feature groups. Mirrors src/bundles/store.ts
 * write for write (the same rows in the same order, so autoincrement ids line up).
 */
import { BUNDLE_TYPES, scopeString, type ScopeKey } from '../../bundles/format.js';
import { need, type Handler, type ParsedEvent, type ReplayContext, type TableRule } from './types.js';

export const bundleTables: TableRule[] = [
  {
    table: 'bundles',
    key: ['id'],
    columns: ['id', 'bundle_id', 'bundle_version', 'kind', 'model_family', 'repository', 'digest', 'artifact_type', 'config', 'receipts', 'state', 'submitted_by', 'submitted_at', 'registered_seq'],
  },
  { table: 'bundle_history', key: ['id'], columns: ['id', 'bundle', 'event_seq', 'action', 'from_state', 'to_state', 'scope', 'actor', 'reason', 'time'] },
  { table: 'bundle_activations', key: ['environment', 'model_family', 'tenant'], columns: ['environment', 'model_family', 'tenant', 'bundle', 'event_seq'] },
  { table: 'bundle_scope_stack', key: ['scope', 'position'], columns: ['scope', 'position', 'bundle', 'event_seq'] },
  { table: 'platform_feature_groups', key: ['name'], columns: ['name', 'version'] },
];

interface ScopeJson {
  environment: string;
  model_family: string;
  tenant?: string;
}
interface Ident {
  bundle_id: string;
  bundle_version: string;
}

const keyOf = (s: ScopeJson): ScopeKey => ({ environment: s.environment, modelFamily: s.model_family, tenant: s.tenant ?? '' });

function bundleRow(ctx: ReplayContext, e: ParsedEvent, b: Ident): { id: number; state: string } {
  return need(ctx.get<{ id: number; state: string }>('SELECT id, state FROM bundles WHERE bundle_id = ? AND bundle_version = ?', b.bundle_id, b.bundle_version), e, `bundle ${b.bundle_id}@${b.bundle_version}`);
}

function history(ctx: ReplayContext, e: ParsedEvent, bundle: number, from: string | null, to: string, scope: string | null): void {
  ctx.run('INSERT INTO bundle_history (bundle, event_seq, action, from_state, to_state, scope, actor, reason, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', bundle, e.seq, e.action, from, to, scope, e.actor, e.reason, e.time);
}

const activeScopes = (ctx: ReplayContext, bundle: number): number => ctx.get<{ n: number }>('SELECT count(*) AS n FROM bundle_activations WHERE bundle = ?', bundle)!.n;

/** store.setActive: the activation row, both bundles' states, their history. */
function setActive(ctx: ReplayContext, e: ParsedEvent, target: { id: number; state: string }, key: ScopeKey, replaced: Ident | null): void {
  ctx.run('DELETE FROM bundle_activations WHERE environment = ? AND model_family = ? AND tenant = ?', key.environment, key.modelFamily, key.tenant);
  ctx.run('INSERT INTO bundle_activations (environment, model_family, tenant, bundle, event_seq) VALUES (?, ?, ?, ?, ?)', key.environment, key.modelFamily, key.tenant, target.id, e.seq);
  ctx.run("UPDATE bundles SET state = 'ACTIVE' WHERE id = ?", target.id);
  history(ctx, e, target.id, target.state, 'ACTIVE', scopeString(key));
  if (replaced) {
    const r = bundleRow(ctx, e, replaced);
    if (r.id !== target.id && activeScopes(ctx, r.id) === 0) {
      ctx.run("UPDATE bundles SET state = 'APPROVED' WHERE id = ?", r.id);
      history(ctx, e, r.id, 'ACTIVE', 'APPROVED', scopeString(key));
    }
  }
}

const replacedOf = (e: ParsedEvent): Ident | null => (e.beforeJson.bundle as Ident | null | undefined) ?? null;

export const bundleHandlers: Record<string, Handler> = {
  'bundle.publish': (ctx, e) => {
    const a = e.afterJson as unknown as Ident & { kind: keyof typeof BUNDLE_TYPES; model_family: string; receipts: unknown; config: unknown };
    const id = ctx.run(
      "INSERT INTO bundles (bundle_id, bundle_version, kind, model_family, repository, digest, artifact_type, config, receipts, state, submitted_by, submitted_at, registered_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'REGISTERED', ?, ?, ?)",
      a.bundle_id, a.bundle_version, a.kind, a.model_family, e.repository, e.digest, need(BUNDLE_TYPES[a.kind], e, 'bundle kind'), JSON.stringify(need(a.config, e, 'bundle config')), JSON.stringify(a.receipts), e.actor, e.time, e.seq,
    ).lastInsertRowid;
    history(ctx, e, Number(id), null, 'REGISTERED', null);
  },
  'bundle.transition': (ctx, e) => {
    const a = e.afterJson as unknown as Ident & { state: string; withdrawn?: ScopeJson[] };
    const b = bundleRow(ctx, e, a);
    const from = (e.beforeJson.state as string | undefined) ?? b.state;
    if (a.state === 'RETIRED') {
      ctx.run('DELETE FROM bundle_activations WHERE bundle = ?', b.id);
      ctx.run('DELETE FROM bundle_scope_stack WHERE bundle = ?', b.id);
    }
    ctx.run('UPDATE bundles SET state = ? WHERE id = ?', a.state, b.id);
    const withdrawn = a.withdrawn ?? [];
    if (withdrawn.length === 0) history(ctx, e, b.id, from, a.state, null);
    for (const s of withdrawn) history(ctx, e, b.id, from, a.state, scopeString(keyOf(s)));
  },
  'bundle.activate': (ctx, e) => {
    const a = e.afterJson as unknown as Ident & { scope: ScopeJson };
    const key = keyOf(a.scope);
    const target = bundleRow(ctx, e, a);
    setActive(ctx, e, target, key, replacedOf(e));
    const top = ctx.get<{ p: number | null }>('SELECT max(position) AS p FROM bundle_scope_stack WHERE scope = ?', scopeString(key))?.p ?? 0;
    ctx.run('INSERT INTO bundle_scope_stack (scope, position, bundle, event_seq) VALUES (?, ?, ?, ?)', scopeString(key), top + 1, target.id, e.seq);
  },
  'bundle.rollback': (ctx, e) => {
    const a = e.afterJson as unknown as Ident & { scope: ScopeJson };
    const key = keyOf(a.scope);
    const scope = scopeString(key);
    const target = bundleRow(ctx, e, a);
    const replaced = replacedOf(e);
    if (replaced) ctx.run('DELETE FROM bundle_scope_stack WHERE scope = ? AND position = (SELECT max(position) FROM bundle_scope_stack WHERE scope = ?)', scope, scope);
    setActive(ctx, e, target, key, replaced);
    ctx.run('UPDATE bundle_scope_stack SET event_seq = ? WHERE scope = ? AND position = (SELECT max(position) FROM bundle_scope_stack WHERE scope = ?)', e.seq, scope, scope);
  },
  'platform.feature-groups.set': (ctx, e) => {
    ctx.run('DELETE FROM platform_feature_groups');
    for (const [name, version] of Object.entries((e.afterJson.groups as Record<string, string> | undefined) ?? {})) {
      ctx.run('INSERT INTO platform_feature_groups (name, version) VALUES (?, ?)', name, version);
    }
  },
};
