/**
 * Families REST API (PRODUCT.md §11 "Families"). Reads are open (the catalogue is public, like
 * a public repository); every write asks `family.write` (administrators, or owners and
 * maintainers of the organisation the family is delegated to), delegations `registry.admin`,
 * governance flags `namespace.manage`.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { AccessControl } from '../auth/access.js';
import { ociError } from '../errors/catalogue.js';
import { FAMILIES, type Family } from '../governance/contracts.js';
import type { AppEnv } from '../http/env.js';
import { readJson } from '../http/json.js';
import type { Catalogue } from './catalogue.js';
import { entrySchema, isEntryId, isFamily } from './entries.js';

export const statusBody = z.object({ status: z.enum(['active', 'deprecated', 'disabled']), reason: z.string().min(1).max(1024) });
export const delegationBody = z.object({ org: z.string().min(1).max(255).nullable() });
export const governanceBody = z.object({ governed: z.boolean() });
const SEED_WAIT_MS = 15_000;
const NAMESPACE_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

function familyParam(c: Context<AppEnv>): Family {
  const family = c.req.param('family') ?? '';
  if (!isFamily(family)) throw ociError('NOT_FOUND', `unknown family "${family.slice(0, 64)}"; families are ${FAMILIES.join(', ')}`, { detail: { family: family.slice(0, 64) } });
  return family;
}

function idParam(c: Context<AppEnv>): string {
  const id = c.req.param('id') ?? '';
  if (!isEntryId(id)) throw ociError('INVALID_PAYLOAD', 'entry id must be lower case, [a-z0-9_] then up to 127 of [a-z0-9._-]', { detail: [{ path: 'id', message: 'malformed entry id' }] });
  return id;
}

export function registerFamilyRoutes(app: Hono<AppEnv>, catalogue: Catalogue, access: AccessControl, ready: Promise<unknown>): void {
  const store = catalogue.store;
  const mayWrite = (c: Context<AppEnv>, family: Family): void => access.require(c, { kind: 'family.write', family, delegatedTo: store.delegation(family) });
  // Built-in entries are written on first start: answer once they are there (or storage is
  // too slow to wait for: then the answer simply lacks them for now).
  const seeded = async (_c: Context<AppEnv>, next: () => Promise<void>): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ready, new Promise((done) => (timer = setTimeout(done, SEED_WAIT_MS)))]);
    clearTimeout(timer);
    await next();
  };
  app.use('/api/v1/families', seeded);
  app.use('/api/v1/families/*', seeded);

  app.get('/api/v1/families', (c) => {
    const counts = store.counts();
    const delegations = store.delegations();
    return c.json({ families: FAMILIES.map((family) => ({ family, entries: counts.get(family) ?? 0, repository: `_registry/${family}`, delegatedTo: delegations.get(family) ?? null })) });
  });

  app.get('/api/v1/families/:family/entries', (c) => {
    const family = familyParam(c);
    const n = Number(c.req.query('n') ?? 1000);
    if (!Number.isSafeInteger(n) || n < 1) throw ociError('INVALID_PAYLOAD', 'n must be a positive integer', { detail: [{ path: 'n', message: 'not a positive integer' }] });
    const status = c.req.query('status');
    if (status !== undefined && !['active', 'deprecated', 'disabled'].includes(status)) throw ociError('INVALID_PAYLOAD', 'status must be active, deprecated or disabled', { detail: [{ path: 'status', message: 'unknown status' }] });
    const limit = Math.min(n, 1000);
    const entries = store.list(family, limit, c.req.query('last'), status as 'active' | undefined);
    return c.json({ family, entries, ...(entries.length === limit ? { next: entries[entries.length - 1]!.id } : {}) });
  });

  app.post('/api/v1/families/:family/entries', async (c) => {
    const family = familyParam(c);
    mayWrite(c, family);
    const doc = await readJson(c, entrySchema(family));
    const created = await catalogue.create(family, doc, c.get('actor'));
    return c.json(created, 201);
  });

  app.get('/api/v1/families/:family/entries/:id', (c) => {
    const family = familyParam(c);
    const id = idParam(c);
    const v = c.req.query('version');
    const version = v === undefined ? undefined : Number(v);
    if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) throw ociError('INVALID_PAYLOAD', 'version must be a positive integer', { detail: [{ path: 'version', message: 'not a positive integer' }] });
    const found = store.get(family, id, version);
    if (!found) throw ociError('NOT_FOUND', version === undefined ? `no entry ${family}/${id}` : `no version ${version} of entry ${family}/${id}`, { detail: { family, id, ...(version ? { version } : {}) } });
    return c.json(found);
  });

  app.put('/api/v1/families/:family/entries/:id', async (c) => {
    const family = familyParam(c);
    const id = idParam(c);
    mayWrite(c, family);
    const doc = await readJson(c, entrySchema(family));
    if (doc.id !== id) throw ociError('INVALID_PAYLOAD', `body id "${doc.id}" differs from the path's "${id}"`, { detail: [{ path: '$.id', message: 'must equal the id in the path' }] });
    return c.json(await catalogue.putVersion(family, doc, c.get('actor')));
  });

  app.put('/api/v1/families/:family/entries/:id/status', async (c) => {
    const family = familyParam(c);
    const id = idParam(c);
    mayWrite(c, family);
    const body = await readJson(c, statusBody);
    return c.json(catalogue.setStatus(family, id, body.status, body.reason, c.get('actor')));
  });

  app.get('/api/v1/families/:family/delegation', (c) => {
    const family = familyParam(c);
    return c.json({ family, org: store.delegation(family) });
  });

  app.put('/api/v1/families/:family/delegation', async (c) => {
    const family = familyParam(c);
    access.require(c, { kind: 'registry.admin' });
    const { org } = await readJson(c, delegationBody);
    if (org !== null && !store.isOrganisation(org)) {
      throw ociError('INVALID_PAYLOAD', `"${org.slice(0, 64)}" is not an organisation`, { detail: [{ path: '$.org', message: 'unknown organisation' }] });
    }
    catalogue.setDelegation(family, org, c.get('actor'));
    return c.json({ family, org });
  });

  app.get('/api/v1/namespaces/:ns/governance', (c) => {
    const namespace = c.req.param('ns');
    return c.json({ namespace, governed: catalogue.isGoverned(namespace) });
  });

  app.put('/api/v1/namespaces/:ns/governance', async (c) => {
    const namespace = c.req.param('ns');
    if (namespace.length > 255 || !NAMESPACE_RE.test(namespace)) throw ociError('NAME_INVALID', 'not a namespace name', { detail: { namespace: namespace.slice(0, 64) } });
    access.require(c, { kind: 'namespace.manage', namespace });
    const { governed } = await readJson(c, governanceBody);
    catalogue.setGoverned(namespace, governed, c.get('actor'));
    return c.json({ namespace, governed });
  });
}
