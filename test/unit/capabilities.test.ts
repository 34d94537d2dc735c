/**
 * The capability evaluator as a table: caller kind × capability. Every privileged action of the
 * registry asks `decide`, so this table is the authorisation policy. Then `catalogScope` (the
 * same rules as SQL ranges for `_catalog`) against `decide`, for random callers and names.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Caller } from '../../src/auth/authenticate.js';
import { capabilityName, catalogScope, decide, type Capability } from '../../src/auth/capabilities.js';
import { IdentityStore } from '../../src/auth/identity-store.js';
import type { KeyScope, Principal, Role } from '../../src/auth/permissions.js';
import { openDatabase } from '../../src/meta/db.js';
import { repositories, repositoryVisibility } from '../../src/meta/schema.js';

const ROOT = 1;
const ALICE = 2;
const HOUR = Date.now() + 3600_000;

const user = (id: number, name: string, isAdmin: boolean, roles: [string, Role][] = [], key?: Principal['key']): Principal => ({ id, name, isAdmin, roles: new Map(roles), ...(key ? { key } : {}) });
const key = (scopes: KeyScope[], repositories: string[] | null = null, expiresAt: number | null = null): Principal['key'] => ({ id: 'k', scopes, repositories, expiresAt });
const caller = (principal: Principal | null, grants?: Caller['grants']): Caller => ({ principal, actor: principal?.name ?? 'anonymous', bucket: '', ...(grants ? { grants } : {}) });
const alice = (k?: Principal['key']) => user(ALICE, 'alice', false, [['acme', 'maintainer']], k);
const root = (k?: Principal['key']) => user(ROOT, 'root', true, [], k);

/** The caller kinds of issue #18's table, in column order. */
const CALLERS: Record<string, Caller> = {
  anonymous: caller(null),
  passwordUser: caller(alice()),
  adminPassword: caller(root()),
  adminKey: caller(root(key(['admin']))),
  limitedAdminKey: caller(root(key(['admin'], ['root/only'], HOUR))),
  publishKey: caller(alice(key(['publish']))),
  readKey: caller(alice(key(['read']))),
  bearerToken: caller(alice(), [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]),
};
const COLUMNS = Object.keys(CALLERS);

const isPublic = (repository: string): boolean => repository === 'pub/app';
const repo = (repository: string, action: 'pull' | 'push' | 'delete'): Capability => ({ kind: 'repository', repository, action });

// A = allowed, D = denied (403), U = must authenticate (401). Columns as in CALLERS.
//                                                           anon pw  adm  aKey lim  pub  read tok
const TABLE: [string, Capability, string][] = [
  ['pull own repository',                repo('alice/app', 'pull'),   'U    A   A    A    D    A    A    A'],
  ['push own repository',                repo('alice/app', 'push'),   'U    A   A    A    D    A    D    A'],
  ['delete own repository',              repo('alice/app', 'delete'), 'U    A   A    A    D    D    D    U'],
  ['push inside the key limit',          repo('root/only', 'push'),   'U    D   A    A    A    D    D    U'],
  ['delete inside the key limit',        repo('root/only', 'delete'), 'U    D   A    A    A    D    D    U'],
  ['pull a public repository',           repo('pub/app', 'pull'),     'A    A   A    A    A    A    A    U'],
  ['push to an org as maintainer',       repo('acme/app', 'push'),    'U    A   A    A    D    A    D    U'],
  ['push to a namespace nobody owns',    repo('nobody/app', 'push'),  'U    D   A    A    D    D    D    U'],
  ['manage own namespace',               { kind: 'namespace.manage', namespace: 'alice' }, 'U A A A D D D U'],
  ['manage an org as maintainer',        { kind: 'namespace.manage', namespace: 'acme' },  'U D A A D D D U'],
  ['registry administration',            { kind: 'registry.admin' },                       'U D A A D D D U'],
  ['create or promote users',            { kind: 'user.manage' },                          'U D A D D D D U'],
  ["change alice's password",            { kind: 'user.password', userId: ALICE },         'U A A D D D D U'],
  ["change root's password",             { kind: 'user.password', userId: ROOT },          'U D A D D D D U'],
  ['create an organisation',             { kind: 'org.create' },                           'U A A A D D D U'],
  ['read acme members',                  { kind: 'org.read', org: 'acme' },                'U A A A D A A U'],
  ['mint an unlimited read key',         { kind: 'key.create', scopes: ['read'], repositories: null, expiresAt: null }, 'U A A A D D D U'],
  ['mint an unlimited admin key',        { kind: 'key.create', scopes: ['admin'], repositories: null, expiresAt: null }, 'U A A A D D D U'],
  ['mint a key within the limit',        { kind: 'key.create', scopes: ['admin'], repositories: ['root/only'], expiresAt: HOUR - 1000 }, 'U A A A A D D U'],
  ['mint a key outliving the caller',    { kind: 'key.create', scopes: ['read'], repositories: ['root/only'], expiresAt: HOUR + 1000 }, 'U A A A D D D U'],
  ['mint a key for other repositories',  { kind: 'key.create', scopes: ['read'], repositories: ['root/other'], expiresAt: HOUR - 1000 }, 'U A A A D D D U'],
  ["revoke alice's key",                 { kind: 'key.revoke', ownerId: ALICE },           'U A A A D D D U'],
  ["revoke root's key",                  { kind: 'key.revoke', ownerId: ROOT },            'U D A A D D D U'],
  ['revoke the calling key itself',      { kind: 'key.revoke', ownerId: ALICE, keyId: 'k' }, 'U A A A D A A U'],
  ['write a family delegated to acme',   { kind: 'family.write', family: 'product', delegatedTo: 'acme' }, 'U A A A D D D U'],
  ['write an undelegated family',        { kind: 'family.write', family: 'product', delegatedTo: null },   'U D A A D D D U'],
  ['propose a bundle (push)',            { kind: 'bundle.transition', repository: 'alice/app', to: 'CANDIDATE' }, 'U A A A D A D A'],
  ['approve a bundle (manage)',          { kind: 'bundle.transition', repository: 'alice/app', to: 'APPROVED' },  'U A A A D D D U'],
  ['read own account',                   { kind: 'account.read' },                         'U A A A A A A U'],
];

describe('decide: caller kind × capability', () => {
  const cases = TABLE.flatMap(([what, cap, row]) => row.trim().split(/\s+/).map((expected, i) => [what, COLUMNS[i]!, cap, expected] as const));
  it('the table has a verdict for every caller kind', () => {
    for (const [, , row] of TABLE) expect(row.trim().split(/\s+/)).toHaveLength(COLUMNS.length);
  });
  it.each(cases)('%s: %s → %s', (_what, who, cap, expected) => {
    const d = decide(CALLERS[who]!, cap, isPublic);
    const got = d.allowed ? 'A' : d.unauthenticated ? 'U' : 'D';
    expect(got).toBe(expected);
    if (!d.allowed) expect(d.reason.length).toBeGreaterThan(0);
  });

  it('a repository-limited admin key is never a registry administrator (issue #18, item 1)', () => {
    const limited = CALLERS.limitedAdminKey!;
    for (const cap of [{ kind: 'user.manage' }, { kind: 'user.password', userId: ROOT }, { kind: 'registry.admin' }, { kind: 'org.create' }, { kind: 'namespace.manage', namespace: 'root' }, { kind: 'key.create', scopes: ['admin'], repositories: null, expiresAt: null }] as Capability[]) {
      expect(decide(limited, cap, isPublic).allowed, cap.kind).toBe(false);
    }
  });

  it('names refusals by their audit-action id', () => {
    expect(capabilityName(repo('a/b', 'push'))).toBe('oci.push');
    expect(capabilityName({ kind: 'user.manage' })).toBe('user.manage');
    expect(capabilityName({ kind: 'bundle.transition', repository: 'a/b', to: 'ACTIVE' })).toBe('bundle.transition.active');
  });
});

describe('catalogScope lists exactly what decide lets the caller pull', () => {
  const db = openDatabase(':memory:');
  const ids = new IdentityStore(db);
  afterAll(() => db.$client.close());

  // Namespaces chosen so that prefix ranges are tested at their edges: 'a-b', 'a.b' sort before
  // 'a/', and 'a0' right after the range of 'a/'.
  const NAMESPACES = ['a', 'a-b', 'a.b', 'a0', 'b', 'root'];
  const SUBS = ['', '/x', '/y', '/x/z', '/x/z/w', '/y-1'];
  const ALL_NAMES = NAMESPACES.flatMap((ns) => SUBS.map((s) => `${ns}${s}`));
  const PATTERNS = ['a/*', 'a/**', 'a/x', 'a/x/*', 'a/x/**', 'a-b/**', 'b/*', 'a0/y', 'root/**', 'a'];

  const principalArb = fc.record({
    isAdmin: fc.boolean(),
    name: fc.constantFrom('a', 'b', 'zed'),
    roles: fc.subarray(NAMESPACES).chain((orgs) => fc.tuple(fc.constant(orgs), fc.array(fc.constantFrom<Role>('owner', 'maintainer', 'reader'), { minLength: orgs.length, maxLength: orgs.length }))),
    key: fc.option(fc.record({ scopes: fc.subarray<KeyScope>(['read', 'publish', 'admin'], { minLength: 1 }), repositories: fc.option(fc.subarray(PATTERNS, { minLength: 1 })) })),
  });
  const callerArb = fc.record({
    principal: fc.option(principalArb),
    grants: fc.option(fc.record({ catalog: fc.boolean(), named: fc.subarray(ALL_NAMES), actions: fc.constantFrom(['pull'], ['push'], ['*']) })),
  });

  it('for random callers, repositories, public sets and page sizes', () => {
    fc.assert(
      fc.property(callerArb, fc.subarray(ALL_NAMES, { minLength: 1 }), fc.subarray(ALL_NAMES), fc.integer({ min: 1, max: 7 }), (c, names, publicNames, pageSize) => {
        db.delete(repositories).run();
        db.delete(repositoryVisibility).run();
        for (const name of names) db.insert(repositories).values({ name }).run();
        for (const name of publicNames) db.insert(repositoryVisibility).values({ name, visibility: 'public' }).run();
        const p = c.principal;
        const principal: Principal | null = p
          ? { id: 7, name: p.name, isAdmin: p.isAdmin, roles: new Map(p.roles[0].map((org, i) => [org, p.roles[1][i]!])), ...(p.key ? { key: { id: 'k', scopes: p.key.scopes, repositories: p.key.repositories, expiresAt: null } } : {}) }
          : null;
        const grants = c.grants ? [...(c.grants.catalog ? [{ type: 'registry' as const, name: 'catalog', actions: ['*'] }] : []), ...c.grants.named.map((name) => ({ type: 'repository' as const, name, actions: c.grants!.actions }))] : undefined;
        const who: Caller = { principal, actor: 'x', bucket: '', ...(grants ? { grants } : {}) };
        // A token with the catalog grant lists what its user could pull; otherwise what it names.
        const judge: Caller = grants?.some((g) => g.type === 'registry') ? { principal, actor: 'x', bucket: '' } : who;
        const expected = [...names].sort().filter((n) => decide(judge, repo(n, 'pull'), (r) => publicNames.includes(r)).allowed);

        const scope = catalogScope(who);
        const listed: string[] = [];
        let last: string | undefined;
        for (;;) {
          const page = scope.all ? [...names].sort().filter((n) => last === undefined || n > last).slice(0, pageSize) : ids.visibleRepositories(scope, pageSize, last);
          listed.push(...page);
          if (page.length < pageSize) break;
          last = page[page.length - 1];
        }
        expect(listed).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });
});
