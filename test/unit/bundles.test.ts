/** Bundle rules without HTTP: lifecycle table, config schema, activation checks with in-test trust and families, replay. */
import { describe, expect, it } from 'vitest';
import { bundleConfigSchema, gateReceiptSchema, scopeKeyOf } from '../../src/bundles/format.js';
import { BUNDLE_STATES, checkTransition } from '../../src/bundles/lifecycle.js';
import { replayBundleEvents, resolveReplayed } from '../../src/bundles/replay.js';
import { RetryableConflict } from '../../src/bundles/store.js';
import { AppError } from '../../src/errors/catalogue.js';
import { bundleEvents, eventCount, fixedTrust, fixture, governedFamilies, seedBundle } from './bundles-fixtures.js';

const prod = scopeKeyOf({ environment: 'prod', model_family: 'fraud' });

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof AppError) return err.code;
    throw err;
  }
  return 'OK';
}

describe('lifecycle table', () => {
  it('allows exactly the documented edges; ACTIVE only through activation; repeats are no-ops', () => {
    const allowed: string[] = [];
    for (const from of BUNDLE_STATES) for (const to of BUNDLE_STATES) {
      const r = checkTransition(from, to);
      if (r.ok && !r.noop) allowed.push(`${from}->${to}`);
      if (from === to) expect(r).toEqual({ ok: true, noop: true });
    }
    expect(allowed.sort()).toEqual(['ACTIVE->RETIRED', 'APPROVED->RETIRED', 'CANDIDATE->APPROVED', 'CANDIDATE->REJECTED', 'REGISTERED->CANDIDATE', 'REGISTERED->REJECTED']);
  });
});

describe('config schema', () => {
  const good = { bundle_id: 'a', bundle_version: '1.2.3-rc.1+build.5', kind: 'policy', model_family: 'f', required_feature_groups: { g: '>=1.0.0 <2' }, config_hash: 'h', provenance: { dataset_manifests: [] } };
  it('accepts a valid config and keeps extra fields', () => {
    expect(bundleConfigSchema.parse({ ...good, extra: 1 })).toMatchObject({ extra: 1 });
  });
  it.each([
    [{ bundle_version: '1.2' }],
    [{ bundle_version: 'v1.2.3' }],
    [{ bundle_version: ' 1.2.3' }],
    [{ required_feature_groups: { g: '' } }],
    [{ required_feature_groups: { g: '1.x || nonsense' } }],
    [{ required_feature_groups: { '': '^1' } }],
    [{ bundle_id: 'a/b' }],
    [{ provenance: { dataset_manifests: 'x' } }],
    [{ config_hash: '' }],
  ])('refuses %j', (patch) => {
    expect(bundleConfigSchema.safeParse({ ...good, ...patch }).success).toBe(false);
  });
  it('validates receipts', () => {
    expect(gateReceiptSchema.safeParse({ result: 'PASS', gate: 'g', evaluated_at: '2026-01-01T00:00:00Z' }).success).toBe(true);
    expect(gateReceiptSchema.safeParse({ result: 'pass', gate: 'g', evaluated_at: '2026-01-01T00:00:00Z' }).success).toBe(false);
    expect(gateReceiptSchema.safeParse({ result: 'PASS', gate: 'g', evaluated_at: 'yesterday' }).success).toBe(false);
  });
});

describe('activation checks', () => {
  it('under an enforcing policy only a trusted digest activates (403 UNTRUSTED with the verdict); warn and off do not block', async () => {
    const trusted = new Set<string>();
    const f = fixture({ trust: fixedTrust('enforce', trusted) });
    const b = seedBundle(f.store, 'm', '1.0.0');
    const before = eventCount(f.db);
    let err: AppError | undefined;
    await f.service.activate(b, prod, 'ops', 'go').catch((e: AppError) => (err = e));
    expect(err?.code).toBe('UNTRUSTED');
    expect(err?.status).toBe(403);
    expect(err?.message).toBe(`ml/models@${b.digest} is unsigned under the enforcing trust policy of ml (version 3)`);
    expect(err?.detail).toMatchObject({ trusted: false, decision: 'unsigned', policy: { mode: 'enforce' } });
    expect(eventCount(f.db)).toBe(before);
    trusted.add(b.digest);
    expect((await f.service.activate(b, prod, 'ops', 'go')).noop).toBe(false);

    const w = fixture({ trust: fixedTrust('warn') });
    expect(await codeOf(w.service.activate(seedBundle(w.store, 'm', '1.0.0'), prod, 'ops', null))).toBe('OK');
  });

  it('in a governed namespace the artifact type must have an active, promotable entry', async () => {
    const none = fixture({ families: governedFamilies(null) });
    expect(await codeOf(none.service.activate(seedBundle(none.store, 'm', '1.0.0'), prod, 'ops', null))).toBe('INVALID_TRANSITION');
    const notPromotable = fixture({ families: governedFamilies({ promotable: false }) });
    expect(await codeOf(notPromotable.service.activate(seedBundle(notPromotable.store, 'm', '1.0.0'), prod, 'ops', null))).toBe('INVALID_TRANSITION');
    const ok = fixture({ families: governedFamilies({ promotable: true }) });
    expect(await codeOf(ok.service.activate(seedBundle(ok.store, 'm', '1.0.0'), prod, 'ops', null))).toBe('OK');
  });

  it('fails closed on feature groups, re-checked inside the transaction', async () => {
    const f = fixture();
    const b = seedBundle(f.store, 'm', '1.0.0', 'APPROVED', { features: '^2.0.0' });
    expect(await codeOf(f.service.activate(b, prod, 'ops', null))).toBe('INCOMPATIBLE');
    f.store.setFeatureGroups({ features: '2.3.0' }, 'admin', null);
    expect(await codeOf(f.service.activate(b, prod, 'ops', null))).toBe('OK');
    // The store itself refuses when the platform moved away after the caller's check.
    const c = seedBundle(f.store, 'm', '1.1.0', 'APPROVED', { features: '^2.0.0' });
    f.store.setFeatureGroups({ features: '3.0.0' }, 'admin', null);
    expect(await codeOf(() => f.store.activate(c.id, prod, 'ops', null, (tx, fresh) => f.service.checkCompatible(tx, fresh)))).toBe('INCOMPATIBLE');
  });

  it('feature-group declarations are idempotent: the same set writes no event', () => {
    const f = fixture();
    expect(f.store.setFeatureGroups({ b: '1.0.0', a: '2.0.0' }, 'admin', 'r')).toEqual(expect.any(Number));
    const n = eventCount(f.db);
    expect(f.store.setFeatureGroups({ a: '2.0.0', b: '1.0.0' }, 'admin', 'r')).toBeNull();
    expect(eventCount(f.db)).toBe(n);
  });
});

describe('registration', () => {
  it('a refusal from the in-transaction re-check (content deleted meanwhile) writes nothing and is retryable', () => {
    const f = fixture();
    const before = eventCount(f.db);
    const config = { bundle_id: 'r', bundle_version: '1.0.0', kind: 'model' as const, model_family: 'f', required_feature_groups: {}, config_hash: 'h', provenance: { dataset_manifests: [] } };
    let err: AppError | undefined;
    try {
      f.store.register({ config, kind: 'model', repository: 'ml/x', digest: 'sha256:1', artifactType: 't', receipts: [] }, 'a', () => {
        throw new RetryableConflict('CONFLICT', 'gone');
      });
    } catch (e) {
      err = e as AppError;
    }
    expect(err?.retryable).toBe(true);
    expect(eventCount(f.db)).toBe(before);
    expect(f.store.byIdentity('r', '1.0.0')).toBeUndefined();
  });
});

describe('replay', () => {
  it('derives active bundles, their event sequence and states from the events alone', async () => {
    const f = fixture();
    const a = seedBundle(f.store, 'a', '1.0.0');
    const b = seedBundle(f.store, 'b', '1.0.0');
    const ra = await f.service.activate(a, prod, 'ops', null);
    const rb = await f.service.activate(b, prod, 'ops', null);
    const tenant = scopeKeyOf({ environment: 'prod', model_family: 'fraud', tenant: 't' });
    const rt = await f.service.activate(a, tenant, 'ops', null);
    const r = replayBundleEvents(bundleEvents(f.db));
    expect(resolveReplayed(r, { environment: 'prod', model_family: 'fraud' })).toMatchObject({ bundle_id: 'b', event_seq: rb.eventSeq, fallback: false });
    expect(resolveReplayed(r, { environment: 'prod', model_family: 'fraud', tenant: 't' })).toMatchObject({ bundle_id: 'a', event_seq: rt.eventSeq, fallback: false });
    expect(resolveReplayed(r, { environment: 'prod', model_family: 'fraud', tenant: 'u' })).toMatchObject({ bundle_id: 'b', fallback: true });
    expect(r.states.get('a@1.0.0')).toBe('ACTIVE');
    expect(ra.eventSeq).toBeLessThan(rb.eventSeq);
  });
});
