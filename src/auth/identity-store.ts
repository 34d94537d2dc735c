/** Identity metadata: users, organisations, members, API keys, repository visibility. */
import { and, asc, eq, exists, gt, gte, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';
import { apiKeys, orgMembers, principals, repositories, repositoryVisibility } from '../meta/schema.js';
import type { CatalogScope } from './capabilities.js';
import { DEFAULT_DENIAL_OPTIONS, DenialLog, type DenialLogOptions } from './denials.js';
import type { KeyScope, Principal, Role } from './permissions.js';

export type PrincipalRow = typeof principals.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;

export class IdentityStore {
  readonly denials: DenialLog;
  // Every token-authenticated request reads its user, key and memberships: prepared once
  // (building and preparing the query each time cost more than running it).
  private readonly qPrincipalByName;
  private readonly qKeyById;
  private readonly qMemberships;

  constructor(
    readonly db: Db,
    denialOptions: DenialLogOptions = DEFAULT_DENIAL_OPTIONS,
  ) {
    this.qPrincipalByName = db.select().from(principals).where(eq(principals.name, sql.placeholder('name'))).prepare();
    this.qKeyById = db.select().from(apiKeys).where(eq(apiKeys.id, sql.placeholder('id'))).prepare();
    this.qMemberships = db
      .select({ org: principals.name, role: orgMembers.role })
      .from(orgMembers)
      .innerJoin(principals, eq(principals.id, orgMembers.orgId))
      .where(eq(orgMembers.userId, sql.placeholder('userId')))
      .prepare();
    this.denials = new DenialLog(
      (d) =>
        this.db.transaction((tx) =>
          appendEvent(tx, { actor: d.actor, action: 'identity.access.denied', repository: d.repository, reason: d.reason, after: d.suppressed === undefined ? { attempted: d.action } : { attempted: d.action, suppressed: d.suppressed, windowStart: d.windowStart } }),
        ),
      denialOptions,
    );
  }

  principalByName(name: string): PrincipalRow | undefined {
    return this.qPrincipalByName.get({ name });
  }

  principalById(id: number): PrincipalRow | undefined {
    return this.db.select().from(principals).where(eq(principals.id, id)).get();
  }

  countAdmins(): number {
    return this.db.select({ id: principals.id }).from(principals).where(eq(principals.isAdmin, true)).all().length;
  }

  /** The user with its organisation roles, as the permission rules need it. */
  loadPrincipal(user: PrincipalRow, key?: ApiKeyRow): Principal {
    const rows = this.qMemberships.all({ userId: user.id });
    const p: Principal = { id: user.id, name: user.name, isAdmin: user.isAdmin, roles: new Map(rows.map((r) => [r.org, r.role as Role])), tokenGeneration: user.tokenGeneration };
    if (key) p.key = { id: key.id, scopes: JSON.parse(key.scopes) as KeyScope[], repositories: key.repositories ? (JSON.parse(key.repositories) as string[]) : null, expiresAt: key.expiresAt };
    return p;
  }

  createUser(name: string, passwordHash: string, isAdmin: boolean, actor: string): PrincipalRow {
    return this.db.transaction((tx) => {
      const row = tx.insert(principals).values({ name, kind: 'user', passwordHash, isAdmin }).returning().get();
      // The hash lets a rebuild restore the login; routes and webhooks redact it (events/replay/redact.ts).
      appendEvent(tx, { actor, action: 'identity.user.create', after: { user: name, admin: isAdmin, passwordHash } });
      return row;
    });
  }

  setPassword(user: PrincipalRow, passwordHash: string, actor: string): void {
    this.db.transaction((tx) => {
      // Every token issued under the old password dies with it: tokens carry the generation of the
      // password they were issued under (exact, whatever the clock says). tokens_valid_after, in
      // ms and compared inclusively, covers tokens from versions that had no generation.
      tx.update(principals)
        .set({ passwordHash, tokenGeneration: sql`${principals.tokenGeneration} + 1`, tokensValidAfter: Date.now() })
        .where(eq(principals.id, user.id))
        .run();
      appendEvent(tx, { actor, action: 'identity.user.password', after: { user: user.name, passwordHash } });
    });
  }

  setDisabled(user: PrincipalRow, disabled: boolean, actor: string): void {
    this.db.transaction((tx) => {
      tx.update(principals).set({ disabled }).where(eq(principals.id, user.id)).run();
      appendEvent(tx, { actor, action: disabled ? 'identity.user.disable' : 'identity.user.enable', before: { disabled: user.disabled }, after: { user: user.name, disabled } });
    });
  }

  createOrg(name: string, ownerId: number, actor: string): PrincipalRow {
    return this.db.transaction((tx) => {
      const row = tx.insert(principals).values({ name, kind: 'org' }).returning().get();
      tx.insert(orgMembers).values({ orgId: row.id, userId: ownerId, role: 'owner' }).run();
      appendEvent(tx, { actor, action: 'identity.org.create', after: { org: name, owner: actor, ownerId } });
      return row;
    });
  }

  memberRole(orgId: number, userId: number): Role | undefined {
    return this.db.select({ role: orgMembers.role }).from(orgMembers).where(and(eq(orgMembers.orgId, orgId), eq(orgMembers.userId, userId))).get()?.role as Role | undefined;
  }

  setMember(org: PrincipalRow, user: PrincipalRow, role: Role | null, actor: string): void {
    this.db.transaction((tx) => {
      const before = tx.select({ role: orgMembers.role }).from(orgMembers).where(and(eq(orgMembers.orgId, org.id), eq(orgMembers.userId, user.id))).get()?.role ?? null;
      if (role === null) tx.delete(orgMembers).where(and(eq(orgMembers.orgId, org.id), eq(orgMembers.userId, user.id))).run();
      else
        tx.insert(orgMembers)
          .values({ orgId: org.id, userId: user.id, role })
          .onConflictDoUpdate({ target: [orgMembers.orgId, orgMembers.userId], set: { role } })
          .run();
      appendEvent(tx, { actor, action: role === null ? 'identity.member.remove' : 'identity.member.grant', before: { org: org.name, user: user.name, role: before }, after: { org: org.name, user: user.name, role } });
    });
  }

  members(orgId: number): { user: string; role: string }[] {
    return this.db
      .select({ user: principals.name, role: orgMembers.role })
      .from(orgMembers)
      .innerJoin(principals, eq(principals.id, orgMembers.userId))
      .where(eq(orgMembers.orgId, orgId))
      .all();
  }

  /** Users by name (no secrets), for administrators. */
  listUsers(): { name: string; admin: boolean; disabled: boolean; createdAt: number }[] {
    return this.db
      .select({ name: principals.name, admin: principals.isAdmin, disabled: principals.disabled, createdAt: principals.createdAt })
      .from(principals)
      .where(eq(principals.kind, 'user'))
      .orderBy(asc(principals.name))
      .all();
  }

  /** Organisations by name; `only` (names) narrows the list to those a non-administrator belongs to. */
  listOrgs(only?: readonly string[]): { name: string; createdAt: number }[] {
    if (only && only.length === 0) return [];
    const where = only ? and(eq(principals.kind, 'org'), inArray(principals.name, [...only])) : eq(principals.kind, 'org');
    return this.db.select({ name: principals.name, createdAt: principals.createdAt }).from(principals).where(where).orderBy(asc(principals.name)).all();
  }

  createKey(row: typeof apiKeys.$inferInsert, actor: string): void {
    this.db.transaction((tx) => {
      tx.insert(apiKeys).values(row).run();
      appendEvent(tx, { actor, action: 'identity.key.create', after: { key: row.id, userId: row.userId, secretHash: row.secretHash, name: row.name, scopes: JSON.parse(row.scopes) as unknown, repositories: row.repositories ? (JSON.parse(row.repositories) as unknown) : null, expiresAt: row.expiresAt ?? null } });
    });
  }

  keyById(id: string): ApiKeyRow | undefined {
    return this.qKeyById.get({ id });
  }

  keysOf(userId: number): Omit<ApiKeyRow, 'secretHash'>[] {
    return this.db
      .select({ id: apiKeys.id, userId: apiKeys.userId, name: apiKeys.name, scopes: apiKeys.scopes, repositories: apiKeys.repositories, expiresAt: apiKeys.expiresAt, revokedAt: apiKeys.revokedAt, createdAt: apiKeys.createdAt })
      .from(apiKeys)
      .where(eq(apiKeys.userId, userId))
      .all();
  }

  revokeKey(id: string, actor: string): boolean {
    return this.db.transaction((tx) => {
      const res = tx.update(apiKeys).set({ revokedAt: Date.now() }).where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt))).run();
      if (res.changes > 0) appendEvent(tx, { actor, action: 'identity.key.revoke', after: { key: id } });
      return res.changes > 0;
    });
  }

  isPublic(repository: string): boolean {
    return this.db.select({ v: repositoryVisibility.visibility }).from(repositoryVisibility).where(eq(repositoryVisibility.name, repository)).get()?.v === 'public';
  }

  setVisibility(repository: string, visibility: 'public' | 'private', actor: string): void {
    this.db.transaction((tx) => {
      const before = tx.select({ v: repositoryVisibility.visibility }).from(repositoryVisibility).where(eq(repositoryVisibility.name, repository)).get()?.v ?? 'private';
      tx.insert(repositoryVisibility).values({ name: repository, visibility }).onConflictDoUpdate({ target: repositoryVisibility.name, set: { visibility } }).run();
      appendEvent(tx, { actor, action: 'identity.repository.visibility', repository, before: { visibility: before }, after: { visibility } });
    });
  }

  /** Records a refused privileged action, within the per actor-and-action budget (denials.ts). */
  recordDenial(actor: string, action: string, repository: string | null, reason: string): void {
    this.denials.record(actor, action, repository, reason);
  }

  /**
   * One page of the repositories a catalog scope shows, after `last`, in name order. Every part
   * of the scope is one index range read with LIMIT, so the work per page is bounded by
   * (parts × limit) rows however many repositories exist or how few the caller may see.
   */
  visibleRepositories(scope: Exclude<CatalogScope, { all: true }>, limit: number, last?: string): string[] {
    const after = last ?? '';
    const found = new Set<string>();
    const name = repositories.name;
    const exact = scope.ranges.flatMap((r) => ('exact' in r ? [r.exact] : []));
    if (exact.length > 0) {
      for (const r of this.db.select({ name }).from(repositories).where(and(inArray(name, exact), gt(name, after))).all()) found.add(r.name);
    }
    for (const r of scope.ranges) {
      if ('exact' in r) continue;
      // Names starting with `prefix` (which ends in '/') are exactly those in [prefix, prefix-without-'/' + '0'): '0' follows '/'.
      const conditions: SQL[] = [gt(name, after), gte(name, r.prefix), lt(name, `${r.prefix.slice(0, -1)}0`)];
      if (r.oneLevel) conditions.push(sql`instr(substr(${name}, ${r.prefix.length + 1}), '/') = 0`);
      for (const row of this.db.select({ name }).from(repositories).where(and(...conditions)).orderBy(asc(name)).limit(limit).all()) found.add(row.name);
    }
    if (scope.publicToo) {
      const v = repositoryVisibility;
      const rows = this.db
        .select({ name: v.name })
        .from(v)
        .where(and(eq(v.visibility, 'public'), gt(v.name, after), exists(this.db.select({ one: sql`1` }).from(repositories).where(eq(repositories.name, v.name)))))
        .orderBy(asc(v.name))
        .limit(limit)
        .all();
      for (const row of rows) found.add(row.name);
    }
    return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, limit);
  }

  /** Whether repositories already exist in the namespace, `ns` itself or `ns/…` (claiming it would take them over). */
  namespaceHasRepositories(namespace: string): boolean {
    // Names are [a-z0-9._-] and '/', so every `ns/…` sorts in ['ns/', 'ns0') ('0' follows '/').
    const inNamespace = or(eq(repositories.name, namespace), and(gte(repositories.name, `${namespace}/`), lt(repositories.name, `${namespace}0`)));
    return this.db.select({ id: repositories.id }).from(repositories).where(inNamespace).limit(1).get() !== undefined;
  }
}
