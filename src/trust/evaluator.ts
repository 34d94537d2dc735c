/**
 * "Is repository@digest trusted, and why?": discovery + verification + decision, cached.
 *
 * Two caches keep enforced pulls at the cost of a lookup:
 * - per signature layer, keyed by (namespace, policy version, subject digest, signature
 *   manifest digest, layer): content-addressed, so only a policy change invalidates it;
 * - per decision, keyed by (repository, digest) and checked against the policy version and the
 *   repository's generation, which every manifest push or delete there bumps (a new or removed
 *   signature, a new parent index), and against the database's change counter, read at most
 *   once per CHANGE_CHECK_MS: another process's push or delete drops the decisions within that.
 */
import { readFileSync } from 'node:fs';
import { and, eq } from 'drizzle-orm';
import type { TrustedRoot } from '@sigstore/protobuf-specs';
import type { TrustVerdict } from '../governance/contracts.js';
import { readSmallBlob } from '../governance/content.js';
import type { BlobDriver } from '../data/driver.js';
import { changeCounter, type Db } from '../meta/db.js';
import type { RegistryStore } from '../meta/registry-store.js';
import { manifestReferences } from '../meta/schema.js';
import { namespaceOf } from '../auth/permissions.js';
import { discover, type Candidate, type SignatureKind } from './discovery.js';
import { checkTrustedRoot, parsePublicKey, type TrustPolicy } from './policy.js';
import type { TrustPolicyStore } from './policy-store.js';
import { verifyLayer, type TrustMaterial, type VerifyOutcome } from './verify.js';

/** Signature layers are small JSON documents; anything bigger is not a signature we read. */
const MAX_SIGNATURE_BLOB = 1024 * 1024;
const MAX_CACHE_ENTRIES = 50_000;
const MAX_PARENT_INDEXES = 8;
/** How often a decision asks whether another process wrote (as TrustPolicyStore does). */
const CHANGE_CHECK_MS = 1000;

export interface SignatureReport {
  kind: SignatureKind;
  /** The signature (or attestation) manifest's digest. */
  digest: string;
  layer: number;
  verified: boolean;
  keyId?: string;
  identity?: { issuer: string; subject: string };
  predicateType?: string;
  reason: string;
}

export interface TrustExplanation extends TrustVerdict {
  repository: string;
  digest: string;
  policy: TrustVerdict['policy'] & { enforceOnPull: boolean };
  signatures: SignatureReport[];
  attestations: SignatureReport[];
  /** Untrusted because the only verifying signatures were made with revoked keys. */
  quarantined: boolean;
  /** Trusted through a signed image index that lists this manifest. */
  inheritedFrom?: string;
  /** More signatures exist than one decision examines; the note says what was skipped. */
  truncated: boolean;
  note?: string;
}

/** A Map that forgets everything when it grows past its bound (simple, and never unbounded). */
class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    return this.map.get(k);
  }
  set(k: string, v: V): void {
    if (this.map.size >= this.max) this.map.clear();
    this.map.set(k, v);
  }
}

export class TrustEvaluator {
  private readonly generations = new Map<string, number>();
  private readonly layerCache = new BoundedCache<VerifyOutcome>(MAX_CACHE_ENTRIES);
  private readonly decisionCache = new BoundedCache<{ version: number; generation: number; epoch: number; explanation: TrustExplanation }>(MAX_CACHE_ENTRIES);
  private readonly materials = new BoundedCache<{ version: number; material: TrustMaterial }>(1000);
  private configRoot: TrustedRoot | { error: string } | undefined;
  private readonly changes: () => number;
  private changeSeen = -1;
  private changeCheckedAt = -Infinity;
  /** Bumped when the database changed since the last look (any process's write). */
  private epoch = 0;

  constructor(
    private readonly db: Db,
    private readonly store: RegistryStore,
    private readonly driver: BlobDriver,
    private readonly policies: TrustPolicyStore,
    private readonly trustedRootPath: string | undefined,
  ) {
    this.changes = changeCounter(db);
  }

  private currentEpoch(): number {
    const now = performance.now();
    if (now - this.changeCheckedAt >= CHANGE_CHECK_MS) {
      this.changeCheckedAt = now;
      const seen = this.changes();
      if (seen !== this.changeSeen) {
        this.changeSeen = seen;
        this.epoch++;
      }
    }
    return this.epoch;
  }

  /** Called on every manifest push/delete in `repository`: its cached decisions are stale. */
  invalidate(repository: string): void {
    this.generations.set(repository, (this.generations.get(repository) ?? 0) + 1);
  }

  async explain(repository: string, digest: string, current?: TrustPolicy): Promise<TrustExplanation> {
    const policy = current ?? this.policies.get(namespaceOf(repository));
    const generation = this.generations.get(repository) ?? 0;
    const epoch = this.currentEpoch();
    const key = `${repository}\n${digest}`;
    const hit = this.decisionCache.get(key);
    if (hit && hit.version === policy.version && hit.generation === generation && hit.epoch === epoch) return hit.explanation;
    let explanation = await this.explainDirect(repository, digest, policy);
    if (!explanation.trusted) {
      for (const parent of this.parentIndexes(repository, digest)) {
        const p = await this.explainDirect(repository, parent, policy);
        if (p.trusted) {
          explanation = { ...explanation, trusted: true, decision: 'trusted', inheritedFrom: parent, quarantined: false };
          break;
        }
      }
    }
    // Cache only if nothing changed while we awaited blob reads.
    if ((this.generations.get(repository) ?? 0) === generation && this.epoch === epoch) this.decisionCache.set(key, { version: policy.version, generation, epoch, explanation });
    return explanation;
  }

  private parentIndexes(repository: string, digest: string): string[] {
    const repoId = this.store.repositoryId(repository);
    if (repoId === undefined) return [];
    return this.db
      .select({ parent: manifestReferences.manifestDigest })
      .from(manifestReferences)
      .where(and(eq(manifestReferences.repositoryId, repoId), eq(manifestReferences.targetDigest, digest), eq(manifestReferences.kind, 'manifest')))
      .limit(MAX_PARENT_INDEXES)
      .all()
      .map((r) => r.parent);
  }

  private async explainDirect(repository: string, digest: string, policy: TrustPolicy): Promise<TrustExplanation> {
    const material = this.material(policy);
    const { candidates, truncated } = discover(this.store, repository, digest);
    const signatures: SignatureReport[] = [];
    const attestations: SignatureReport[] = [];
    let revokedSigner = false;
    for (const c of candidates) {
      const outcome = await this.verifyCandidate(c, digest, policy, material);
      const report: SignatureReport = {
        kind: c.kind,
        digest: c.manifestDigest,
        layer: c.layer,
        verified: outcome.verified,
        ...(outcome.keyId !== undefined ? { keyId: outcome.keyId } : {}),
        ...(outcome.identity ? { identity: outcome.identity } : {}),
        ...(outcome.predicateType ? { predicateType: outcome.predicateType } : {}),
        reason: outcome.reason,
      };
      (outcome.category === 'signature' ? signatures : attestations).push(report);
      if (outcome.category === 'signature' && outcome.revokedKeyId !== undefined) revokedSigner = true;
    }
    // Only signatures decide trust; attestations are reported (cosign's sign/v1 bundles are signatures).
    const trusted = signatures.some((s) => s.verified);
    const decision = trusted ? 'trusted' : signatures.length === 0 ? 'unsigned' : 'untrusted';
    const quarantined = !trusted && revokedSigner;
    return {
      repository,
      digest,
      trusted,
      decision,
      policy: { namespace: policy.namespace, mode: policy.mode, version: policy.version, enforceOnPull: policy.enforceOnPull },
      signatures,
      attestations,
      quarantined,
      truncated,
      ...(truncated ? { note: `only the first signatures were examined (at most 256 referrers and 128 signature layers per decision)` } : {}),
    };
  }

  private async verifyCandidate(c: Candidate, subject: string, policy: TrustPolicy, material: TrustMaterial): Promise<VerifyOutcome> {
    const key = `${policy.namespace}\n${policy.version}\n${subject}\n${c.manifestDigest}\n${c.layer}`;
    const hit = this.layerCache.get(key);
    if (hit) return hit;
    let bytes: Buffer;
    try {
      bytes = await readSmallBlob(this.driver, c.blobDigest, MAX_SIGNATURE_BLOB);
    } catch (e) {
      // Not cached: a missing blob may be pushed later.
      return { category: c.fallbackCategory, verified: false, reason: `signature blob ${c.blobDigest.slice(0, 80)} is unreadable: ${(e as Error).message}` };
    }
    const outcome = verifyLayer(c.format, bytes, c.annotations, subject, material, c.fallbackCategory);
    this.layerCache.set(key, outcome);
    return outcome;
  }

  private material(policy: TrustPolicy): TrustMaterial {
    const cached = this.materials.get(policy.namespace);
    if (cached?.version === policy.version) return cached.material;
    const parseKeys = (keys: { id: string; publicKey: string }[]) =>
      keys.flatMap((k) => {
        try {
          return [{ id: k.id, key: parsePublicKey(k.publicKey) }];
        } catch {
          return []; // validated at PUT; a key that stopped parsing simply verifies nothing
        }
      });
    let trustedRoot: TrustMaterial['trustedRoot'];
    if (policy.trustedRoot !== undefined) {
      try {
        trustedRoot = checkTrustedRoot(policy.trustedRoot);
      } catch (e) {
        trustedRoot = { error: `the namespace's trusted root does not parse: ${(e as Error).message}` };
      }
    } else trustedRoot = this.registryRoot();
    const material: TrustMaterial = { keys: parseKeys(policy.keys), revokedKeys: parseKeys(policy.revokedKeys), identities: policy.identities, trustedRoot };
    this.materials.set(policy.namespace, { version: policy.version, material });
    return material;
  }

  /** The registry-wide trusted root (trustedRootPath), read once. */
  private registryRoot(): TrustMaterial['trustedRoot'] {
    if (this.configRoot) return this.configRoot;
    if (!this.trustedRootPath) return (this.configRoot = { error: 'no trusted root is configured (trustedRootPath)' });
    try {
      this.configRoot = checkTrustedRoot(JSON.parse(readFileSync(this.trustedRootPath, 'utf8')) as unknown);
    } catch (e) {
      this.configRoot = { error: `the trusted root at trustedRootPath does not parse: ${(e as Error).message}` };
    }
    return this.configRoot;
  }
}
