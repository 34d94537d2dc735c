/**
 * Signatures and trust (PRODUCT.md §6, §11 "Trust"): verifies cosign/sigstore signatures of a
 * digest against its namespace's policy, explains the decision, and under `enforce` +
 * `enforceOnPull` refuses manifest pulls of untrusted content (signatures stay readable).
 */
import { namespaceOf } from '../auth/permissions.js';
import { ociError } from '../errors/catalogue.js';
import type { Families, Trust } from '../governance/contracts.js';
import type { PullTarget } from '../governance/hooks.js';
import type { ModuleDeps } from '../governance/module.js';
import { COSIGN_ATT_ARTIFACT, COSIGN_SIG_ARTIFACT, isSignatureManifest } from './discovery.js';
import { carriesDeployableLayers } from './deployable.js';
import { TrustEvaluator, type TrustExplanation } from './evaluator.js';
import type { TrustPolicy } from './policy.js';
import { TrustPolicyStore } from './policy-store.js';
import { registerTrustRoutes } from './routes.js';
import { BUNDLE_PREFIX } from './verify.js';

export type { TrustExplanation } from './evaluator.js';

export interface TrustModule extends Trust {
  /** The full explanation (signatures, attestations, reasons) behind a verdict. */
  explain(repository: string, digest: string): Promise<TrustExplanation>;
}

function isSignatureArtifact(t: PullTarget): boolean {
  const type = t.artifactType ?? '';
  return type === COSIGN_SIG_ARTIFACT || type === COSIGN_ATT_ARTIFACT || type.startsWith(BUNDLE_PREFIX);
}

export function registerTrust(deps: ModuleDeps, _families: Families): TrustModule {
  const policies = new TrustPolicyStore(deps.db);
  const evaluator = new TrustEvaluator(deps.db, deps.store, deps.driver, policies, deps.config.trustedRootPath);
  registerTrustRoutes(deps.app, { access: deps.access, store: deps.store, policies, evaluator });

  async function enforcePull(target: PullTarget, policy: TrustPolicy): Promise<void> {
    // Referrers (signatures, attestations, SBOMs) stay readable: clients fetch them to verify;
    // legacy `.sig`/`.att` manifests have no subject and are recognised by their layers. None
    // of them may carry a layer a runtime would deploy (deployable.ts).
    const exemptShape = target.subject !== null || isSignatureArtifact(target);
    // A plain image's pull asks only the (cached) verdict; its bytes are read and parsed only
    // when it looks like verification material or is about to be refused.
    const onlyDocuments = (): boolean => {
      const m = deps.store.manifestByDigest(target.repository, target.digest);
      return m !== undefined && !carriesDeployableLayers(m.payload) && (exemptShape || isSignatureManifest(m.payload));
    };
    if (exemptShape && onlyDocuments()) return;
    const verdict = await evaluator.explain(target.repository, target.digest, policy);
    if (verdict.trusted || (!exemptShape && onlyDocuments())) return;
    const label = `trust policy of namespace ${policy.namespace} (version ${policy.version}, mode ${policy.mode}, enforceOnPull)`;
    if (policy.mode === 'warn') {
      deps.log.warn({ repository: target.repository, digest: target.digest, decision: verdict.decision }, `pull of ${verdict.decision} content allowed by the ${label}`);
      return;
    }
    throw ociError('DENIED', `${target.repository}@${target.digest} is ${verdict.decision}${verdict.quarantined ? ' (quarantined: signed only by a revoked key)' : ''}; pull refused by the ${label}`, {
      detail: { repository: target.repository, digest: target.digest, decision: verdict.decision, quarantined: verdict.quarantined, policy: verdict.policy },
    });
  }

  deps.governance.add({
    name: 'trust',
    // Any change in a repository may add or remove a signature, its payload blob or a signed
    // parent index: its cached verdicts are recomputed on the next question.
    afterPush: (push) => evaluator.invalidate(push.repository),
    guardDelete: (target) => evaluator.invalidate(target.repository),
    // On every manifest pull: the policy comes from memory, and only an enforcing policy awaits.
    checkPull: (target) => {
      const policy = policies.get(namespaceOf(target.repository));
      if (policy.mode === 'off' || !policy.enforceOnPull) return;
      return enforcePull(target, policy);
    },
  });

  return {
    evaluate: async (repository, digest) => {
      const e = await evaluator.explain(repository, digest);
      return { trusted: e.trusted, decision: e.decision, policy: { namespace: e.policy.namespace, mode: e.policy.mode, version: e.policy.version } };
    },
    explain: (repository, digest) => evaluator.explain(repository, digest),
  };
}
