/** OpenAPI operations of model and policy bundles: publish, lifecycle, activation, resolve (PRODUCT.md §11). */
import { z } from 'zod';
import { activationBody, featureGroupsBody, publishBody, rollbackBody, transitionBody } from '../bundles/routes.js';
import { BUNDLE_STATES } from '../bundles/lifecycle.js';
import type { Operations } from './build.js';

const state = z.enum(BUNDLE_STATES);
const scope = z.looseObject({ environment: z.string(), model_family: z.string(), tenant: z.string().optional() });
const bundle = z.looseObject({
  bundle_id: z.string(),
  bundle_version: z.string(),
  state,
  repository: z.string(),
  digest: z.string(),
  kind: z.string(),
  model_family: z.string(),
  artifact_type: z.string(),
  required_feature_groups: z.record(z.string(), z.string()),
  config_hash: z.string(),
  provenance: z.looseObject({}),
  receipts: z.array(z.looseObject({ digest: z.string(), gate: z.string(), result: z.string(), evaluated_at: z.string() })),
  submitted_by: z.string(),
  submitted_at: z.string(),
  event_seq: z.number().int(),
  active_scopes: z.array(z.unknown()),
});
const historyItem = z.looseObject({ event_seq: z.number().int(), action: z.string(), from: z.string().nullable(), to: z.string().nullable(), actor: z.string(), reason: z.string().nullable(), time: z.string() });
const activated = z.looseObject({ scope, bundle_id: z.string(), bundle_version: z.string(), event_seq: z.number().int(), repository: z.string(), digest: z.string(), changed: z.boolean() });
const pointer = z.looseObject({ bundle_id: z.string(), bundle_version: z.string(), state, repository: z.string(), digest: z.string(), event_seq: z.number().int() });
const scopeQuery = { 'environment!': 'environment', 'model_family!': 'model family', tenant: 'tenant (falls back to the tenant-less scope)' };

export const bundleOperations: Operations = {
  '/api/v1/bundles': {
    post: { summary: 'Register a pushed bundle; needs a PASS gate receipt referring to it (GATE_NOT_PASS); the same id+version+digest again is a no-op', body: publishBody, ok: { status: 201, schema: bundle.extend({ status: z.string() }) } },
  },
  '/api/v1/bundles/{bundle_id}/{bundle_version}': {
    get: { summary: 'A bundle with its lifecycle history', ok: { status: 200, schema: bundle.extend({ history: z.array(historyItem) }) }, access: 'optional' },
  },
  '/api/v1/bundles/{bundle_id}/{bundle_version}/transitions': {
    post: {
      summary: 'Move a bundle along REGISTERED → CANDIDATE → APPROVED → ACTIVE → RETIRED (or REJECTED); INVALID_TRANSITION otherwise',
      body: transitionBody,
      ok: { status: 200, schema: z.looseObject({ bundle_id: z.string(), bundle_version: z.string(), state, repository: z.string(), digest: z.string(), changed: z.boolean(), event_seq: z.number().int() }) },
    },
  },
  '/api/v1/platform/feature-groups': {
    put: { summary: "Declare the platform's feature group versions (activations must be compatible); administrators", body: featureGroupsBody, ok: { status: 200, schema: z.looseObject({ groups: z.record(z.string(), z.string()), changed: z.boolean(), event_seq: z.number().int() }) } },
  },
  '/api/v1/activations': {
    get: {
      summary: "A scope's active bundle, its rollback stack and activation history",
      query: scopeQuery,
      ok: { status: 200, schema: z.looseObject({ scope, active: pointer.nullable(), rollback_stack: z.array(pointer), history: z.array(z.looseObject({ event_seq: z.number().int(), action: z.string() })) }) },
      access: 'optional',
    },
    post: { summary: 'Activate an APPROVED bundle for a scope (INCOMPATIBLE, UNTRUSTED refuse it)', body: activationBody, ok: { status: 200, schema: activated.extend({ replaced: z.unknown() }) } },
  },
  '/api/v1/activations/rollback': {
    post: { summary: 'Re-activate the previous bundle of a scope, as a recorded event', body: rollbackBody, ok: { status: 200, schema: activated } },
  },
  '/api/v1/resolve': {
    get: {
      summary: 'The active bundle of a scope and the event that activated it; depends only on the log',
      query: scopeQuery,
      ok: { status: 200, schema: z.looseObject({ scope, resolved_scope: scope, fallback: z.boolean(), bundle_id: z.string(), bundle_version: z.string(), repository: z.string(), digest: z.string(), event_seq: z.number().int() }) },
      access: 'optional',
    },
  },
};
