/** Replay of identity: users and organisations, memberships, API keys, repository visibility. */
import { clearNamespaceLeftovers } from '../../auth/account-deletion.js';
import { need, type Handler, type ParsedEvent, type ReplayContext, type TableRule } from './types.js';

const CREATED = 'wall-clock insert time (SQL default), not carried by the event';

export const identityTables: TableRule[] = [
  {
    table: 'principals',
    key: ['id'],
    columns: ['id', 'name', 'kind', 'password_hash', 'is_admin', 'disabled', 'token_generation'],
    presenceOnly: {},
    notCompared: {
      created_at: CREATED,
      tokens_valid_after: 'Date.now() of the password change, a few ms before the event time; token_generation carries the same state exactly',
    },
  },
  { table: 'org_members', key: ['org_id', 'user_id'], columns: ['org_id', 'user_id', 'role'] },
  {
    table: 'api_keys',
    key: ['id'],
    columns: ['id', 'user_id', 'name', 'secret_hash', 'scopes', 'repositories', 'expires_at'],
    presenceOnly: { revoked_at: 'Date.now() of the revocation, not carried by the event; revoked or not is the state' },
    notCompared: { created_at: CREATED },
  },
  { table: 'repository_visibility', key: ['name'], columns: ['name', 'visibility'] },
];

const principalId = (ctx: ReplayContext, e: ParsedEvent, name: unknown): number =>
  need(ctx.get<{ id: number }>('SELECT id FROM principals WHERE name = ?', name)?.id, e, `principal ${String(name)}`);

const setDisabled: Handler = (ctx, e) => {
  ctx.run('UPDATE principals SET disabled = ? WHERE id = ?', e.afterJson.disabled ? 1 : 0, principalId(ctx, e, e.afterJson.user));
};

const setMember: Handler = (ctx, e) => {
  const a = e.afterJson as { org: string; user: string; role: string | null };
  const org = principalId(ctx, e, a.org);
  const user = principalId(ctx, e, a.user);
  if (a.role === null) ctx.run('DELETE FROM org_members WHERE org_id = ? AND user_id = ?', org, user);
  else ctx.run('INSERT INTO org_members (org_id, user_id, role) VALUES (?, ?, ?) ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role', org, user, a.role);
};

export const identityHandlers: Record<string, Handler> = {
  'identity.user.create': (ctx, e) => {
    const a = e.afterJson as { user: string; admin: boolean; passwordHash?: string };
    ctx.run("INSERT INTO principals (name, kind, password_hash, is_admin) VALUES (?, 'user', ?, ?)", a.user, need(a.passwordHash, e, 'password hash'), a.admin ? 1 : 0);
  },
  'identity.user.password': (ctx, e) => {
    const a = e.afterJson as { user: string; passwordHash?: string };
    ctx.run('UPDATE principals SET password_hash = ?, token_generation = token_generation + 1, tokens_valid_after = ? WHERE id = ?', need(a.passwordHash, e, 'password hash'), e.time, principalId(ctx, e, a.user));
  },
  'identity.user.disable': setDisabled,
  'identity.user.enable': setDisabled,
  'identity.org.create': (ctx, e) => {
    const a = e.afterJson as { org: string; ownerId?: number };
    const org = ctx.run("INSERT INTO principals (name, kind) VALUES (?, 'org')", a.org).lastInsertRowid;
    ctx.run("INSERT INTO org_members (org_id, user_id, role) VALUES (?, ?, 'owner')", org, need(a.ownerId, e, 'owner id'));
  },
  'identity.user.delete': (ctx, e) => {
    const id = principalId(ctx, e, e.afterJson.user);
    ctx.run('DELETE FROM api_keys WHERE user_id = ?', id);
    ctx.run('DELETE FROM org_members WHERE user_id = ?', id);
    ctx.run('DELETE FROM principals WHERE id = ?', id);
    ctx.run('DELETE FROM search_stars WHERE "user" = ?', e.afterJson.user);
    clearNamespaceLeftovers((q, ...args) => ctx.run(q, ...args), String(e.afterJson.user));
  },
  'identity.org.delete': (ctx, e) => {
    const id = principalId(ctx, e, e.afterJson.org);
    ctx.run('DELETE FROM org_members WHERE org_id = ?', id);
    ctx.run('DELETE FROM principals WHERE id = ?', id);
    clearNamespaceLeftovers((q, ...args) => ctx.run(q, ...args), String(e.afterJson.org));
  },
  'identity.member.grant': setMember,
  'identity.member.remove': setMember,
  'identity.key.create': (ctx, e) => {
    const a = e.afterJson as { key: string; userId?: number; secretHash?: string; name: string; scopes: unknown; repositories: unknown; expiresAt: number | null };
    ctx.run(
      'INSERT INTO api_keys (id, user_id, name, secret_hash, scopes, repositories, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      a.key,
      need(a.userId, e, 'key owner id'),
      a.name,
      need(a.secretHash, e, 'key secret hash'),
      JSON.stringify(a.scopes),
      a.repositories === null || a.repositories === undefined ? null : JSON.stringify(a.repositories),
      a.expiresAt ?? null,
    );
  },
  'identity.key.revoke': (ctx, e) => {
    ctx.run('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', e.time, e.afterJson.key);
  },
  'identity.repository.visibility': (ctx, e) => {
    ctx.run('INSERT INTO repository_visibility (name, visibility) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET visibility = excluded.visibility', e.repository, e.afterJson.visibility);
  },
};
