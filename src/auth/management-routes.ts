/**
 * Management API (JSON under /api/v1, beside /v2/): users, organisations and members, API keys,
 * repository visibility. Every change is an event with its actor.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { isValidName } from '../core/names.js';
import { ociError } from '../errors/catalogue.js';
import { readBodyCapped } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import { actorOf } from './authenticate.js';
import type { IdentityStore } from './identity-store.js';
import type { AccessControl } from './access.js';
import { namespaceOf, type Principal } from './permissions.js';
import { createApiKey, createUserAccount, validatePrincipalName } from './accounts.js';
import { hashPassword } from './secrets.js';
import { deleteOrg, deleteUser } from './account-deletion.js';

export const userBody = z.object({ name: z.string(), password: z.string().min(12, 'password must have at least 12 characters'), admin: z.boolean().default(false) });
export const orgBody = z.object({ name: z.string() });
export const passwordBody = z.object({ password: z.string().min(12, 'password must have at least 12 characters') });
export const disabledBody = z.object({ disabled: z.boolean() });
export const memberBody = z.object({ role: z.enum(['owner', 'maintainer', 'reader']) });
export const keyBody = z.object({
  name: z.string().min(1).max(100),
  scopes: z.array(z.enum(['read', 'publish', 'admin'])).min(1),
  repositories: z.array(z.string().min(1).max(255)).min(1).max(100).optional(),
  expiresInSeconds: z.number().int().positive().optional(),
});
export const visibilityBody = z.object({ repository: z.string(), visibility: z.enum(['public', 'private']) });

/** Management requests are small JSON documents. */
const MAX_BODY_BYTES = 64 * 1024;

async function body<T>(c: Context<AppEnv>, schema: z.ZodType<T>): Promise<T> {
  const bytes = await readBodyCapped(c, MAX_BODY_BYTES);
  if (bytes === null) throw ociError('UNSUPPORTED', 'body too large', { status: 413 });
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw ociError('UNSUPPORTED', 'body must be JSON', { status: 400 });
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw ociError('UNSUPPORTED', r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '), { status: 400 });
  return r.data;
}

/**
 * Every handler asks the capability evaluator (through `access`); this module decides nothing
 * itself. `self` is the first question of each: an authenticated account (password or API key,
 * not a bearer token), asked before any lookup so anonymous callers learn nothing about names.
 */
export function registerManagementRoutes(app: Hono<AppEnv>, identities: IdentityStore, access: AccessControl): void {
  const self = (c: Context<AppEnv>): Principal => {
    access.require(c, { kind: 'account.read' });
    return c.get('caller').principal!;
  };

  // The description of these routes, not of any data: public, like /healthz.
  app.get('/api/v1/openapi.json', async (c) => c.json((await import('../openapi/index.js')).openApiDocument()));

  app.get('/api/v1/whoami', (c) => {
    const p = self(c);
    return c.json({ name: p.name, admin: p.isAdmin, organisations: Object.fromEntries(p.roles), key: p.key ?? null });
  });

  app.post('/api/v1/users', async (c) => {
    const who = self(c);
    access.require(c, { kind: 'user.manage' });
    const b = await body(c, userBody);
    const user = await createUserAccount(identities, b.name, b.password, b.admin, actorOf(who), true);
    return c.json({ name: user.name, admin: user.isAdmin }, 201);
  });

  // Administrators list every account (never a password hash).
  app.get('/api/v1/users', (c) => {
    self(c);
    access.require(c, { kind: 'registry.admin' });
    return c.json({ users: identities.listUsers() });
  });

  const userNamed = (name: string) => {
    const row = identities.principalByName(name);
    if (!row || row.kind !== 'user') throw ociError('NOT_FOUND', 'no such user');
    return row;
  };

  // Users change their own password (with a password, not a key); administrators anyone's.
  app.put('/api/v1/users/:user/password', async (c) => {
    const who = self(c);
    // Only those who manage users learn that a name does not exist; anyone else is refused.
    if (identities.principalByName(c.req.param('user'))?.kind !== 'user') access.require(c, { kind: 'user.manage' });
    const user = userNamed(c.req.param('user'));
    access.require(c, { kind: 'user.password', userId: user.id });
    const { password } = await body(c, passwordBody);
    identities.setPassword(user, await hashPassword(password), actorOf(who));
    return c.body(null, 204);
  });

  app.put('/api/v1/users/:user/disabled', async (c) => {
    const who = self(c);
    access.require(c, { kind: 'user.manage' });
    const user = userNamed(c.req.param('user'));
    const { disabled } = await body(c, disabledBody);
    if (disabled && user.id === who.id) throw ociError('CONFLICT', 'administrators cannot disable themselves');
    identities.setDisabled(user, disabled, actorOf(who));
    return c.json({ user: user.name, disabled });
  });

  // Deleting a user removes their keys (and so their tokens and web sessions) and memberships;
  // 409 while their namespace has content or they alone own an organisation (account-deletion.ts).
  app.delete('/api/v1/users/:user', (c) => {
    const who = self(c);
    access.require(c, { kind: 'user.manage' });
    return c.json(deleteUser(identities, userNamed(c.req.param('user')), actorOf(who), who.id));
  });

  app.post('/api/v1/orgs', async (c) => {
    const who = self(c);
    access.require(c, { kind: 'org.create' });
    const { name } = await body(c, orgBody);
    // Only an administrator may take a name that already has repositories under it.
    validatePrincipalName(identities, name, access.can(c, { kind: 'registry.admin' }));
    identities.createOrg(name, who.id, actorOf(who));
    return c.json({ name, owner: who.name }, 201);
  });

  // Administrators see every organisation; anyone else those they belong to.
  app.get('/api/v1/orgs', (c) => {
    const who = self(c);
    const all = access.can(c, { kind: 'registry.admin' });
    const orgs = identities.listOrgs(all ? undefined : [...who.roles.keys()]);
    return c.json({ orgs: orgs.map((o) => ({ ...o, role: who.roles.get(o.name) ?? null })) });
  });

  const org = (name: string) => {
    const row = identities.principalByName(name);
    if (!row || row.kind !== 'org') throw ociError('NOT_FOUND', 'no such organisation');
    return row;
  };

  app.delete('/api/v1/orgs/:org', (c) => {
    const who = self(c);
    access.require(c, { kind: 'registry.admin' });
    return c.json(deleteOrg(identities, org(c.req.param('org')), actorOf(who)));
  });

  app.get('/api/v1/orgs/:org/members', (c) => {
    self(c);
    const o = org(c.req.param('org'));
    access.require(c, { kind: 'org.read', org: o.name });
    return c.json({ members: identities.members(o.id) });
  });

  const setMember = async (c: Context<AppEnv>, role: 'owner' | 'maintainer' | 'reader' | null): Promise<Response> => {
    const who = self(c);
    const o = org(c.req.param('org')!);
    access.require(c, { kind: 'namespace.manage', namespace: o.name });
    const user = identities.principalByName(c.req.param('user')!);
    if (!user || user.kind !== 'user') throw ociError('NOT_FOUND', 'no such user');
    identities.setMember(o, user, role, actorOf(who));
    return c.json({ org: o.name, user: user.name, role }, 200);
  };
  app.put('/api/v1/orgs/:org/members/:user', async (c) => setMember(c, (await body(c, memberBody)).role));
  app.delete('/api/v1/orgs/:org/members/:user', (c) => setMember(c, null));

  app.post('/api/v1/keys', async (c) => {
    const who = self(c);
    const b = await body(c, keyBody);
    let expiresAt = b.expiresInSeconds === undefined ? null : Date.now() + b.expiresInSeconds * 1000;
    // A key minting a key: the new one expires no later than the caller (the evaluator checks it).
    const own = who.key?.expiresAt ?? null;
    if (own !== null) expiresAt = Math.min(expiresAt ?? own, own);
    access.require(c, { kind: 'key.create', scopes: b.scopes, repositories: b.repositories ?? null, expiresAt });
    const created = createApiKey(identities, who.id, { name: b.name, scopes: b.scopes, repositories: b.repositories, expiresAt }, actorOf(who));
    return c.json(created, 201);
  });

  app.get('/api/v1/keys', (c) => {
    const who = self(c);
    return c.json({ keys: identities.keysOf(who.id).map((k) => ({ ...k, scopes: JSON.parse(k.scopes) as unknown, repositories: k.repositories ? (JSON.parse(k.repositories) as unknown) : null })) });
  });

  app.delete('/api/v1/keys/:id', (c) => {
    const who = self(c);
    const key = identities.keyById(c.req.param('id'));
    if (!key) throw ociError('NOT_FOUND', 'no such key');
    access.require(c, { kind: 'key.revoke', ownerId: key.userId, keyId: key.id });
    identities.revokeKey(key.id, actorOf(who));
    return c.body(null, 204);
  });

  app.put('/api/v1/repositories/visibility', async (c) => {
    const who = self(c);
    const b = await body(c, visibilityBody);
    if (!isValidName(b.repository)) throw ociError('NAME_INVALID');
    access.require(c, { kind: 'namespace.manage', namespace: namespaceOf(b.repository) });
    identities.setVisibility(b.repository, b.visibility, actorOf(who));
    return c.json(b);
  });
}
