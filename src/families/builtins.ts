/**
 * Built-in family entries, seeded on first start with actor `system` and never rewritten
 * afterwards (an operator's later version or status change wins).
 *
 * AUDIT_ACTIONS is the one list of action ids the registry writes to the event log: the event
 * log refuses any other (fail closed), and test/unit/families-actions.test.ts fails when code
 * writes an id missing here. Adding an action = adding one line below.
 */
import type { Family } from '../governance/contracts.js';

export const BUILTIN_OWNER = 'artifact-store';

export const AUDIT_ACTIONS: Record<string, string> = {
  // OCI surface
  'oci.repository.create': 'A repository was created by its first push',
  'oci.blob.push': 'A blob was uploaded and linked to a repository',
  'oci.blob.mount': 'A blob was mounted into a repository from another',
  'oci.blob.delete': 'A blob was unlinked from a repository',
  'oci.manifest.push': 'A manifest was stored',
  'oci.manifest.delete': 'A manifest was deleted with its tags',
  'oci.tag.set': 'A new tag was pointed at a manifest',
  'oci.tag.move': 'An existing tag was moved to another manifest',
  'oci.tag.delete': 'A tag was deleted',
  // Identity
  'identity.access.denied': 'A privileged action was refused',
  'identity.user.create': 'A user was created',
  'identity.user.disable': 'A user was disabled',
  'identity.user.enable': 'A user was enabled',
  'identity.user.password': "A user's password was changed",
  'identity.user.delete': 'A user was deleted (with their API keys and memberships)',
  'identity.org.create': 'An organisation was created',
  'identity.org.delete': 'An organisation was deleted (with its memberships)',
  'identity.member.grant': 'An organisation member was given a role',
  'identity.member.remove': 'An organisation member was removed',
  'identity.key.create': 'An API key was created',
  'identity.key.revoke': 'An API key was revoked',
  'identity.repository.visibility': "A repository's visibility changed",
  // Families and governed namespaces
  'family.entry.create': 'A registry family entry was created (version 1)',
  'family.entry.version': 'A registry family entry got a new version',
  'family.entry.status': "A registry family entry's status changed",
  'family.delegation.set': 'A family was delegated to an organisation, or taken back',
  'namespace.governance.set': 'A namespace was made governed (fail-closed pushes) or ungoverned',
  // Trust
  'trust.policy.set': "A namespace's trust policy was set",
  'trust.key.revoke': 'A trusted key was revoked',
  // Evidence, holds, retention
  'evidence.record': 'Evidence was recorded for an artifact',
  'evidence.hold.create': 'A legal hold was placed',
  'evidence.hold.release': 'A legal hold was released',
  'evidence.scan.report': 'A scan of pushed content was recorded as scan-report evidence',
  // Bundles
  'bundle.publish': 'A bundle was registered',
  'bundle.transition': "A bundle's lifecycle state changed",
  'bundle.activate': 'A bundle was activated for a scope',
  'bundle.rollback': 'A scope was rolled back to its previous bundle',
  'platform.feature-groups.set': 'The platform feature groups were set',
  // Operations
  'gc.run': 'Garbage collection ran',
  'gc.blob.delete': 'Garbage collection deleted an unreferenced blob (its bytes follow the metadata commit)',
  'gc.manifest.delete': 'Garbage collection deleted a manifest (retention, or a referrer whose subject is gone)',
  'gc.tag.delete': 'Garbage collection deleted a tag a retention policy did not keep',
  'namespace.policies.set': "A namespace's tag immutability, retention or quota policy was set",
  'webhook.create': 'A webhook was registered',
  'webhook.delete': 'A webhook was removed',
  'search.star.add': 'A user starred a repository', 'search.star.remove': 'A user removed their star from a repository',
};

/**
 * Dotted lower-case string literals in src/ that are not audit actions (capability kinds, file
 * names): the audit-action coverage test skips them.
 */
export const NOT_AUDIT_ACTIONS = new Set([
  'bundle.transition',
  'family.write',
  'key.create',
  'key.revoke',
  'namespace.manage',
  'org.create',
  'org.read',
  'registry.admin',
  'user.manage',
  'user.password',
  'artifact-store.yaml',
  'metadata.db',
  'token-signing-key.jwk',
  'trusted_root.json',
  'state.size',
  'tx.transaction',
]);

interface ArtifactTypeSeed {
  id: string;
  description: string;
  artifactTypes: string[];
  signatureRequired?: boolean;
  promotable?: boolean;
}

/** Types the registry understands. Referrer types (signatures, evidence, receipts) included so signing works in governed namespaces. */
const ARTIFACT_TYPES: ArtifactTypeSeed[] = [
  { id: 'oci-image', description: 'OCI image', artifactTypes: ['application/vnd.oci.image.config.v1+json'], promotable: true },
  { id: 'oci-image-index', description: 'OCI image index (multi-platform image)', artifactTypes: ['application/vnd.oci.image.index.v1+json'], promotable: true },
  {
    id: 'docker-image',
    description: 'Docker image (schema 2) and manifest list',
    artifactTypes: ['application/vnd.docker.container.image.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'],
    promotable: true,
  },
  { id: 'helm-chart', description: 'Helm chart', artifactTypes: ['application/vnd.cncf.helm.config.v1+json'], promotable: true },
  {
    id: 'cosign-signature',
    description: 'cosign signature (legacy .sig tag form is an OCI image and matches oci-image)',
    artifactTypes: ['application/vnd.dev.cosign.artifact.sig.v1+json', 'application/vnd.dev.cosign.simplesigning.v1+json'],
  },
  { id: 'sigstore-bundle', description: 'Sigstore bundle (v0.1 to v0.3)', artifactTypes: ['application/vnd.dev.sigstore.bundle.v0.3+json'] },
  { id: 'in-toto-attestation', description: 'in-toto attestation (DSSE envelope)', artifactTypes: ['application/vnd.in-toto+json', 'application/vnd.dsse.envelope.v1+json', 'application/vnd.dev.cosign.artifact.att.v1+json'] },
  { id: 'spdx-sbom', description: 'SPDX software bill of materials', artifactTypes: ['application/spdx+json', 'text/spdx', 'application/vnd.spdx+json'] },
  { id: 'cyclonedx-sbom', description: 'CycloneDX software bill of materials', artifactTypes: ['application/vnd.cyclonedx+json', 'application/vnd.cyclonedx+xml', 'application/vnd.cyclonedx'] },
  { id: 'notation-signature', description: 'Notary Project (Notation) signature', artifactTypes: ['application/vnd.cncf.notary.signature'] },
  { id: 'wasm-module', description: 'WebAssembly module', artifactTypes: ['application/vnd.wasm.config.v0+json', 'application/vnd.module.wasm.content.layer.v1+wasm', 'application/wasm'], promotable: true },
  { id: 'modelpack', description: 'CNCF ModelPack model', artifactTypes: ['application/vnd.cncf.model.manifest.v1+json', 'application/vnd.cncf.model.config.v1+json'], promotable: true },
  { id: 'kitops-modelkit', description: 'KitOps ModelKit', artifactTypes: ['application/vnd.kitops.modelkit.config.v1+json', 'application/vnd.kitops.modelkit.manifest.v1+json'], promotable: true },
  {
    id: 'model-bundle',
    description: 'artifact-store model bundle (governed lifecycle, PRODUCT.md §8)',
    artifactTypes: ['application/vnd.artifact-store.model-bundle.v1', 'application/vnd.artifact-store.bundle.config.v1+json'],
    promotable: true,
  },
  { id: 'policy-bundle', description: 'artifact-store policy bundle (governed lifecycle, PRODUCT.md §8)', artifactTypes: ['application/vnd.artifact-store.policy-bundle.v1'], promotable: true },
  { id: 'gate-receipt', description: 'Gate receipt: the PASS/FAIL result of a promotion gate', artifactTypes: ['application/vnd.artifact-store.gate-receipt.v1'] },
  { id: 'evidence', description: 'Evidence attached to an artifact (PRODUCT.md §7)', artifactTypes: ['application/vnd.artifact-store.evidence.v1'] },
];

const EVIDENCE_TYPES: { id: string; description: string; retentionDays: number }[] = [
  { id: 'scan-report', description: 'Vulnerability or malware scan report', retentionDays: 365 },
  { id: 'sbom', description: 'Software bill of materials', retentionDays: 730 },
  { id: 'provenance', description: 'Build provenance (e.g. SLSA)', retentionDays: 730 },
  { id: 'test-report', description: 'Test or evaluation results', retentionDays: 365 },
  { id: 'approval', description: 'A human approval record', retentionDays: 2555 },
];

export interface BuiltinEntry {
  family: Family;
  entry: Record<string, unknown> & { id: string; owner: string };
}

/** Every built-in entry, the owner product first (other entries name it as their owner). */
export function builtinEntries(): BuiltinEntry[] {
  const owner = BUILTIN_OWNER;
  return [
    { family: 'product', entry: { id: owner, owner, description: 'The artifact-store registry itself' } },
    ...ARTIFACT_TYPES.map((t) => ({
      family: 'artifact-type' as const,
      entry: { id: t.id, owner, description: t.description, artifactTypes: t.artifactTypes, signatureRequired: t.signatureRequired ?? false, promotable: t.promotable ?? false },
    })),
    ...EVIDENCE_TYPES.map((t) => ({ family: 'evidence-type' as const, entry: { id: t.id, owner, description: t.description, retentionDays: t.retentionDays } })),
    ...Object.entries(AUDIT_ACTIONS).map(([id, description]) => ({ family: 'audit-action' as const, entry: { id, owner, description } })),
  ];
}
