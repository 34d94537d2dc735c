/**
 * Legal holds and the evidence view (PRODUCT.md §11 "Evidence and holds"):
 * POST/GET /api/v1/holds, DELETE /api/v1/holds/{id}, GET /api/v1/evidence?repository=&digest=.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { AccessControl } from '../auth/access.js';
import { namespaceOf } from '../auth/permissions.js';
import { tryParseDigest } from '../core/digest.js';
import { isValidName } from '../core/names.js';
import { ociError } from '../errors/catalogue.js';
import type { Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';
import type { RegistryStore } from '../meta/registry-store.js';
import { readBodyCapped } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import { readJson } from '../http/json.js';
import type { ProtectionPolicy } from './protection.js';
import type { EvidenceRow, EvidenceStore, HoldRow } from './store.js';

const repositoryField = z.string().refine(isValidName, 'not a valid repository name');
const digestField = z.string().refine((d) => tryParseDigest(d) !== null, 'not a valid digest');
const reasonField = z.string().trim().min(1, 'a reason is required').max(2000);
export const createBody = z.object({ repository: repositoryField, digest: digestField.optional(), reason: reasonField });
export const releaseBody = z.object({ reason: reasonField.optional() });
const MAX_LIST = 1000;

export function holdView(h: HoldRow) {
  return {
    id: h.id,
    repository: h.repository,
    digest: h.digest,
    scope: h.digest === null ? ('repository' as const) : ('digest' as const),
    reason: h.reason,
    createdBy: h.createdBy,
    createdAt: new Date(h.createdAt).toISOString(),
    createdSeq: h.createdSeq,
    active: h.releasedAt === null,
    releasedBy: h.releasedBy,
    releasedAt: h.releasedAt === null ? null : new Date(h.releasedAt).toISOString(),
    releaseReason: h.releaseReason,
  };
}

interface RouteDeps {
  db: Db;
  registry: RegistryStore;
  store: EvidenceStore;
  policy: ProtectionPolicy;
  access: AccessControl;
}

function query(c: Context<AppEnv>, name: string, check: (v: string) => boolean, what: string): string {
  const v = c.req.query(name);
  if (v === undefined || !check(v)) throw ociError('INVALID_PAYLOAD', `query parameter ${name} must be ${what}`, { detail: [{ path: `?${name}`, message: `must be ${what}` }] });
  return v;
}

export function registerEvidenceRoutes(app: Hono<AppEnv>, { db, registry, store, policy, access }: RouteDeps): void {
  const requireRepository = (name: string): number => {
    const id = registry.repositoryId(name);
    if (id === undefined) throw ociError('NAME_UNKNOWN', `repository ${name} is not known to the registry`, { detail: { name } });
    return id;
  };

  app.post('/api/v1/holds', async (c) => {
    const body = await readJson(c, createBody);
    access.require(c, { kind: 'namespace.manage', namespace: namespaceOf(body.repository) });
    const digest = body.digest === undefined ? null : tryParseDigest(body.digest)!.value;
    const actor = c.get('actor');
    const id = `hold-${randomUUID()}`;
    const row = db.transaction((tx) => {
      // Checked inside the transaction: a concurrent delete cannot leave a hold on nothing.
      requireRepository(body.repository);
      if (digest !== null && !registry.manifestByDigest(body.repository, digest) && registry.repositoryBlobSize(body.repository, digest) === undefined) {
        throw ociError('MANIFEST_UNKNOWN', `no manifest or blob ${digest} in repository ${body.repository}`, { detail: { repository: body.repository, digest } });
      }
      const ev = appendEvent(tx, { actor, action: 'evidence.hold.create', repository: body.repository, digest, reason: body.reason, after: { id, scope: digest === null ? 'repository' : 'digest' } });
      const hold: HoldRow = { id, repository: body.repository, digest, reason: body.reason, createdBy: actor, createdAt: ev.time, createdSeq: ev.seq, releasedBy: null, releasedAt: null, releaseReason: null };
      store.insertHold(tx, hold);
      return hold;
    });
    return c.json(holdView(row), 201);
  });

  app.delete('/api/v1/holds/:id', async (c) => {
    const id = c.req.param('id');
    const existing = store.hold(db, id);
    if (!existing) throw ociError('NOT_FOUND', `no legal hold ${id}`, { detail: { id } });
    access.require(c, { kind: 'namespace.manage', namespace: namespaceOf(existing.repository) });
    const raw = await readBodyCapped(c, 64 * 1024);
    const reason = raw !== null && raw.length > 0 ? (await parseRelease(raw)).reason ?? null : (c.req.query('reason') ?? null);
    const actor = c.get('actor');
    const released = db.transaction((tx) => {
      const h = store.hold(tx, id)!;
      if (h.releasedAt !== null) {
        throw ociError('CONFLICT', `legal hold ${id} was already released by ${h.releasedBy} at ${new Date(h.releasedAt).toISOString()}`, { detail: holdView(h) });
      }
      const ev = appendEvent(tx, { actor, action: 'evidence.hold.release', repository: h.repository, digest: h.digest, reason, before: { id, reason: h.reason } });
      store.releaseHold(tx, id, actor, ev.time, reason);
      return store.hold(tx, id)!;
    });
    return c.json(holdView(released), 200);
  });

  app.get('/api/v1/holds', (c) => {
    const repository = c.req.query('repository');
    const includeReleased = c.req.query('includeReleased') === 'true';
    const limit = Number(c.req.query('limit') === undefined ? MAX_LIST : query(c, 'limit', (v) => /^\d{1,4}$/.test(v) && +v >= 1 && +v <= MAX_LIST, `an integer from 1 to ${MAX_LIST}`));
    const afterSeq = c.req.query('cursor') === undefined ? 0 : Number(query(c, 'cursor', (v) => /^\d{1,15}$/.test(v), 'a cursor from a previous page (`next`)'));
    if (repository === undefined) access.require(c, { kind: 'registry.admin' });
    else {
      if (!isValidName(repository)) query(c, 'repository', () => false, 'a valid repository name');
      access.require(c, { kind: 'repository', repository, action: 'pull' });
      requireRepository(repository);
    }
    // One row more than the page says whether another page follows; `next` is its cursor.
    const rows = store.listHolds(db, repository, includeReleased, limit + 1, afterSeq);
    const page = rows.slice(0, limit);
    const next = rows.length > limit ? String(page[page.length - 1]!.createdSeq) : null;
    return c.json({ ...(repository === undefined ? {} : { repository }), holds: page.map(holdView), next });
  });

  app.get('/api/v1/evidence', (c) => {
    const repository = query(c, 'repository', isValidName, 'a valid repository name');
    const digest = tryParseDigest(query(c, 'digest', (d) => tryParseDigest(d) !== null, 'a digest'))!.value;
    access.require(c, { kind: 'repository', repository, action: 'pull' });
    const repoId = requireRepository(repository);
    const view = (e: EvidenceRow) => {
      const until = policy.retainedUntil(e);
      return {
        digest: e.digest,
        subject: e.subject,
        type: e.type,
        declaredType: e.declaredType,
        untyped: e.type === null,
        pinsSubject: e.pinsSubject,
        pushedAt: new Date(e.pushedAt).toISOString(),
        retentionDays: policy.retentionDays(e),
        retainedUntil: new Date(until).toISOString(),
        retained: policy.isRetained(e),
        holds: store.activeHoldsCovering(db, repository, repoId, e.digest).map(holdView),
      };
    };
    const refusal = policy.check(db, repository, digest);
    return c.json({
      repository,
      digest,
      protected: refusal ? refusal.message : null,
      holds: store.activeHoldsCovering(db, repository, repoId, digest).map(holdView),
      evidence: store.evidenceOfSubject(db, repository, repoId, digest).map(view),
    });
  });
}

async function parseRelease(raw: Buffer): Promise<z.infer<typeof releaseBody>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw ociError('INVALID_PAYLOAD', 'body must be JSON', { status: 400 });
  }
  const r = releaseBody.safeParse(parsed);
  if (!r.success) throw ociError('INVALID_PAYLOAD', r.error.issues.map((i) => `$.${i.path.join('.')}: ${i.message}`).join('; '), { detail: r.error.issues.map((i) => ({ path: `$.${i.path.join('.')}`, message: i.message })) });
  return r.data;
}
