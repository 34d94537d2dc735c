/**
 * Deleting users and organisations (issue #19). The name becomes free again, so deletion
 * refuses (409, saying what to do first) whenever a later account of the same name would
 * inherit something: repositories with content under the namespace, organisations the user
 * alone owns, families delegated to the organisation, webhooks limited to its namespace.
 * Everything the account held is removed in the same transaction as its event: a user's API
 * keys (so every key and web session dies at once), memberships, a user's stars, and what the
 * namespace keeps without content — repository visibility and the blob links of its empty
 * repositories (GC then collects the bytes), so a later owner of the name neither publishes nor
 * reads the old owner's content. (The empty repository rows stay: only an administrator can
 * assign the name again.) Bearer tokens name their
 * user's id (`uid`), so tokens of a deleted user never pass for a later user of that name.
 * The event log keeps naming the account; deletion does not rewrite history.
 */
import { ociError } from '../errors/catalogue.js';
import { appendEvent } from '../meta/events.js';
import type { IdentityStore, PrincipalRow } from './identity-store.js';

/**
 * The namespace's repositories: the one named exactly `ns` (its namespace is `ns` too) and every
 * `ns/…` — names are [a-z0-9._-/], so those sort in ['ns/', 'ns0') ('0' follows '/').
 */
export const IN_NAMESPACE = '(r.name = ? OR (r.name >= ? AND r.name < ?))';
export const namespaceArgs = (namespace: string): [string, string, string] => [namespace, `${namespace}/`, `${namespace}0`];

/** Repositories of the namespace that still have manifests (at most `limit` names). */
function repositoriesWithContent(identities: IdentityStore, namespace: string, limit = 5): string[] {
  const rows = identities.db.$client
    .prepare(`SELECT r.name FROM repositories r WHERE ${IN_NAMESPACE} AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) ORDER BY r.name LIMIT ?`)
    .all(...namespaceArgs(namespace), limit) as { name: string }[];
  return rows.map((r) => r.name);
}

/** Refuses while a webhook is limited to the namespace: a later account of the name must not receive its events there. */
function refuseIfScopedWebhooks(identities: IdentityStore, namespace: string): void {
  const hooks = (
    identities.db.$client
      .prepare('SELECT w.id FROM webhooks w WHERE w.namespaces IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(w.namespaces) j WHERE j.value = ?) ORDER BY w.id')
      .all(namespace) as { id: string }[]
  ).map((r) => r.id);
  if (hooks.length > 0) {
    throw ociError('CONFLICT', `webhooks ${listed(hooks)} are limited to namespace '${namespace}': delete them first (DELETE /api/v1/webhooks/<id>)`, { detail: { webhooks: hooks } });
  }
}

/** Refuses while a legal hold covers the namespace: its blob links are about to go. */
function refuseIfHeld(identities: IdentityStore, namespace: string): void {
  const holds = (
    identities.db.$client
      .prepare(`SELECT h.id FROM legal_holds h WHERE h.released_at IS NULL AND (h.repository = ? OR (h.repository >= ? AND h.repository < ?)) ORDER BY h.created_seq LIMIT 6`)
      .all(...namespaceArgs(namespace)) as { id: string }[]
  ).map((r) => r.id);
  if (holds.length > 0) {
    throw ociError('CONFLICT', `legal holds ${listed(holds)} cover namespace '${namespace}': lift them first (DELETE /api/v1/holds/<id>)`, { detail: { holds } });
  }
}

/**
 * What the namespace keeps without content: visibility settings and the blob links of its empty
 * repositories. Deterministic from the name alone, so replay (events/replay/identity.ts) runs it too.
 */
export function clearNamespaceLeftovers(run: (sql: string, ...args: unknown[]) => unknown, namespace: string): void {
  const args = namespaceArgs(namespace);
  run(`DELETE FROM repository_visibility AS r WHERE ${IN_NAMESPACE}`, ...args);
  run(`DELETE FROM repository_blobs WHERE repository_id IN (SELECT r.id FROM repositories r WHERE ${IN_NAMESPACE} AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id))`, ...args);
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
    refuseIfScopedWebhooks(identities, user.name);
    refuseIfHeld(identities, user.name);
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
    sql.prepare('DELETE FROM search_stars WHERE "user" = ?').run(user.name);
    clearNamespaceLeftovers((q, ...args) => sql.prepare(q).run(...args), user.name);
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
    refuseIfScopedWebhooks(identities, org.name);
    refuseIfHeld(identities, org.name);
    const members = sql.prepare('SELECT u.name AS user, m.role FROM org_members m JOIN principals u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY u.name').all(org.id) as { user: string; role: string }[];
    sql.prepare('DELETE FROM org_members WHERE org_id = ?').run(org.id);
    sql.prepare('DELETE FROM principals WHERE id = ?').run(org.id);
    clearNamespaceLeftovers((q, ...args) => sql.prepare(q).run(...args), org.name);
    appendEvent(tx, { actor, action: 'identity.org.delete', before: { org: org.name, members }, after: { org: org.name } });
    return { org: org.name, members: members.length };
  });
}
