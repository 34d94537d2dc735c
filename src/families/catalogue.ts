/**
 * The families catalogue: writes entry versions (OCI artifact + rows + event in one
 * transaction), changes statuses, delegations and governed namespaces, and keeps the in-memory
 * views the hot paths read (artifact types by media type, audit-action statuses, governed
 * namespaces, compiled schemas). Another process sharing the database writes too: its changes are
 * picked up within CHANGE_CHECK_MS (changeCounter), this process's own at once.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import type { Logger } from 'pino';
import { ociError } from '../errors/catalogue.js';
import type { BlobDriver } from '../data/driver.js';
import type { EntryStatus, Family, FamilyEntry } from '../governance/contracts.js';
import type { Tx } from '../governance/hooks.js';
import { changeCounter, type Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';
import type { RegistryStore } from '../meta/registry-store.js';
import { pinForUpload, type LinkFence } from '../operations/fence.js';
import { buildArtifact, registryRepository, writeBlob, type EntryArtifact } from './artifact.js';
import { AUDIT_ACTIONS, builtinEntries } from './builtins.js';
import { compileSchema, entrySchema, MAX_ENTRY_BYTES, type EntryDoc } from './entries.js';
import { FamilyStore, type StoredEntry } from './store.js';

export interface CompiledSchemas {
  annotations?: ValidateFunction;
  config?: ValidateFunction;
}

interface PendingWrite {
  family: Family;
  doc: EntryDoc;
  version: number;
  art: EntryArtifact;
}

/** Audit actions of this module: never disabled, or no entry could be re-activated. */
const SELF_ACTIONS = new Set(['family.entry.create', 'family.entry.version', 'family.entry.status', 'identity.access.denied']);

/** How often the hot paths ask whether another process wrote (one cheap query at most per interval). */
const CHANGE_CHECK_MS = 1000;
/** Seeding tries this often, backing off from SEED_BACKOFF_MS to 16× it (~16 s in all). */
const SEED_ATTEMPTS = 8;
const SEED_BACKOFF_MS = 250;

export class Catalogue {
  readonly store: FamilyStore;
  private artifactTypes: Map<string, StoredEntry[]> | null = null;
  private auditStatuses: Map<string, EntryStatus>;
  private governed: Set<string>;
  private readonly schemas = new Map<string, CompiledSchemas>();
  private builtins: Map<string, StoredEntry> | null = null;
  /** Set once the built-ins are known to be stored: lookups stop consulting builtinViews(). */
  private seeded = false;
  private readonly changes: () => number;
  private changeSeen: number;
  private changeCheckedAt = performance.now();

  constructor(
    private readonly db: Db,
    private readonly registry: RegistryStore,
    private readonly driver: BlobDriver,
    private readonly log: Logger,
  ) {
    this.store = new FamilyStore(db);
    // The counter first: a write landing between it and the reads below is read again later.
    this.changes = changeCounter(db);
    this.changeSeen = this.changes();
    this.governed = this.store.governedNamespaces();
    this.auditStatuses = this.readAuditStatuses();
  }

  private readAuditStatuses(): Map<string, EntryStatus> {
    return new Map(this.store.all('audit-action').map((e) => [e.id, e.status]));
  }

  // ---- reads for the hot paths -----------------------------------------------------------------

  /**
   * Reloads the in-memory views when the database changed since they were read (another process
   * governed a namespace, disabled an audit action, wrote an artifact type). Never inside a
   * transaction (it could read a write that is then rolled back), nor once the database is closed
   * (checkAction keeps answering from memory).
   */
  private fresh(): void {
    const now = performance.now();
    if (now - this.changeCheckedAt < CHANGE_CHECK_MS) return;
    const client = this.db.$client;
    if (!client.open || client.inTransaction) return;
    this.changeCheckedAt = now;
    try {
      const seen = this.changes();
      if (seen === this.changeSeen) return;
      this.changeSeen = seen;
      this.governed = this.store.governedNamespaces();
      this.auditStatuses = this.readAuditStatuses();
      this.artifactTypes = null;
    } catch {
      // Unreachable for a moment (PostgreSQL): the views stay as they are until the next check.
    }
  }

  isGoverned(namespace: string): boolean {
    this.fresh();
    return this.governed.has(namespace);
  }

  /**
   * The built-ins as they will be stored (deterministic encoding: same digest before and after
   * they are written), so synchronous lookups give the same answers while the first-start
   * write is still running. A stored entry of the same id always wins.
   */
  private builtinViews(): Map<string, StoredEntry> {
    if (!this.builtins) {
      this.builtins = new Map();
      for (const b of builtinEntries()) {
        const doc = entrySchema(b.family).parse(b.entry);
        const digest = buildArtifact(b.family, 1, doc).manifest.digest;
        this.builtins.set(`${b.family}/${doc.id}`, { family: b.family, id: doc.id, version: 1, status: 'active', digest, entry: doc, latestVersion: 1, createdAt: new Date(0).toISOString(), repository: registryRepository(b.family) });
      }
    }
    return this.builtins;
  }

  /** Latest version of an entry, or the built-in not written yet. */
  entry(family: Family, id: string): StoredEntry | undefined {
    return this.store.get(family, id) ?? (this.seeded ? undefined : this.builtinViews().get(`${family}/${id}`));
  }

  /** Latest versions of a family, built-ins not written yet included. */
  private allOf(family: Family): StoredEntry[] {
    const stored = this.store.all(family);
    if (this.seeded) return stored;
    const ids = new Set(stored.map((e) => e.id));
    return [...stored, ...[...this.builtinViews().values()].filter((b) => b.family === family && !ids.has(b.id))];
  }

  /** Artifact-type entries (latest versions, any status) listing `type`, non-disabled first. */
  artifactTypeEntries(type: string): StoredEntry[] {
    this.fresh();
    if (!this.artifactTypes) {
      const index = new Map<string, StoredEntry[]>();
      for (const e of this.allOf('artifact-type')) {
        for (const t of (e.entry.artifactTypes as string[] | undefined) ?? []) index.set(t, [...(index.get(t) ?? []), e]);
      }
      for (const list of index.values()) list.sort((a, b) => Number(a.status === 'disabled') - Number(b.status === 'disabled') || (a.id < b.id ? -1 : 1));
      this.artifactTypes = index;
    }
    return this.artifactTypes.get(type) ?? [];
  }

  /**
   * Whether events may name `action`: a built-in or an entry, and not disabled (fail closed).
   * Memory (refreshed after each audit-action write here, within CHANGE_CHECK_MS after one
   * elsewhere): it runs on every event, and must keep answering after the database is closed.
   */
  checkAction(action: string): void {
    this.fresh();
    const status = this.auditStatuses.get(action) ?? (Object.hasOwn(AUDIT_ACTIONS, action) ? 'active' : undefined);
    if (status === undefined) throw ociError('DENIED', `audit action "${action}" is not registered: add an audit-action entry before recording it`, { detail: { action } });
    if (status === 'disabled') throw ociError('DENIED', `audit action "${action}" is disabled`, { detail: { action } });
  }

  /** The compiled schemas of an artifact-type entry version (compiled once, then cached). */
  schemasOf(e: FamilyEntry): CompiledSchemas {
    const key = `${e.id}@${e.version}`;
    let compiled = this.schemas.get(key);
    if (!compiled) {
      compiled = {};
      if (e.entry.annotationsSchema !== undefined) compiled.annotations = compileSchema(e.entry.annotationsSchema, 'annotationsSchema');
      if (e.entry.configSchema !== undefined) compiled.config = compileSchema(e.entry.configSchema, 'configSchema');
      this.schemas.set(key, compiled);
    }
    return compiled;
  }

  private invalidate(family: Family): void {
    if (family === 'artifact-type') this.artifactTypes = null;
    if (family === 'audit-action') this.auditStatuses = this.readAuditStatuses();
  }

  // ---- entry writes ------------------------------------------------------------------------------

  /** Checks what zod cannot: the owner product exists, schemas compile, the encoding fits. */
  private prepare(family: Family, doc: EntryDoc, version: number): PendingWrite {
    if (!(family === 'product' && doc.owner === doc.id)) {
      const owner = this.store.head('product', doc.owner);
      if (!owner) throw ociError('INVALID_PAYLOAD', `owner "${doc.owner}" is not a product entry`, { detail: [{ path: '$.owner', message: 'unknown product' }] });
      if (owner.status === 'disabled') throw ociError('INVALID_PAYLOAD', `owner product "${doc.owner}" is disabled`, { detail: [{ path: '$.owner', message: 'disabled product' }] });
    }
    if (family === 'artifact-type') {
      if (doc.annotationsSchema !== undefined) compileSchema(doc.annotationsSchema, 'annotationsSchema');
      if (doc.configSchema !== undefined) compileSchema(doc.configSchema, 'configSchema');
    }
    let art: EntryArtifact;
    try {
      art = buildArtifact(family, version, doc);
    } catch (err) {
      throw ociError('INVALID_PAYLOAD', `entry cannot be encoded: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (art.layer.length > MAX_ENTRY_BYTES) throw ociError('INVALID_PAYLOAD', `entry is ${art.layer.length} bytes as CBOR; at most ${MAX_ENTRY_BYTES}`, { status: 413 });
    return { family, doc, version, art };
  }

  /**
   * Blobs first (content-addressed, harmless alone), then every manifest, row and event in one
   * transaction. Each digest is pinned before its bytes are written, as uploads do, so online GC
   * cannot delete bytes that already existed between our write and our link (operations/fence.ts).
   */
  private async commit(writes: PendingWrite[], actor: string): Promise<void> {
    const blobs = new Map<string, Buffer>();
    for (const w of writes) blobs.set(w.art.configDigest, w.art.config).set(w.art.layerDigest, w.art.layer);
    const fences = new Map<string, LinkFence>();
    // A few at a time: the built-ins are ~60 small blobs, I/O-bound.
    const queue = [...blobs];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        fences.set(next[0], await pinForUpload(this.db, next[0]));
        await writeBlob(this.driver, next[1], next[0]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
    this.db.transaction(() => {
      for (const w of writes) this.writeVersion(w, actor, fences);
    });
    for (const w of writes) this.invalidate(w.family);
  }

  private writeVersion({ family, doc, version, art }: PendingWrite, actor: string, fences: Map<string, LinkFence>): void {
    const repo = registryRepository(family);
    const entryName = `${family}/${doc.id}`;
    this.registry.putManifest(repo, art.manifest, [doc.id], actor, {
      guard: (tx: Tx) => {
        const latest = this.store.head(family, doc.id, tx)?.latestVersion ?? 0;
        if (version === 1 && latest > 0) throw ociError('CONFLICT', `entry ${entryName} already exists (version ${latest}); PUT a new version instead`, { detail: { family, id: doc.id, version: latest } });
        if (latest !== version - 1) throw ociError('CONFLICT', `version ${version} of ${entryName} was written by a concurrent request (latest is ${latest})`, { detail: { family, id: doc.id, version: latest } });
        // The first link of a digest consumes its pin; later links of it in this transaction need none.
        this.registry.linkBlob(repo, art.configDigest, art.config.length, actor, 'oci.blob.push', undefined, fences.get(art.configDigest));
        this.registry.linkBlob(repo, art.layerDigest, art.layer.length, actor, 'oci.blob.push', undefined, fences.get(art.layerDigest));
      },
      after: (tx: Tx) => {
        this.store.insertVersion(tx, { family, id: doc.id, version, digest: art.manifest.digest, layerDigest: art.layerDigest, entry: doc, actor });
        appendEvent(tx, {
          actor,
          action: version === 1 ? 'family.entry.create' : 'family.entry.version',
          repository: repo,
          digest: art.manifest.digest,
          tag: doc.id,
          before: version === 1 ? undefined : { version: version - 1 },
          // The whole entry: a rebuild from the log needs no blob read.
          after: { family, id: doc.id, version, layerDigest: art.layerDigest, entry: doc },
        });
      },
    });
  }

  async create(family: Family, doc: EntryDoc, actor: string): Promise<StoredEntry> {
    const existing = this.store.head(family, doc.id);
    if (existing) throw ociError('CONFLICT', `entry ${family}/${doc.id} already exists (version ${existing.latestVersion}); PUT a new version instead`, { detail: { family, id: doc.id, version: existing.latestVersion } });
    await this.commit([this.prepare(family, doc, 1)], actor);
    return this.store.get(family, doc.id, 1)!;
  }

  /** A new version of an existing entry; of two concurrent bumps to the same number one gets 409. */
  async putVersion(family: Family, doc: EntryDoc, actor: string): Promise<StoredEntry> {
    const head = this.store.head(family, doc.id);
    if (!head) throw ociError('NOT_FOUND', `no entry ${family}/${doc.id}; POST it first`, { detail: { family, id: doc.id } });
    const version = head.latestVersion + 1;
    await this.commit([this.prepare(family, doc, version)], actor);
    return this.store.get(family, doc.id, version)!;
  }

  setStatus(family: Family, id: string, status: EntryStatus, reason: string, actor: string): StoredEntry {
    if (family === 'audit-action' && status === 'disabled' && SELF_ACTIONS.has(id)) {
      throw ociError('INVALID_PAYLOAD', `audit action ${id} cannot be disabled: the catalogue needs it to record status changes`, { detail: [{ path: '$.status', message: 'not allowed for this entry' }] });
    }
    this.db.transaction((tx) => {
      const head = this.store.head(family, id, tx);
      if (!head) throw ociError('NOT_FOUND', `no entry ${family}/${id}`, { detail: { family, id } });
      if (head.status === status) return;
      this.store.setStatus(tx, family, id, status);
      appendEvent(tx, { actor, action: 'family.entry.status', repository: registryRepository(family), tag: id, before: { status: head.status }, after: { family, id, status }, reason });
    });
    this.invalidate(family);
    return this.store.get(family, id)!;
  }

  setDelegation(family: Family, org: string | null, actor: string): void {
    this.db.transaction((tx) => {
      const before = this.store.delegation(family);
      if (before === org) return;
      this.store.setDelegation(tx, family, org);
      appendEvent(tx, { actor, action: 'family.delegation.set', repository: registryRepository(family), before: { family, org: before }, after: { family, org } });
    });
  }

  setGoverned(namespace: string, governed: boolean, actor: string): void {
    this.db.transaction((tx) => {
      const before = this.store.setGoverned(tx, namespace, governed);
      if (before !== governed) appendEvent(tx, { actor, action: 'namespace.governance.set', before: { namespace, governed: before }, after: { namespace, governed } });
    });
    if (governed) this.governed.add(namespace);
    else this.governed.delete(namespace);
  }

  // ---- built-ins ---------------------------------------------------------------------------------

  private markSeeded(): void {
    this.seeded = true;
    this.builtins = null;
    this.artifactTypes = null;
  }

  /** Writes the built-in entries that are absent (first start, or a release that adds some); never touches present ones. */
  async seed(): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const missing = builtinEntries().filter((b) => !this.store.head(b.family, b.entry.id));
      if (missing.length === 0) {
        this.markSeeded();
        return 0;
      }
      try {
        // Products first in the list, but prepare() checks owners against the DB: seed owners in their own step.
        const owners = missing.filter((b) => b.family === 'product');
        if (owners.length > 0) await this.commit(owners.map((b) => this.prepare(b.family, entrySchema(b.family).parse(b.entry), 1)), 'system');
        const rest = missing.filter((b) => b.family !== 'product');
        await this.commit(rest.map((b) => this.prepare(b.family, entrySchema(b.family).parse(b.entry), 1)), 'system');
        this.log.info({ entries: missing.length }, 'families: built-in entries written');
        this.markSeeded();
        return missing.length;
      } catch (err) {
        // Another process sharing the database seeded at the same time: look again. With three
        // replicas starting together a process can lose twice (its retry races the third one).
        if (attempt < 4 && (err as { code?: string }).code === 'CONFLICT') continue;
        // Storage or database trouble at start-up (an S3 hiccup, a busy database) is usually
        // gone a moment later: retried with backoff rather than left until the next start.
        if (attempt >= SEED_ATTEMPTS - 1 || !this.db.$client.open) throw err;
        this.log.warn({ err, attempt: attempt + 1 }, 'families: writing the built-in entries failed; retrying');
        await new Promise((r) => setTimeout(r, SEED_BACKOFF_MS * 2 ** Math.min(attempt, 4)));
      }
    }
  }
}
