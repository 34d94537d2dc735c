/** Trust HTTP API (PRODUCT.md §11 "Trust"): policy per namespace, key revocation, explanation. */
import { createHash, createPublicKey } from 'node:crypto';
import type { Hono } from 'hono';
import type { AccessControl } from '../auth/access.js';
import { isDigest, tryParseDigest } from '../core/digest.js';
import { isValidName } from '../core/names.js';
import { ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import { readJson } from '../http/json.js';
import type { RegistryStore } from '../meta/registry-store.js';
import type { TrustEvaluator } from './evaluator.js';
import { putPolicySchema, validatePolicy, type TrustPolicy } from './policy.js';
import type { TrustPolicyStore } from './policy-store.js';

function assertNamespace(ns: string): string {
  if (ns.includes('/') || !isValidName(ns)) throw ociError('NAME_INVALID', 'invalid namespace', { detail: { namespace: ns } });
  return ns;
}

/** SHA-256 of the key's SPKI DER, base64: the hint cosign computes for a public key. */
function fingerprint(pem: string): string | null {
  try {
    return createHash('sha256').update(createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('base64');
  } catch {
    return null;
  }
}

/** The policy as the API shows it: PEMs included (they are public), revocations dated. */
function view(p: TrustPolicy) {
  return {
    namespace: p.namespace,
    version: p.version,
    mode: p.mode,
    enforceOnPull: p.enforceOnPull,
    keys: p.keys.map((k) => ({ id: k.id, publicKey: k.publicKey, fingerprint: fingerprint(k.publicKey) })),
    revokedKeys: p.revokedKeys.map((k) => ({ id: k.id, fingerprint: fingerprint(k.publicKey), revokedAt: new Date(k.revokedAt).toISOString(), revokedBy: k.revokedBy })),
    identities: p.identities,
    trustedRoot: p.trustedRoot !== undefined ? 'namespace' : 'registry',
  };
}

export function registerTrustRoutes(app: Hono<AppEnv>, deps: { access: AccessControl; store: RegistryStore; policies: TrustPolicyStore; evaluator: TrustEvaluator }): void {
  const { access, policies, evaluator, store } = deps;

  app.put('/api/v1/namespaces/:ns/trust', async (c) => {
    const ns = assertNamespace(c.req.param('ns'));
    access.require(c, { kind: 'namespace.manage', namespace: ns });
    const body = await readJson(c, putPolicySchema);
    validatePolicy(body);
    return c.json(view(policies.put(ns, body, c.get('actor'))), 200);
  });

  app.get('/api/v1/namespaces/:ns/trust', (c) => {
    const ns = assertNamespace(c.req.param('ns'));
    access.require(c, { kind: 'namespace.manage', namespace: ns });
    return c.json(view(policies.get(ns)), 200);
  });

  app.delete('/api/v1/namespaces/:ns/trust/keys/:id', (c) => {
    const ns = assertNamespace(c.req.param('ns'));
    access.require(c, { kind: 'namespace.manage', namespace: ns });
    const reason = c.req.query('reason') ?? null;
    return c.json(view(policies.revokeKey(ns, c.req.param('id'), c.get('actor'), reason ? reason.slice(0, 500) : null)), 200);
  });

  app.get('/api/v1/trust', async (c) => {
    const repository = c.req.query('repository') ?? '';
    const digest = c.req.query('digest') ?? '';
    if (!isValidName(repository)) throw ociError('INVALID_PAYLOAD', 'repository: not a valid repository name', { detail: [{ path: '$.repository', message: 'invalid' }] });
    if (!isDigest(digest) || !tryParseDigest(digest)) throw ociError('INVALID_PAYLOAD', 'digest: not a valid digest', { detail: [{ path: '$.digest', message: 'invalid' }] });
    access.require(c, { kind: 'repository', repository, action: 'pull' });
    if (!store.manifestByDigest(repository, digest)) throw ociError('MANIFEST_UNKNOWN', `${repository}@${digest} is not stored`, { detail: { repository, digest } });
    return c.json(await evaluator.explain(repository, digest), 200);
  });
}
