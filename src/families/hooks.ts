/**
 * The families module's part in OCI requests:
 * - governed namespaces refuse manifests whose type no active artifact-type entry lists, or
 *   whose annotations/config fail that entry's JSON Schemas (checkPush, before the write);
 * - `_registry/*` is the catalogue's own storage: direct pushes need a registry administrator
 *   (so entries can still be signed with cosign), may never move an entry's tag or carry an
 *   entry artifact type, and entries' tags and manifests cannot be deleted (guardPush/guardDelete).
 */
import { decide } from '../auth/capabilities.js';
import type { Caller } from '../auth/authenticate.js';
import { namespaceOf } from '../auth/permissions.js';
import type { Config } from '../config/index.js';
import type { BlobDriver } from '../data/driver.js';
import { ociError } from '../errors/catalogue.js';
import { readJsonBlob } from '../governance/content.js';
import type { Family } from '../governance/contracts.js';
import type { DeleteTarget, GovernanceHooks, ManifestPush, Tx } from '../governance/hooks.js';
import { REGISTRY_NAMESPACE } from './artifact.js';
import type { Catalogue } from './catalogue.js';
import { isFamily, schemaFailures, type SchemaFailure } from './entries.js';

export function familiesHooks(catalogue: Catalogue, driver: BlobDriver, config: Config): GovernanceHooks {
  const isAdmin = (caller: Caller): boolean => config.auth === 'none' || decide(caller, { kind: 'registry.admin' }, () => false).allowed;
  const familyOf = (repository: string): Family | undefined => {
    const rest = repository.slice(REGISTRY_NAMESPACE.length + 1);
    return isFamily(rest) ? rest : undefined;
  };

  async function checkGoverned(push: ManifestPush): Promise<void> {
    const namespace = namespaceOf(push.repository);
    if (!catalogue.isGoverned(namespace)) return;
    // Built-in types answer even while the first start is still writing them (Catalogue.builtinViews).
    const type = push.parsed.artifactType ?? push.parsed.mediaType;
    const [match] = catalogue.artifactTypeEntries(type);
    if (!match) {
      throw ociError('MANIFEST_INVALID', `artifact type ${type} is not registered: no active artifact-type entry lists it (namespace ${namespace} is governed)`, { detail: { type, namespace } });
    }
    if (match.status === 'disabled') {
      throw ociError('MANIFEST_INVALID', `artifact type ${type} belongs to artifact-type entry ${match.id}, which is disabled (namespace ${namespace} is governed)`, { detail: { type, entry: match.id, namespace } });
    }
    const schemas = catalogue.schemasOf(match);
    const failures: SchemaFailure[] = [];
    const annotations = push.parsed.annotations ?? {};
    if (schemas.annotations && !schemas.annotations(annotations)) failures.push(...schemaFailures('annotations', schemas.annotations.errors, annotations));
    if (schemas.config) {
      const configDescriptor = push.parsed.kind === 'image' ? push.parsed.blobs[0] : undefined;
      const doc = configDescriptor ? await readJsonBlob(driver, configDescriptor.digest) : null;
      if (doc === null) failures.push({ document: 'config', path: '$', message: 'config is not a JSON document' });
      else if (!schemas.config(doc)) failures.push(...schemaFailures('config', schemas.config.errors, doc));
    }
    if (failures.length > 0) {
      const list = failures.map((f) => `${f.document} ${f.path}: ${f.message}`).join('; ');
      throw ociError('MANIFEST_INVALID', `manifest of type ${type} fails the schemas of artifact-type entry ${match.id} (version ${match.version}): ${list}`, { detail: failures });
    }
  }

  function guardRegistryPush(push: ManifestPush, tx: Tx): void {
    if (namespaceOf(push.repository) !== REGISTRY_NAMESPACE) return;
    const via = 'write entries through /api/v1/families';
    if (!isAdmin(push.caller)) throw ociError('DENIED', `${REGISTRY_NAMESPACE}/ holds the registry families: ${via}; direct pushes (signatures) need a registry administrator`);
    if (push.parsed.artifactType?.startsWith('application/vnd.artifact-store.registry.')) throw ociError('DENIED', `family entry artifacts are written only by the catalogue: ${via}`);
    const family = familyOf(push.repository);
    for (const tag of push.tags) {
      if (family && catalogue.store.head(family, tag, tx)) throw ociError('DENIED', `tag ${tag} is the entry ${family}/${tag}: ${via}`, { detail: { family, id: tag } });
    }
  }

  function guardRegistryDelete(target: DeleteTarget, tx: Tx): void {
    if (namespaceOf(target.repository) !== REGISTRY_NAMESPACE) return;
    const family = familyOf(target.repository);
    if (!family) return;
    const refuse = (what: string) => ociError('DENIED', `${what} in ${target.repository} belongs to the registry families and is never deleted (deprecate or disable the entry instead)`);
    if (target.kind === 'repository') throw refuse('the repository');
    if (target.kind === 'tag' && target.tag && catalogue.store.head(family, target.tag, tx)) throw refuse(`tag ${target.tag}`);
    if (target.kind === 'manifest' && target.digest && catalogue.store.isEntryDigest(family, target.digest, tx)) throw refuse(`manifest ${target.digest}`);
  }

  return { name: 'families', checkPush: checkGoverned, guardPush: guardRegistryPush, guardDelete: guardRegistryDelete };
}
