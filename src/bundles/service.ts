/**
 * Bundle operations that read content or ask other modules: publishing (config and gate
 * receipts from the blob store), activation checks (feature groups, trust, families). The SQL
 * and the state machine live in BundleStore; routes only parse, authorise and call these.
 */
import { and, eq } from 'drizzle-orm';
import semver from 'semver';
import { parseManifest } from '../core/manifest.js';
import type { BlobDriver } from '../data/driver.js';
import { AppError, ociError } from '../errors/catalogue.js';
import type { Families, Trust } from '../governance/contracts.js';
import { readJsonBlob } from '../governance/content.js';
import type { Tx } from '../governance/hooks.js';
import type { Db } from '../meta/db.js';
import type { RegistryStore } from '../meta/registry-store.js';
import { manifests, repositories } from '../meta/schema.js';
import { namespaceOf } from '../auth/permissions.js';
import {
  BUNDLE_CONFIG_TYPE,
  BUNDLE_TYPES,
  bundleConfigSchema,
  GATE_RECEIPT_LAYER_TYPE,
  GATE_RECEIPT_TYPE,
  gateReceiptSchema,
  issuesOf,
  type BundleConfig,
  scopeOfKey,
  type ScopeKey,
} from './format.js';
import { assertActivatable, RetryableConflict, type ActivationResult, type BundleRow, type BundleStore, type ReceiptRef, type RegisterResult } from './store.js';

/** At most this many gate receipts of one bundle are read at publish time. */
const MAX_RECEIPTS = 200;

export interface BundleServiceDeps {
  db: Db;
  store: BundleStore;
  registry: RegistryStore;
  driver: BlobDriver;
  families: Families;
  trust: Trust;
}

export class BundleService {
  private readonly qPushSeq;

  constructor(private readonly d: BundleServiceDeps) {
    // Push order of a manifest = the sequence of its latest push event (the log is the truth).
    this.qPushSeq = d.db.$client.prepare("SELECT seq FROM events WHERE repository = ? AND digest = ? AND action = 'oci.manifest.push' ORDER BY seq DESC LIMIT 1").pluck();
  }

  /** Validates the manifest, its config and its gate receipts, then registers it. */
  async publish(repository: string, digest: string, actor: string): Promise<RegisterResult> {
    const m = this.d.registry.manifestByDigest(repository, digest);
    if (!m) throw ociError('UNKNOWN_BUNDLE', `no manifest ${digest} in ${repository}`, { detail: { repository, digest } });
    const parsed = parseManifest(m.payload, m.mediaType);
    const config = parsed.kind === 'image' ? parsed.blobs[0] : undefined;
    const kind = (Object.keys(BUNDLE_TYPES) as (keyof typeof BUNDLE_TYPES)[]).find((k) => BUNDLE_TYPES[k] === parsed.artifactType);
    if (!kind || !config || config.mediaType !== BUNDLE_CONFIG_TYPE) {
      throw ociError('INVALID_PAYLOAD', `not a bundle: artifactType must be ${BUNDLE_TYPES.model} or ${BUNDLE_TYPES.policy} and the config ${BUNDLE_CONFIG_TYPE}`, {
        detail: { artifactType: parsed.artifactType, configMediaType: config?.mediaType ?? null },
      });
    }
    if (this.d.families.isGoverned(namespaceOf(repository)) && !this.d.families.artifactTypeFor(parsed.artifactType!)) {
      throw ociError('INVALID_PAYLOAD', `artifact type ${parsed.artifactType} has no active artifact-type entry in the governed namespace ${namespaceOf(repository)}`);
    }
    const bundleConfig = await this.readConfig(config.digest);
    if (bundleConfig.kind !== kind) {
      throw ociError('INVALID_PAYLOAD', `config kind ${bundleConfig.kind} does not match artifactType ${parsed.artifactType}`, { detail: [{ path: '$.kind', message: `must be ${kind}` }] });
    }
    // Idempotency first: a duplicate was gated when it was registered; a conflict never will be.
    const existing = this.d.store.byIdentity(bundleConfig.bundle_id, bundleConfig.bundle_version);
    if (existing) return { status: existing.digest === digest ? 'DUPLICATE' : 'CONFLICT', bundle: existing };
    const receipts = await this.gate(repository, digest);
    // A delete that committed while the gate was being read must not leave a bundle without its
    // manifest or receipts; from the registration on, the delete guard protects them.
    const verify = (tx: Tx): void => {
      const gone = [digest, ...receipts.map((r) => r.digest)].filter((d) => !this.manifestExists(tx, repository, d));
      if (gone.length) throw new RetryableConflict('CONFLICT', `${repository}@${gone[0]} was deleted while the bundle was being published`, { detail: { deleted: gone } });
    };
    return this.d.store.register({ config: bundleConfig, kind, repository, digest, artifactType: parsed.artifactType!, receipts }, actor, verify);
  }

  private manifestExists(tx: Tx, repository: string, digest: string): boolean {
    return (
      tx
        .select({ d: manifests.digest })
        .from(manifests)
        .innerJoin(repositories, eq(repositories.id, manifests.repositoryId))
        .where(and(eq(repositories.name, repository), eq(manifests.digest, digest)))
        .get() !== undefined
    );
  }

  private async readConfig(digest: string): Promise<BundleConfig> {
    const doc = await readJsonBlob(this.d.driver, digest, 256 * 1024).catch((err: unknown) => {
      if (err instanceof AppError) throw ociError('INVALID_PAYLOAD', `bundle config ${digest} is unreadable: ${err.message}`);
      throw err;
    });
    if (doc === null) throw ociError('INVALID_PAYLOAD', 'bundle config is not JSON', { detail: [{ path: '$', message: 'not JSON' }] });
    const r = bundleConfigSchema.safeParse(doc);
    if (!r.success) {
      const detail = issuesOf(r.error);
      throw ociError('INVALID_PAYLOAD', `invalid bundle config: ${detail.map((d) => `${d.path}: ${d.message}`).join('; ')}`, { detail });
    }
    return r.data;
  }

  /**
   * The gate: receipts are referrers of exactly this digest in this repository. For each gate
   * the latest receipt by push order (event sequence) counts, so FAIL then PASS passes and PASS
   * then FAIL fails; publishing needs at least one gate and every gate's latest to be PASS. A
   * malformed receipt counts as a failure of the gate it names (or of `unknown`).
   */
  private async gate(repository: string, digest: string): Promise<ReceiptRef[]> {
    const repoId = this.d.registry.repositoryId(repository)!;
    const refs = this.d.registry.referrers(repoId, digest, MAX_RECEIPTS, undefined, GATE_RECEIPT_TYPE);
    const ordered = refs.map((r) => ({ digest: r.digest, seq: (this.qPushSeq.get(repository, r.digest) as number | undefined) ?? 0 })).sort((a, b) => a.seq - b.seq);
    const latest = new Map<string, ReceiptRef>();
    for (const r of ordered) {
      const receipt = await this.readReceipt(repository, r.digest);
      latest.set(receipt.gate, receipt);
    }
    const receipts = [...latest.values()];
    const failing = receipts.filter((r) => r.result !== 'PASS');
    if (receipts.length === 0 || failing.length > 0) {
      const message = receipts.length === 0 ? `no gate receipt refers to ${digest}` : `gate ${failing.map((f) => f.gate).join(', ')} did not PASS for ${digest}`;
      throw ociError('GATE_NOT_PASS', message, { detail: { receipts } });
    }
    return receipts;
  }

  private async readReceipt(repository: string, digest: string): Promise<ReceiptRef> {
    const bad = (why: string): ReceiptRef => ({ digest, gate: 'unknown', result: 'FAIL', evaluated_at: '', invalid: why });
    const m = this.d.registry.manifestByDigest(repository, digest);
    if (!m) return bad('receipt manifest missing');
    let parsed;
    try {
      parsed = parseManifest(m.payload, m.mediaType);
    } catch {
      return bad('receipt manifest unparsable');
    }
    const layers = parsed.blobs.slice(1);
    if (layers.length !== 1 || layers[0]!.mediaType !== GATE_RECEIPT_LAYER_TYPE) return bad(`a receipt has exactly one ${GATE_RECEIPT_LAYER_TYPE} layer`);
    const doc = await readJsonBlob(this.d.driver, layers[0]!.digest, 64 * 1024).catch(() => null);
    const r = gateReceiptSchema.safeParse(doc);
    if (!r.success) return bad(`invalid receipt: ${issuesOf(r.error).map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    return { digest, gate: r.data.gate, result: r.data.result, evaluated_at: r.data.evaluated_at };
  }

  // ---- activation ---------------------------------------------------------------------------

  /** Feature groups (fail closed) and the families' promotable flag; runs inside the transaction too. */
  checkCompatible(tx: Pick<Db, 'select'>, b: BundleRow): void {
    const required = (JSON.parse(b.config) as BundleConfig).required_feature_groups;
    const declared = this.d.store.featureGroups(tx);
    const missing: string[] = [];
    const unsatisfied: { group: string; required: string; declared: string }[] = [];
    for (const [group, range] of Object.entries(required)) {
      const have = declared[group];
      if (have === undefined) missing.push(group);
      else if (!semver.satisfies(have, range)) unsatisfied.push({ group, required: range, declared: have });
    }
    if (missing.length || unsatisfied.length) {
      const parts = [...(missing.length ? [`undeclared feature groups: ${missing.join(', ')}`] : []), ...unsatisfied.map((u) => `${u.group} ${u.declared} does not satisfy ${u.required}`)];
      throw ociError('INCOMPATIBLE', `${b.bundleId}@${b.bundleVersion} is incompatible with the platform: ${parts.join('; ')}`, { detail: { missing, unsatisfied } });
    }
    if (this.d.families.isGoverned(namespaceOf(b.repository))) {
      const entry = this.d.families.artifactTypeFor(b.artifactType);
      if (!entry) throw ociError('INVALID_TRANSITION', `artifact type ${b.artifactType} has no active artifact-type entry; bundles of it cannot be activated`);
      if (entry.entry.promotable === false) throw ociError('INVALID_TRANSITION', `artifact type entry ${entry.id} is not promotable`, { detail: { entry: entry.id } });
    }
  }

  /** Under an enforcing policy only a trusted digest may become active; the verdict explains why not. */
  async checkTrusted(b: BundleRow): Promise<void> {
    const verdict = await this.d.trust.evaluate(b.repository, b.digest);
    if (verdict.policy.mode === 'enforce' && !verdict.trusted) {
      throw ociError('UNTRUSTED', `${b.repository}@${b.digest} is ${verdict.decision} under the enforcing trust policy of ${verdict.policy.namespace} (version ${verdict.policy.version})`, { detail: verdict });
    }
  }

  async activate(b: BundleRow, scope: ScopeKey, actor: string, reason: string | null): Promise<ActivationResult> {
    const current = this.d.store.active(scope);
    if (current?.bundle.id === b.id) return { bundle: current.bundle, eventSeq: current.eventSeq, noop: true, replaced: null };
    // Cheap refusals first, then trust (async, may verify signatures), then the transaction
    // re-checks state and compatibility so a concurrent change cannot slip between.
    this.precheck(b);
    await this.checkTrusted(b);
    return this.d.store.activate(b.id, scope, actor, reason, (tx, fresh) => this.checkCompatible(tx, fresh));
  }

  async rollback(scope: ScopeKey, actor: string, reason: string | null): Promise<ActivationResult> {
    const plan = this.d.store.rollbackTarget(scope);
    if ('error' in plan) throw ociError('INVALID_TRANSITION', plan.error, { detail: { scope: scopeOfKey(scope) } });
    this.precheck(plan.target);
    await this.checkTrusted(plan.target);
    return this.d.store.rollback(scope, plan.target.id, actor, reason, (tx: Tx, fresh) => this.checkCompatible(tx, fresh));
  }

  private precheck(b: BundleRow): void {
    assertActivatable(b);
    this.checkCompatible(this.d.db, b);
  }
}
