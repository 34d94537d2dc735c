/**
 * Deleting users and organisations (issue #19). The name becomes free again, so deletion
 * refuses (409, saying what to do first) whenever a later account of the same name would
 * inherit something: repositories with content under the namespace, organisations the user
 * alone owns, families delegated to the organisation, webhooks limited to its namespace.
 * Everything the account held is removed in the same transaction as its event: a user's API
 * keys (so every key and web session dies at once), memberships. Bearer tokens name their
 * user's id (`uid`), so tokens of a deleted user never pass for a later user of that name.
 * The event log keeps naming the account; deletion does not rewrite history.
 */
import { ociError } from '../errors/catalogue.js';
import { appendEvent } from '../meta/events.js';
import type { IdentityStore, PrincipalRow } from './identity-store.js';

/** Repositories under `namespace/` that still have manifests (at most `limit` names). */
function repositoriesWithContent(identities: IdentityStore, namespace: string, limit = 5): string[] {
  // Names are [a-z0-9._-/]: every `ns/…` sorts in ['ns/', 'ns0') ('0' follows '/').
  const rows = identities.db.$client
    .prepare('SELECT r.name FROM repositories r WHERE r.name >= ? AND r.name < ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) ORDER BY r.name LIMIT ?')
    .all(`${namespace}/`, `${namespace}0`, limit) as { name: string }[];
  return rows.map((r) => r.name);
}

const listed = (names: string[], limit = 5): string => names.slice(0, limit).join(', ') + (names.length > limit ? ', …' : '');

function refuseIfContent(identities: IdentityStore, kind: string, name: string): void {
  const repos = repositoriesWithContent(identities, name);
  if (repos.length > 0) {
    throw ociError('CONFLICT', `${kind} '${name}' still has repositories with content (${listed(repos)}): delete their manifests first (DELETE /v2/<name>/manifests/<digest>), then delete the ${kind}`, {
      detail: { repositories: repos },
    });
  }
}

export interface DeletedUser {
  user: string;
  keysRevoked: number;
  memberships: number;
}

/** Deletes user `user`; `actorId` is the deleting administrator (null from the CLI). */
export function deleteUser(identities: IdentityStore, user: PrincipalRow, actor: string, actorId: number | null): DeletedUser {
  if (actorId === user.id) throw ociError('CONFLICT', 'administrators cannot delete themselves: another administrator must');
  const { db } = identities;
  return db.transaction((tx) => {
    const sql = db.$client;
    if (user.isAdmin) {
      const admins = (sql.prepare("SELECT count(*) AS n FROM principals WHERE kind = 'user' AND is_admin = 1 AND disabled = 0 AND id != ?").get(user.id) as { n: number }).n;
      if (admins === 0) throw ociError('CONFLICT', `'${user.name}' is the last enabled administrator: make another user an administrator first`);
    }
    refuseIfContent(identities, 'user', user.name);
    const soleOwner = (
      sql
        .prepare(
          "SELECT o.name FROM org_members m JOIN principals o ON o.id = m.org_id WHERE m.user_id = ? AND m.role = 'owner' AND NOT EXISTS (SELECT 1 FROM org_members m2 WHERE m2.org_id = m.org_id AND m2.role = 'owner' AND m2.user_id != m.user_id) ORDER BY o.name",
        )
        .all(user.id) as { name: string }[]
    ).map((r) => r.name);
    if (soleOwner.length > 0) {
      throw ociError('CONFLICT', `'${user.name}' is the only owner of ${listed(soleOwner)}: give each another owner (PUT /api/v1/orgs/<org>/members/<user>) or delete it first`, { detail: { organisations: soleOwner } });
    }
    const keys = (sql.prepare('SELECT id FROM api_keys WHERE user_id = ? ORDER BY id').all(user.id) as { id: string }[]).map((k) => k.id);
    const memberships = sql.prepare('SELECT o.name AS org, m.role FROM org_members m JOIN principals o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.name').all(user.id) as { org: string; role: string }[];
    sql.prepare('DELETE FROM ui_sessions WHERE user_id = ?').run(user.id);
    sql.prepare('DELETE FROM api_keys WHERE user_id = ?').run(user.id);
    sql.prepare('DELETE FROM org_members WHERE user_id = ?').run(user.id);
    sql.prepare('DELETE FROM principals WHERE id = ?').run(user.id);
    appendEvent(tx, { actor, action: 'identity.user.delete', before: { user: user.name, admin: user.isAdmin, disabled: user.disabled, keys, memberships }, after: { user: user.name } });
    return { user: user.name, keysRevoked: keys.length, memberships: memberships.length };
  });
}

export interface DeletedOrg {
  org: string;
  members: number;
}

export function deleteOrg(identities: IdentityStore, org: PrincipalRow, actor: string): DeletedOrg {
  const { db } = identities;
  return db.transaction((tx) => {
    const sql = db.$client;
    refuseIfContent(identities, 'organisation', org.name);
    const families = (sql.prepare('SELECT family FROM family_delegations WHERE org = ? ORDER BY family').all(org.name) as { family: string }[]).map((r) => r.family);
    if (families.length > 0) {
      throw ociError('CONFLICT', `families ${listed(families)} are delegated to '${org.name}': delegate them elsewhere or withdraw the delegation first`, { detail: { families } });
    }
    // A later organisation of this name must not receive events through another owner's subscription.
    const hooks = (
      sql.prepare('SELECT w.id FROM webhooks w WHERE w.namespaces IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(w.namespaces) j WHERE j.value = ?) ORDER BY w.id').all(org.name) as { id: string }[]
    ).map((r) => r.id);
    if (hooks.length > 0) {
      throw ociError('CONFLICT', `webhooks ${listed(hooks)} are limited to namespace '${org.name}': delete them first (DELETE /api/v1/webhooks/<id>)`, { detail: { webhooks: hooks } });
    }
    const members = sql.prepare('SELECT u.name AS user, m.role FROM org_members m JOIN principals u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY u.name').all(org.id) as { user: string; role: string }[];
    sql.prepare('DELETE FROM org_members WHERE org_id = ?').run(org.id);
    sql.prepare('DELETE FROM principals WHERE id = ?').run(org.id);
    appendEvent(tx, { actor, action: 'identity.org.delete', before: { org: org.name, members }, after: { org: org.name } });
    return { org: org.name, members: members.length };
  });
}
