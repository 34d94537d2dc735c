/**
 * Bundles end to end over HTTP (PRODUCT.md §8, §11 "Bundles"): every endpoint and error code
 * with its exact body, the lifecycle, activation, resolution with tenant fallback, rollback,
 * immutability of registered content, the events written, and concurrent activations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, bundleConfig, errorOf, failReceipt, passReceipt, pushBundle, pushReceipt, type Pushed } from '../helpers/bundles.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let url: string;
const REPO = 'ml/fraud';

beforeAll(async () => {
  reg = await startTestRegistry();
  url = reg.url;
  const fg = await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0', tokenizer: '2.0.1' }, reason: 'platform 2026.11' });
  expect(fg.status).toBe(200);
});
afterAll(async () => {
  await reg.stop();
});

/** Pushes a bundle with a PASS receipt and publishes it. */
async function published(id: string, version: string, extra: Record<string, unknown> = {}, repo = REPO): Promise<Pushed> {
  const b = await pushBundle(url, repo, bundleConfig(id, version, extra));
  await pushReceipt(url, repo, b, passReceipt());
  const r = await api(url, 'POST', '/api/v1/bundles', { repository: repo, digest: b.digest });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return b;
}

async function approved(id: string, version: string, extra: Record<string, unknown> = {}, repo = REPO): Promise<Pushed> {
  const b = await published(id, version, extra, repo);
  for (const to of ['CANDIDATE', 'APPROVED']) expect((await api(url, 'POST', `/api/v1/bundles/${id}/${version}/transitions`, { to, reason: 'review ok' })).status).toBe(200);
  return b;
}

const activate = (scope: Record<string, string>, id: string, version: string, reason = 'rollout') => api(url, 'POST', '/api/v1/activations', { scope, bundle_id: id, bundle_version: version, reason });
const resolve = (q: string) => api(url, 'GET', `/api/v1/resolve?${q}`);
const stateOf = async (id: string, version: string): Promise<string> => (await api(url, 'GET', `/api/v1/bundles/${id}/${version}`)).body.state;

async function eventsSince(seq: number): Promise<any[]> {
  const r = await api(url, 'GET', `/api/v1/events?after=${seq}&limit=1000`);
  expect(r.status).toBe(200);
  return r.body.events;
}
async function lastSeq(): Promise<number> {
  let after = 0;
  for (;;) {
    const r = await api(url, 'GET', `/api/v1/events?after=${after}&limit=1000`);
    if (r.body.events.length === 0) return after;
    after = r.body.next;
  }
}

describe('publish', () => {
  it('registers a bundle with a PASS receipt: 201 ACCEPTED, then the record with its history', async () => {
    const b = await pushBundle(url, REPO, bundleConfig('scorer', '1.0.0'));
    const receipt = await pushReceipt(url, REPO, b, { result: 'PASS', gate: 'offline-eval', evaluated_at: '2026-11-30T12:00:00Z' });
    const r = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: b.digest });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ status: 'ACCEPTED', bundle_id: 'scorer', bundle_version: '1.0.0', state: 'REGISTERED', repository: REPO, digest: b.digest });
    expect(r.body.submitted_by).toBe('anonymous');
    expect(Date.parse(r.body.submitted_at)).toBeGreaterThan(Date.now() - 60_000);
    expect(r.body.receipts).toEqual([{ digest: receipt.digest, gate: 'offline-eval', result: 'PASS', evaluated_at: '2026-11-30T12:00:00Z' }]);

    const g = await api(url, 'GET', '/api/v1/bundles/scorer/1.0.0');
    expect(g.status).toBe(200);
    expect(g.body).toMatchObject({
      bundle_id: 'scorer',
      bundle_version: '1.0.0',
      state: 'REGISTERED',
      kind: 'model',
      model_family: 'fraud',
      repository: REPO,
      digest: b.digest,
      artifact_type: 'application/vnd.artifact-store.model-bundle.v1',
      required_feature_groups: { features: '^1.2.0' },
      provenance: { training_run: 'runs/42', evaluation_report: 'reports/42', dataset_manifests: ['datasets/a@sha256:1'] },
      active_scopes: [],
    });
    expect(g.body.history).toEqual([{ event_seq: r.body.event_seq, action: 'bundle.publish', from: null, to: 'REGISTERED', actor: 'anonymous', reason: null, time: r.body.submitted_at }]);
  });

  it('is idempotent: same id+version+digest is 200 DUPLICATE with the existing record; another digest is 409 CONFLICT', async () => {
    const b = await published('dup', '1.0.0');
    await api(url, 'POST', '/api/v1/bundles/dup/1.0.0/transitions', { to: 'CANDIDATE' });
    const again = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: b.digest });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'DUPLICATE', bundle_id: 'dup', bundle_version: '1.0.0', state: 'CANDIDATE', repository: REPO, digest: b.digest });

    const other = await pushBundle(url, REPO, bundleConfig('dup', '1.0.0', { config_hash: 'sha256:other' }));
    await pushReceipt(url, REPO, other, passReceipt());
    const c = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: other.digest });
    expect(c.status).toBe(409);
    const e = errorOf(c);
    expect(e).toEqual({
      code: 'CONFLICT',
      message: `dup@1.0.0 is already registered as ${REPO}@${b.digest}; publish a correction as a new version`,
      detail: { existing: { bundle_id: 'dup', bundle_version: '1.0.0', state: 'CANDIDATE', repository: REPO, digest: b.digest }, repository: REPO, digest: other.digest },
      retryable: false,
    });
  });

  it('refuses without a PASS receipt on exactly that digest: 422 GATE_NOT_PASS', async () => {
    const none = await pushBundle(url, REPO, bundleConfig('gated', '1.0.0'));
    const r1 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: none.digest });
    expect(r1.status).toBe(422);
    expect(errorOf(r1)).toEqual({ code: 'GATE_NOT_PASS', message: `no gate receipt refers to ${none.digest}`, detail: { receipts: [] }, retryable: false });

    // A PASS receipt on another digest does not count.
    const sibling = await pushBundle(url, REPO, bundleConfig('gated', '1.0.1'));
    await pushReceipt(url, REPO, sibling, passReceipt());
    const r2 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: none.digest });
    expect(errorOf(r2).code).toBe('GATE_NOT_PASS');

    const fail = await pushReceipt(url, REPO, none, { result: 'FAIL', gate: 'offline-eval', evaluated_at: '2026-11-30T12:00:00Z' });
    const r3 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: none.digest });
    expect(r3.status).toBe(422);
    expect(errorOf(r3)).toEqual({
      code: 'GATE_NOT_PASS',
      message: `gate offline-eval did not PASS for ${none.digest}`,
      detail: { receipts: [{ digest: fail.digest, gate: 'offline-eval', result: 'FAIL', evaluated_at: '2026-11-30T12:00:00Z' }] },
      retryable: false,
    });
    // Nothing was registered by the refusals.
    expect((await api(url, 'GET', '/api/v1/bundles/gated/1.0.0')).status).toBe(404);
  });

  it('counts the latest receipt of each gate by push order: FAIL then PASS passes, PASS then FAIL fails', async () => {
    const a = await pushBundle(url, REPO, bundleConfig('order', '1.0.0'));
    await pushReceipt(url, REPO, a, failReceipt('eval'));
    await pushReceipt(url, REPO, a, passReceipt('eval'));
    expect((await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: a.digest })).status).toBe(201);

    const b = await pushBundle(url, REPO, bundleConfig('order', '2.0.0'));
    await pushReceipt(url, REPO, b, passReceipt('eval'));
    await pushReceipt(url, REPO, b, failReceipt('eval'));
    const r = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: b.digest });
    expect(errorOf(r).code).toBe('GATE_NOT_PASS');

    // Two gates: every gate's latest must PASS.
    const c = await pushBundle(url, REPO, bundleConfig('order', '3.0.0'));
    await pushReceipt(url, REPO, c, passReceipt('eval'));
    await pushReceipt(url, REPO, c, failReceipt('security'));
    const r2 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: c.digest });
    expect(errorOf(r2).message).toBe(`gate security did not PASS for ${c.digest}`);
    // A malformed receipt counts as a failure.
    const d = await pushBundle(url, REPO, bundleConfig('order', '4.0.0'));
    await pushReceipt(url, REPO, d, { result: 'MAYBE', gate: 'eval', evaluated_at: 'soon' });
    const r3 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: d.digest });
    expect(errorOf(r3).code).toBe('GATE_NOT_PASS');
    expect(errorOf(r3).detail.receipts[0].invalid).toContain('$.result');
  });

  it.each([
    ['missing bundle_id', { bundle_id: undefined }, '$.bundle_id'],
    ['non-semver version', { bundle_version: 'v1' }, '$.bundle_version'],
    ['bad range', { required_feature_groups: { features: 'not a range!' } }, '$.required_feature_groups.features'],
    ['unknown kind', { kind: 'dataset' }, '$.kind'],
    ['missing provenance', { provenance: undefined }, '$.provenance'],
    ['empty model_family', { model_family: '' }, '$.model_family'],
  ])('refuses an invalid config (%s): 400 INVALID_PAYLOAD naming the JSON path', async (_name, patch, path) => {
    const b = await pushBundle(url, REPO, bundleConfig('badcfg', '1.0.0', patch));
    await pushReceipt(url, REPO, b, passReceipt());
    const r = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: b.digest });
    expect(r.status).toBe(400);
    const e = errorOf(r);
    expect(e.code).toBe('INVALID_PAYLOAD');
    expect(e.retryable).toBe(false);
    expect(e.detail.map((d: { path: string }) => d.path)).toContain(path);
    expect(e.message).toContain(path);
  });

  it('refuses what is not a bundle, a config of the wrong kind, a non-JSON config and a bad body: 400 INVALID_PAYLOAD', async () => {
    const notBundle = await pushBundle(url, REPO, bundleConfig('nb', '1.0.0'), { artifactType: 'application/vnd.example.thing' });
    const r1 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: notBundle.digest });
    expect(r1.status).toBe(400);
    expect(errorOf(r1)).toEqual({
      code: 'INVALID_PAYLOAD',
      message:
        'not a bundle: artifactType must be application/vnd.artifact-store.model-bundle.v1 or application/vnd.artifact-store.policy-bundle.v1 and the config application/vnd.artifact-store.bundle.config.v1+json',
      detail: { artifactType: 'application/vnd.example.thing', configMediaType: 'application/vnd.artifact-store.bundle.config.v1+json' },
      retryable: false,
    });
    const wrongKind = await pushBundle(url, REPO, bundleConfig('nb', '1.0.1'), { artifactType: 'application/vnd.artifact-store.policy-bundle.v1' });
    const r2 = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: wrongKind.digest });
    expect(errorOf(r2)).toMatchObject({ code: 'INVALID_PAYLOAD', detail: [{ path: '$.kind', message: 'must be policy' }] });
    const notJson = await pushBundle(url, REPO, 'this is not json');
    expect(errorOf(await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: notJson.digest })).code).toBe('INVALID_PAYLOAD');
    const r3 = await api(url, 'POST', '/api/v1/bundles', { repository: 'Not/Valid', digest: 'sha256:xyz' });
    expect(r3.status).toBe(400);
    expect(errorOf(r3).detail).toEqual([
      { path: '$.repository', message: 'must be a valid repository name' },
      { path: '$.digest', message: 'must be a digest such as sha256:<64 hex>' },
    ]);
  });

  it('answers 404 UNKNOWN_BUNDLE for a manifest that does not exist and an unknown bundle', async () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    const r = await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest });
    expect(r.status).toBe(404);
    expect(errorOf(r)).toEqual({ code: 'UNKNOWN_BUNDLE', message: `no manifest ${digest} in ${REPO}`, detail: { repository: REPO, digest }, retryable: false });
    const g = await api(url, 'GET', '/api/v1/bundles/nope/1.0.0');
    expect(g.status).toBe(404);
    expect(errorOf(g)).toEqual({ code: 'UNKNOWN_BUNDLE', message: 'no bundle nope@1.0.0', detail: { bundle_id: 'nope', bundle_version: '1.0.0' }, retryable: false });
  });
});

describe('lifecycle', () => {
  it('moves REGISTERED → CANDIDATE → APPROVED → RETIRED; repeating the current state is 200 without an event', async () => {
    await published('life', '1.0.0');
    const t1 = await api(url, 'POST', '/api/v1/bundles/life/1.0.0/transitions', { to: 'CANDIDATE', reason: 'offline metrics ok' });
    expect(t1.status).toBe(200);
    expect(t1.body).toMatchObject({ bundle_id: 'life', bundle_version: '1.0.0', state: 'CANDIDATE', changed: true });
    const seq = await lastSeq();
    const again = await api(url, 'POST', '/api/v1/bundles/life/1.0.0/transitions', { to: 'CANDIDATE', reason: 'again' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ state: 'CANDIDATE', changed: false, event_seq: null });
    expect(await eventsSince(seq)).toEqual([]);
    expect((await api(url, 'POST', '/api/v1/bundles/life/1.0.0/transitions', { to: 'APPROVED', reason: 'signed off' })).body.state).toBe('APPROVED');
    expect((await api(url, 'POST', '/api/v1/bundles/life/1.0.0/transitions', { to: 'RETIRED', reason: 'superseded' })).body.state).toBe('RETIRED');
    const h = (await api(url, 'GET', '/api/v1/bundles/life/1.0.0')).body.history;
    expect(h.map((x: any) => [x.action, x.from, x.to, x.reason])).toEqual([
      ['bundle.publish', null, 'REGISTERED', null],
      ['bundle.transition', 'REGISTERED', 'CANDIDATE', 'offline metrics ok'],
      ['bundle.transition', 'CANDIDATE', 'APPROVED', 'signed off'],
      ['bundle.transition', 'APPROVED', 'RETIRED', 'superseded'],
    ]);
  });

  it('refuses edges that are not allowed: 409 INVALID_TRANSITION; a bad target is 400', async () => {
    await published('edges', '1.0.0');
    const skip = await api(url, 'POST', '/api/v1/bundles/edges/1.0.0/transitions', { to: 'APPROVED', reason: 'x' });
    expect(skip.status).toBe(409);
    expect(errorOf(skip)).toEqual({ code: 'INVALID_TRANSITION', message: 'edges@1.0.0: REGISTERED → APPROVED is not allowed: REGISTERED may move only to CANDIDATE or REJECTED', detail: { from: 'REGISTERED', to: 'APPROVED' }, retryable: false });
    const active = await api(url, 'POST', '/api/v1/bundles/edges/1.0.0/transitions', { to: 'ACTIVE' });
    expect(errorOf(active).message).toBe('edges@1.0.0: REGISTERED → ACTIVE is not allowed: a bundle becomes ACTIVE only through POST /api/v1/activations');
    expect((await api(url, 'POST', '/api/v1/bundles/edges/1.0.0/transitions', { to: 'REJECTED', reason: 'bias found' })).body.state).toBe('REJECTED');
    const final = await api(url, 'POST', '/api/v1/bundles/edges/1.0.0/transitions', { to: 'CANDIDATE' });
    expect(errorOf(final)).toMatchObject({ code: 'INVALID_TRANSITION', message: 'edges@1.0.0: REJECTED → CANDIDATE is not allowed: REJECTED is final' });
    const bad = await api(url, 'POST', '/api/v1/bundles/edges/1.0.0/transitions', { to: 'LIVE' });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).code).toBe('INVALID_PAYLOAD');
    const unknown = await api(url, 'POST', '/api/v1/bundles/edges/9.9.9/transitions', { to: 'CANDIDATE' });
    expect(errorOf(unknown).code).toBe('UNKNOWN_BUNDLE');
  });
});

describe('activation, resolution, rollback', () => {
  it('activates per scope, resolves with tenant fallback, demotes the replaced bundle, rolls back by history', async () => {
    const v1 = await approved('ranker', '1.0.0');
    const v2 = await approved('ranker', '2.0.0');
    const prod = { environment: 'prod', model_family: 'fraud' };
    const a1 = await activate(prod, 'ranker', '1.0.0', 'first rollout');
    expect(a1.status).toBe(200);
    expect(a1.body).toEqual({ scope: prod, bundle_id: 'ranker', bundle_version: '1.0.0', event_seq: expect.any(Number), repository: REPO, digest: v1.digest, changed: true, replaced: null });
    expect(await stateOf('ranker', '1.0.0')).toBe('ACTIVE');

    const r1 = await resolve('environment=prod&model_family=fraud');
    expect(r1.status).toBe(200);
    expect(r1.body).toEqual({ scope: prod, resolved_scope: prod, fallback: false, bundle_id: 'ranker', bundle_version: '1.0.0', repository: REPO, digest: v1.digest, event_seq: a1.body.event_seq });
    // A tenant without its own activation falls back to the tenant-less scope, and says so.
    const rt = await resolve('environment=prod&model_family=fraud&tenant=acme');
    expect(rt.body).toEqual({ scope: { ...prod, tenant: 'acme' }, resolved_scope: prod, fallback: true, bundle_id: 'ranker', bundle_version: '1.0.0', repository: REPO, digest: v1.digest, event_seq: a1.body.event_seq });

    // Repeating the activation changes nothing.
    const seq = await lastSeq();
    const same = await activate(prod, 'ranker', '1.0.0');
    expect(same.body).toMatchObject({ event_seq: a1.body.event_seq, changed: false });
    expect(await eventsSince(seq)).toEqual([]);

    const a2 = await activate(prod, 'ranker', '2.0.0', 'v2 wins the A/B');
    expect(a2.body).toMatchObject({ bundle_version: '2.0.0', changed: true, replaced: { bundle_id: 'ranker', bundle_version: '1.0.0', state: 'ACTIVE', repository: REPO, digest: v1.digest } });
    expect(await stateOf('ranker', '1.0.0')).toBe('APPROVED');
    expect(await stateOf('ranker', '2.0.0')).toBe('ACTIVE');
    expect((await resolve('environment=prod&model_family=fraud')).body).toMatchObject({ bundle_version: '2.0.0', digest: v2.digest, event_seq: a2.body.event_seq });

    // A tenant scope of its own takes precedence over the fallback.
    const at = await activate({ ...prod, tenant: 'acme' }, 'ranker', '1.0.0', 'acme stays on v1');
    expect((await resolve('environment=prod&model_family=fraud&tenant=acme')).body).toMatchObject({ fallback: false, resolved_scope: { ...prod, tenant: 'acme' }, bundle_version: '1.0.0', event_seq: at.body.event_seq });
    expect(await stateOf('ranker', '1.0.0')).toBe('ACTIVE');

    const rb = await api(url, 'POST', '/api/v1/activations/rollback', { scope: prod, reason: 'p99 regression' });
    expect(rb.status).toBe(200);
    expect(rb.body).toEqual({ scope: prod, bundle_id: 'ranker', bundle_version: '1.0.0', event_seq: expect.any(Number), repository: REPO, digest: v1.digest, changed: true, replaced: expect.objectContaining({ bundle_version: '2.0.0' }) });
    expect(rb.body.event_seq).toBeGreaterThan(at.body.event_seq);
    expect((await resolve('environment=prod&model_family=fraud')).body).toMatchObject({ bundle_version: '1.0.0', event_seq: rb.body.event_seq });
    expect(await stateOf('ranker', '2.0.0')).toBe('APPROVED');

    // Nothing older left in prod: 409.
    const none = await api(url, 'POST', '/api/v1/activations/rollback', { scope: prod, reason: 'again' });
    expect(none.status).toBe(409);
    expect(errorOf(none)).toEqual({ code: 'INVALID_TRANSITION', message: 'the scope has no earlier activation to roll back to', detail: { scope: prod }, retryable: false });

    // Scope history lists every change with its event sequence.
    const hist = await api(url, 'GET', '/api/v1/activations?environment=prod&model_family=fraud');
    expect(hist.body.active).toMatchObject({ bundle_version: '1.0.0', event_seq: rb.body.event_seq });
    expect(hist.body.rollback_stack.map((e: any) => e.bundle_version)).toEqual(['1.0.0']);
    expect(hist.body.history.filter((h: any) => h.to === 'ACTIVE').map((h: any) => [h.action, h.bundle_version, h.event_seq])).toEqual([
      ['bundle.activate', '1.0.0', a1.body.event_seq],
      ['bundle.activate', '2.0.0', a2.body.event_seq],
      ['bundle.rollback', '1.0.0', rb.body.event_seq],
    ]);
  });

  it('requires APPROVED (409), a matching model family and satisfied feature groups (422 INCOMPATIBLE, fail closed)', async () => {
    await published('gate2', '1.0.0');
    const scope = { environment: 'staging', model_family: 'fraud' };
    const r1 = await activate(scope, 'gate2', '1.0.0');
    expect(r1.status).toBe(409);
    expect(errorOf(r1)).toEqual({ code: 'INVALID_TRANSITION', message: 'gate2@1.0.0 is REGISTERED; only APPROVED bundles can be activated', detail: { state: 'REGISTERED', required: 'APPROVED' }, retryable: false });

    await approved('needs', '1.0.0', { required_feature_groups: { features: '^1.2.0', embeddings: '>=3', tokenizer: '^1.0.0' } });
    const r2 = await activate(scope, 'needs', '1.0.0');
    expect(r2.status).toBe(422);
    expect(errorOf(r2)).toEqual({
      code: 'INCOMPATIBLE',
      message: 'needs@1.0.0 is incompatible with the platform: undeclared feature groups: embeddings; tokenizer 2.0.1 does not satisfy ^1.0.0',
      detail: { missing: ['embeddings'], unsatisfied: [{ group: 'tokenizer', required: '^1.0.0', declared: '2.0.1' }] },
      retryable: false,
    });
    const r3 = await activate({ environment: 'staging', model_family: 'churn' }, 'needs', '1.0.0');
    expect(r3.status).toBe(422);
    expect(errorOf(r3).message).toBe('needs@1.0.0 is for model family fraud, not churn');
    const r4 = await activate(scope, 'ghost', '1.0.0');
    expect(r4.status).toBe(404);
    expect(errorOf(r4).code).toBe('UNKNOWN_BUNDLE');
    const r5 = await api(url, 'POST', '/api/v1/activations', { scope: { environment: '', model_family: 'fraud' }, bundle_id: 'needs', bundle_version: '1.0.0', reason: 'x' });
    expect(r5.status).toBe(400);
    expect(errorOf(r5).detail[0].path).toBe('$.scope.environment');

    // Declaring the platform's groups makes it compatible; the change is an event.
    const seq = await lastSeq();
    const fg = await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0', tokenizer: '1.9.0', embeddings: '3.1.0' }, reason: 'new tokenizer line' });
    expect(fg.body).toEqual({ groups: { embeddings: '3.1.0', features: '1.4.0', tokenizer: '1.9.0' }, changed: true, event_seq: expect.any(Number) });
    const ev = (await eventsSince(seq)).find((e) => e.action === 'platform.feature-groups.set');
    expect(ev).toMatchObject({ actor: 'anonymous', reason: 'new tokenizer line' });
    expect((await activate(scope, 'needs', '1.0.0')).status).toBe(200);
    await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: '1.4.0', tokenizer: '2.0.1' } });
    const badFg = await api(url, 'PUT', '/api/v1/platform/feature-groups', { groups: { features: 'latest' } });
    expect(badFg.status).toBe(400);
    expect(errorOf(badFg).detail[0].path).toBe('$.groups.features');
  });

  it('resolves nothing as 404 UNKNOWN_BUNDLE and refuses empty scope values with 400', async () => {
    const r = await resolve('environment=nowhere&model_family=fraud');
    expect(r.status).toBe(404);
    expect(errorOf(r)).toEqual({ code: 'UNKNOWN_BUNDLE', message: 'no bundle is active for this scope', detail: { scope: { environment: 'nowhere', model_family: 'fraud' } }, retryable: false });
    const bad = await resolve('environment=&model_family=fraud');
    expect(bad.status).toBe(400);
    expect(errorOf(bad)).toMatchObject({ code: 'INVALID_PAYLOAD', detail: [{ path: '?.environment' }] });
    expect((await resolve('model_family=fraud')).status).toBe(400);
    const rb = await api(url, 'POST', '/api/v1/activations/rollback', { scope: { environment: 'nowhere', model_family: 'fraud' }, reason: 'x' });
    expect(errorOf(rb)).toEqual({ code: 'INVALID_TRANSITION', message: 'the scope has no active bundle and no earlier activation', detail: { scope: { environment: 'nowhere', model_family: 'fraud' } }, retryable: false });
  });

  it('retiring an ACTIVE bundle withdraws it from its scopes; rollback then re-activates the one before it', async () => {
    await approved('kill', '1.0.0');
    await approved('kill', '2.0.0');
    const scope = { environment: 'canary', model_family: 'fraud' };
    await activate(scope, 'kill', '1.0.0');
    await activate(scope, 'kill', '2.0.0');
    const t = await api(url, 'POST', '/api/v1/bundles/kill/2.0.0/transitions', { to: 'RETIRED', reason: 'data leak' });
    expect(t.body).toMatchObject({ state: 'RETIRED', changed: true });
    expect((await resolve('environment=canary&model_family=fraud')).status).toBe(404);
    const ev = (await eventsSince(t.body.event_seq - 1))[0];
    expect(ev).toMatchObject({ action: 'bundle.transition', reason: 'data leak' });
    expect(JSON.stringify(ev.after)).toContain('"withdrawn"');
    const rb = await api(url, 'POST', '/api/v1/activations/rollback', { scope, reason: 'restore v1' });
    expect(rb.body).toMatchObject({ bundle_version: '1.0.0', replaced: null });
    expect((await resolve('environment=canary&model_family=fraud')).body.bundle_version).toBe('1.0.0');
    // A retired bundle is never activated again.
    expect(errorOf(await activate(scope, 'kill', '2.0.0')).code).toBe('INVALID_TRANSITION');
  });

  it('parallel activations of different bundles in one scope leave exactly one ACTIVE, the last writer', async () => {
    const n = 8;
    for (let i = 0; i < n; i++) await approved('race', `1.0.${i}`);
    const scope = { environment: 'race', model_family: 'fraud' };
    const results = await Promise.all(Array.from({ length: n }, (_, i) => activate(scope, 'race', `1.0.${i}`)));
    for (const r of results) {
      // Either applied, or refused as a retryable conflict: never anything else.
      if (r.status !== 200) expect(errorOf(r)).toMatchObject({ code: 'CONFLICT', retryable: true });
    }
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThan(0);
    const states = await Promise.all(Array.from({ length: n }, (_, i) => stateOf('race', `1.0.${i}`)));
    expect(states.filter((s) => s === 'ACTIVE')).toHaveLength(1);
    const winner = ok.reduce((a, b) => (a.body.event_seq > b.body.event_seq ? a : b));
    const resolved = (await resolve('environment=race&model_family=fraud')).body;
    expect(resolved).toMatchObject({ bundle_version: winner.body.bundle_version, event_seq: winner.body.event_seq });
    expect(states[Number(winner.body.bundle_version.split('.')[2])]).toBe('ACTIVE');
  });
});

describe('immutability and events', () => {
  it('refuses deleting a registered bundle and its receipts (403 DENIED naming it) until it is RETIRED', async () => {
    const b = await pushBundle(url, REPO, bundleConfig('frozen', '1.0.0'), { tag: 'frozen-1' });
    const receipt = await pushReceipt(url, REPO, b, passReceipt());
    expect((await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: b.digest })).status).toBe(201);
    const del = await fetch(`${url}/v2/${REPO}/manifests/${b.digest}`, { method: 'DELETE' });
    expect(del.status).toBe(403);
    const body = (await del.json()) as any;
    expect(body.errors[0]).toMatchObject({ code: 'DENIED', message: `manifest ${b.digest} belongs to bundle frozen@1.0.0 (REGISTERED) registered from ${REPO}@${b.digest}; it is immutable until the bundle is RETIRED` });
    const delReceipt = await fetch(`${url}/v2/${REPO}/manifests/${receipt.digest}`, { method: 'DELETE' });
    expect(delReceipt.status).toBe(403);
    expect(((await delReceipt.json()) as any).errors[0].message).toContain('frozen@1.0.0');
    // The manifest is still there; a tag may go (the content stays addressable by digest).
    expect((await fetch(`${url}/v2/${REPO}/manifests/${b.digest}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${url}/v2/${REPO}/manifests/frozen-1`, { method: 'DELETE' })).status).toBe(202);

    await api(url, 'POST', '/api/v1/bundles/frozen/1.0.0/transitions', { to: 'REJECTED', reason: 'no' });
    expect((await fetch(`${url}/v2/${REPO}/manifests/${b.digest}`, { method: 'DELETE' })).status).toBe(403);
    const other = await pushBundle(url, REPO, bundleConfig('thaw', '1.0.0'));
    await pushReceipt(url, REPO, other, passReceipt());
    await api(url, 'POST', '/api/v1/bundles', { repository: REPO, digest: other.digest });
    await api(url, 'POST', '/api/v1/bundles/thaw/1.0.0/transitions', { to: 'CANDIDATE' });
    await api(url, 'POST', '/api/v1/bundles/thaw/1.0.0/transitions', { to: 'APPROVED' });
    await api(url, 'POST', '/api/v1/bundles/thaw/1.0.0/transitions', { to: 'RETIRED' });
    expect((await fetch(`${url}/v2/${REPO}/manifests/${other.digest}`, { method: 'DELETE' })).status).toBe(202);
  });

  it('writes every mutation as an event with actor, reason and before/after', async () => {
    const seq = await lastSeq();
    const b = await approved('audit', '1.0.0');
    await activate({ environment: 'audit', model_family: 'fraud' }, 'audit', '1.0.0', 'go live');
    const evs = (await eventsSince(seq)).filter((e) => e.action.startsWith('bundle.'));
    expect(evs.map((e) => [e.action, e.actor, e.repository, e.digest])).toEqual([
      ['bundle.publish', 'anonymous', REPO, b.digest],
      ['bundle.transition', 'anonymous', REPO, b.digest],
      ['bundle.transition', 'anonymous', REPO, b.digest],
      ['bundle.activate', 'anonymous', REPO, b.digest],
    ]);
    expect(evs[1]).toMatchObject({ reason: 'review ok' });
    expect(evs[3]).toMatchObject({ reason: 'go live' });
    expect(JSON.stringify(evs[3].before)).toContain('"bundle":null');
    expect(JSON.stringify(evs[3].after)).toContain('"environment":"audit"');
  });
});

describe('garbage collection', () => {
  it('keeps a registered (or REJECTED) bundle and its receipt when retention drops its tag; collects a RETIRED one', async () => {
    const repo = 'gcml/models';
    const b = await pushBundle(url, repo, bundleConfig('kept', '1.0.0'), { tag: 'old' });
    const receipt = await pushReceipt(url, repo, b, passReceipt());
    expect((await api(url, 'POST', '/api/v1/bundles', { repository: repo, digest: b.digest })).status).toBe(201);
    const gone = await pushBundle(url, repo, bundleConfig('gone', '1.0.0'), { tag: 'mid' });
    await pushReceipt(url, repo, gone, passReceipt());
    expect((await api(url, 'POST', '/api/v1/bundles', { repository: repo, digest: gone.digest })).status).toBe(201);
    for (const to of ['CANDIDATE', 'APPROVED', 'RETIRED']) await api(url, 'POST', '/api/v1/bundles/gone/1.0.0/transitions', { to });
    await pushBundle(url, repo, bundleConfig('other', '1.0.0'), { tag: 'new' }); // the most recent tag
    const policy = await api(url, 'PUT', '/api/v1/namespaces/gcml/policies', { immutableTags: [], retention: [{ repositories: 'gcml/*', keepMostRecent: 1 }] });
    expect(policy.status, JSON.stringify(policy.body)).toBe(200);
    const gc = await api(url, 'POST', '/api/v1/gc', { dryRun: false });
    expect(gc.status, JSON.stringify(gc.body)).toBe(200);
    for (const d of [b.digest, receipt.digest]) expect((await fetch(`${url}/v2/${repo}/manifests/${d}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${url}/v2/${repo}/blobs/${b.layers[0]}`, { method: 'HEAD' })).status).toBe(200);
    // The retired bundle lost its protection: retention collected it.
    expect((await fetch(`${url}/v2/${repo}/manifests/${gone.digest}`, { method: 'HEAD' })).status).toBe(404);

    await api(url, 'POST', '/api/v1/bundles/kept/1.0.0/transitions', { to: 'REJECTED', reason: 'superseded' });
    await api(url, 'POST', '/api/v1/gc', { dryRun: false });
    expect((await fetch(`${url}/v2/${repo}/manifests/${b.digest}`, { method: 'HEAD' })).status).toBe(200); // REJECTED still protects
  });
});
