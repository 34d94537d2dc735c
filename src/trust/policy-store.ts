/** SQL for trust policies: read by version, write with its event in one transaction. */
import { eq, sql } from 'drizzle-orm';
import { ociError } from '../errors/catalogue.js';
import { changeCounter, type Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';
import { defaultPolicy, type PutPolicyBody, type TrustPolicy, type TrustPolicyDocument } from './policy.js';
import { trustPolicies } from './schema.js';

/** What the event log records about a policy: key ids and fingerprints, never whole PEMs. */
function summary(p: TrustPolicyDocument & { version: number }): Record<string, unknown> {
  return {
    version: p.version,
    mode: p.mode,
    enforceOnPull: p.enforceOnPull,
    keys: p.keys.map((k) => k.id),
    revokedKeys: p.revokedKeys.map((k) => k.id),
    identities: p.identities,
    trustedRoot: p.trustedRoot !== undefined,
  };
}

/** How stale a policy written by another process may be here (see TrustPolicyStore.current). */
const DATA_VERSION_MS = 1000;

export class TrustPolicyStore {
  private readonly qVersion;
  private readonly qDataVersion;
  /** Parsed documents by namespace, valid while the stored version is unchanged. */
  private readonly parsed = new Map<string, TrustPolicy>();
  /**
   * Every manifest pull asks for its namespace's policy, so answers are kept (defaults too).
   * This store's own writes drop their namespace at once. A commit by another connection (a
   * second registry process on the same database) changes PRAGMA data_version, which drops them
   * all; asking SQLite that costs as much as the lookup itself (a read transaction), so it is
   * asked at most every DATA_VERSION_MS: another process's policy change applies here within that.
   */
  private readonly current = new Map<string, TrustPolicy>();
  private dataVersion = -1;
  private dataVersionAt = -Infinity;

  constructor(private readonly db: Db) {
    this.qVersion = db.select({ version: trustPolicies.version }).from(trustPolicies).where(eq(trustPolicies.namespace, sql.placeholder('ns'))).prepare();
    this.qDataVersion = changeCounter(db);
  }

  /** The current policy: from memory unless someone wrote to the database since it was read. */
  get(namespace: string): TrustPolicy {
    const now = performance.now();
    if (now - this.dataVersionAt >= DATA_VERSION_MS) {
      this.dataVersionAt = now;
      const version = this.qDataVersion();
      if (version !== this.dataVersion) {
        this.current.clear();
        this.dataVersion = version;
      }
    }
    const known = this.current.get(namespace);
    if (known) return known;
    const policy = this.read(namespace);
    // Inside a transaction the answer may include writes that roll back: not kept.
    if (!this.db.$client.inTransaction) {
      if (this.current.size >= 10_000) this.current.clear();
      this.current.set(namespace, policy);
    }
    return policy;
  }

  /** The stored policy (one indexed lookup; the document is parsed once per version). */
  private read(namespace: string): TrustPolicy {
    const row = this.qVersion.get({ ns: namespace });
    if (!row) return defaultPolicy(namespace);
    const cached = this.parsed.get(namespace);
    if (cached?.version === row.version) return cached;
    const full = this.db.select().from(trustPolicies).where(eq(trustPolicies.namespace, namespace)).get();
    if (!full) return defaultPolicy(namespace);
    const policy: TrustPolicy = { ...(JSON.parse(full.document) as TrustPolicyDocument), namespace, version: full.version };
    this.parsed.set(namespace, policy);
    return policy;
  }

  /**
   * Replaces the policy (the body is the whole desired state). Revoked keys stay on record as
   * revoked unless the body names them again, which re-trusts them explicitly (an event).
   */
  put(namespace: string, body: PutPolicyBody, actor: string): TrustPolicy {
    return this.writing(namespace, () => this.db.transaction((tx) => {
      const before = this.get(namespace);
      const doc: TrustPolicyDocument = {
        mode: body.mode,
        enforceOnPull: body.enforceOnPull,
        keys: body.keys.map((k) => ({ id: k.id, publicKey: k.publicKey })),
        revokedKeys: before.revokedKeys.filter((r) => !body.keys.some((k) => k.id === r.id || k.publicKey.trim() === r.publicKey.trim())),
        identities: body.identities.map((i) => ({ issuer: i.issuer, ...(i.subject !== undefined ? { subject: i.subject } : {}), ...(i.subjectPattern !== undefined ? { subjectPattern: i.subjectPattern } : {}) })),
        ...(body.trustedRoot !== undefined ? { trustedRoot: body.trustedRoot } : {}),
      };
      const version = before.version + 1;
      this.write(tx, namespace, version, doc);
      // The whole document (public keys only, nothing secret) so a rebuild reproduces the policy.
      appendEvent(tx, { actor, action: 'trust.policy.set', repository: namespace, before: before.version === 0 ? undefined : summary(before), after: { ...summary({ ...doc, version }), document: doc } });
      return { ...doc, namespace, version };
    }));
  }

  /** Moves key `id` to the revoked list and bumps the version. Unknown key: NOT_FOUND. */
  revokeKey(namespace: string, id: string, actor: string, reason: string | null): TrustPolicy {
    return this.writing(namespace, () => this.db.transaction((tx) => {
      const before = this.get(namespace);
      const key = before.keys.find((k) => k.id === id);
      if (!key) throw ociError('NOT_FOUND', `no key ${id} in the trust policy of ${namespace}`, { detail: { keyId: id } });
      const doc: TrustPolicyDocument = {
        mode: before.mode,
        enforceOnPull: before.enforceOnPull,
        keys: before.keys.filter((k) => k.id !== id),
        revokedKeys: [...before.revokedKeys, { ...key, revokedAt: Date.now(), revokedBy: actor }],
        identities: before.identities,
        ...(before.trustedRoot !== undefined ? { trustedRoot: before.trustedRoot } : {}),
      };
      const version = before.version + 1;
      this.write(tx, namespace, version, doc);
      appendEvent(tx, { actor, action: 'trust.key.revoke', repository: namespace, before: summary(before), after: { ...summary({ ...doc, version }), revokedKey: id, document: doc }, reason });
      return { ...doc, namespace, version };
    }));
  }

  /** Runs a write of `namespace`'s policy; its remembered answer is dropped whether it commits or rolls back. */
  private writing<T>(namespace: string, write: () => T): T {
    try {
      return write();
    } finally {
      this.current.delete(namespace);
    }
  }

  private write(tx: Pick<Db, 'insert'>, namespace: string, version: number, doc: TrustPolicyDocument): void {
    const document = JSON.stringify(doc);
    tx.insert(trustPolicies)
      .values({ namespace, version, document })
      .onConflictDoUpdate({ target: trustPolicies.namespace, set: { version, document, updatedAt: Date.now() } })
      .run();
    this.parsed.delete(namespace);
    this.current.delete(namespace);
  }
}
