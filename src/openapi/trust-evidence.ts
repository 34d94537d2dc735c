/** OpenAPI operations of trust policies and verdicts, evidence and legal holds (PRODUCT.md §11). */
import { z } from 'zod';
import { createBody as holdBody, releaseBody } from '../evidence/routes.js';
import { putPolicySchema } from '../trust/policy.js';
import type { Operations } from './build.js';

const mode = z.enum(['off', 'warn', 'enforce']);
const policy = z.looseObject({
  namespace: z.string(),
  version: z.number().int(),
  mode,
  enforceOnPull: z.boolean(),
  keys: z.array(z.looseObject({ id: z.string() })),
  revokedKeys: z.array(z.unknown()),
  identities: z.array(z.looseObject({})),
  trustedRoot: z.unknown().describe('"registry" (the configured trusted root) or the namespace\'s own'),
});
const verdict = z.looseObject({
  repository: z.string(),
  digest: z.string(),
  trusted: z.boolean(),
  decision: z.enum(['trusted', 'untrusted', 'unsigned']),
  policy: z.looseObject({ namespace: z.string(), mode, version: z.number().int(), enforceOnPull: z.boolean() }).nullable(),
  signatures: z.array(z.looseObject({})),
  attestations: z.array(z.looseObject({})),
  quarantined: z.boolean(),
  truncated: z.boolean(),
});
const hold = z.looseObject({
  id: z.string(),
  repository: z.string(),
  digest: z.string().nullable(),
  scope: z.enum(['repository', 'digest']),
  reason: z.string(),
  createdBy: z.string(),
  createdAt: z.string(),
  createdSeq: z.number().int(),
  active: z.boolean(),
  releasedBy: z.string().nullable(),
  releasedAt: z.string().nullable(),
  releaseReason: z.string().nullable(),
});
const evidence = z.looseObject({
  digest: z.string(),
  subject: z.string(),
  type: z.string().nullable(),
  pushedAt: z.string(),
  retentionDays: z.number().nullable(),
  retainedUntil: z.string().nullable(),
  retained: z.boolean(),
  holds: z.array(z.unknown()),
});

export const trustEvidenceOperations: Operations = {
  '/api/v1/namespaces/{ns}/trust': {
    get: { summary: "The namespace's trust policy", ok: { status: 200, schema: policy } },
    put: { summary: 'Replace the trust policy (mode, keys, keyless identities, pull enforcement); bumps its version; namespace managers', body: putPolicySchema, ok: { status: 200, schema: policy } },
  },
  '/api/v1/namespaces/{ns}/trust/keys/{id}': {
    delete: { summary: 'Revoke a key of the policy (signatures by it stop counting)', query: { reason: 'why' }, ok: { status: 200, schema: policy } },
  },
  '/api/v1/trust': {
    get: { summary: 'Is this digest trusted, and why: the decision, the policy version, every signature and attestation', query: { 'repository!': 'repository name', 'digest!': 'manifest digest' }, ok: { status: 200, schema: verdict }, access: 'optional' },
  },
  '/api/v1/evidence': {
    get: {
      summary: 'Evidence attached to a digest (or a repository), with retention and holds',
      query: { 'repository!': 'repository name', digest: 'subject digest' },
      ok: { status: 200, schema: z.looseObject({ repository: z.string(), protected: z.unknown(), holds: z.array(hold), evidence: z.array(evidence) }) },
      access: 'optional',
    },
  },
  '/api/v1/holds': {
    get: {
      summary: 'Legal holds of a repository (every repository: administrators, without `repository`), oldest first, paged (`limit`, `cursor` = the previous `next`)',
      query: { repository: 'repository name (required unless an administrator)', includeReleased: '`true`: released holds too', limit: 'page size, 1 to 1000 (default 1000)', cursor: "the previous page's `next`" },
      ok: { status: 200, schema: z.looseObject({ repository: z.string().optional(), holds: z.array(hold), next: z.string().nullable().describe('cursor of the following page; null on the last') }) },
    },
    post: { summary: 'Place a legal hold on a repository or one digest; namespace owners and administrators', body: holdBody, ok: { status: 201, schema: hold } },
  },
  '/api/v1/holds/{id}': {
    delete: { summary: 'Release a hold (optional JSON body with a reason)', body: releaseBody, bodyOptional: true, ok: { status: 200, schema: hold } },
  },
};
