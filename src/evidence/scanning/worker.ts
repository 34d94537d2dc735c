/**
 * The background scan queue. A push whose layers a scanner wants records a `scan_jobs` row in
 * its own transaction (so pending work survives a restart); one worker per process takes jobs
 * in order, streams each wanted blob through the scanners (capped per blob), and pushes the
 * findings back as `scan-report` evidence of the scanned manifest, marking the job done in the
 * same transaction as that push. A full queue refuses new scannable pushes (429) instead of
 * growing without bound.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ociError } from '../../errors/catalogue.js';
import type { Caller } from '../../auth/authenticate.js';
import { parseManifest, type ParsedManifest } from '../../core/manifest.js';
import type { ManifestPush, Tx } from '../../governance/hooks.js';
import type { ModuleDeps } from '../../governance/module.js';
import { appendEvent } from '../../meta/events.js';
import { EVIDENCE_ARTIFACT_TYPE, EVIDENCE_TYPE_ANNOTATION, SCANNER_ACTOR, type ScanQueueHooks } from '../hooks.js';
import type { EvidenceStore, ScanJobRow } from '../store.js';
import { capped } from './byte-reader.js';
import { PickleScanner } from './pickle.js';
import { SecretsScanner } from './secrets.js';
import { SEVERITY_ORDER, type Finding, type ScanBlob, type Scanner, type Severity } from './scanner.js';

export const SCAN_REPORT_MEDIA_TYPE = 'application/vnd.artifact-store.scan-report.v1+json';
export const SCAN_REPORT_TYPE = 'scan-report';
const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
const TITLE = 'org.opencontainers.image.title';
const MAX_ATTEMPTS = 3;
/** A `running` job untouched for this long belonged to a worker that died: another takes it. */
const CLAIM_LEASE_MS = 15 * 60_000;

export interface ScanOptions {
  scanners: Scanner[];
  /** Pending jobs beyond which scannable pushes are refused with 429. */
  maxPendingScans: number;
  /** Bytes read per blob per scanner. */
  maxScanBytes: number;
  /** false: nothing is queued (pushes are never scanned). */
  scanning: boolean;
}

export interface BlobReport {
  digest: string;
  mediaType: string;
  fileName: string | null;
  size: number;
  scanner: string;
  truncated: boolean;
  findings: Finding[];
}

export type ScanResult = 'pass' | 'warn' | 'fail';

export function resultOf(findings: Finding[]): ScanResult {
  if (findings.some((f) => f.severity === 'critical' || f.severity === 'high')) return 'fail';
  if (findings.some((f) => f.severity === 'medium' || f.severity === 'low')) return 'warn';
  return 'pass';
}

const caller: Caller = { principal: null, actor: SCANNER_ACTOR, bucket: SCANNER_ACTOR };

export class ScanWorker implements ScanQueueHooks {
  private readonly opts: ScanOptions;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly deps: ModuleDeps,
    private readonly store: EvidenceStore,
    options: Partial<ScanOptions>,
  ) {
    this.opts = {
      scanners: options.scanners ?? [new PickleScanner(), new SecretsScanner()],
      maxPendingScans: options.maxPendingScans ?? 1000,
      maxScanBytes: options.maxScanBytes ?? 512 * 1024 * 1024,
      scanning: options.scanning ?? true,
    };
  }

  private wantedBlobs(parsed: ParsedManifest): { blob: Omit<ScanBlob, 'repository' | 'manifest'>; scanners: Scanner[] }[] {
    if (parsed.kind !== 'image') return [];
    const out = [];
    // blobs[0] is the config: scanners look at layers (files), not at the config document.
    for (const d of parsed.blobs.slice(1)) {
      const blob = { digest: d.digest, mediaType: d.mediaType, size: d.size, fileName: d.annotations?.[TITLE] ?? null };
      const scanners = this.opts.scanners.filter((s) => s.wants(blob));
      if (scanners.length) out.push({ blob, scanners });
    }
    return out;
  }

  wants(push: ManifestPush): boolean {
    return this.opts.scanning && push.parsed.artifactType !== EVIDENCE_ARTIFACT_TYPE && this.wantedBlobs(push.parsed).length > 0;
  }

  admit(tx: Tx): void {
    if (this.store.pendingScans(tx) >= this.opts.maxPendingScans) {
      throw ociError('TOOMANYREQUESTS', `the scan queue is full (${this.opts.maxPendingScans} pending scans); retry later`, { headers: { 'Retry-After': '30' } });
    }
  }

  enqueue(tx: Tx, repository: string, digest: string): void {
    this.store.enqueueScan(tx, repository, digest);
    // After the push transaction has committed.
    setImmediate(() => this.kick());
  }

  /** Resumes jobs left pending by an earlier process (or before stop()). */
  start(): void {
    this.stopped = false;
    setTimeout(() => this.kick(), 0).unref();
  }

  /** No new job starts; pending ones stay in the database for the next start. */
  stop(): void {
    this.stopped = true;
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop()
      .catch((err: unknown) => this.deps.log.warn({ err }, 'scan worker stopped'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves once nothing is running and (unless stopped) nothing is pending; for tests and shutdown. */
  async idle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.running) await this.running;
      else if (this.stopped || this.store.pendingScans(this.deps.db, false) === 0) return;
      else {
        this.kick();
        await new Promise((r) => setTimeout(r, 10));
      }
      if (Date.now() > deadline) throw new Error('scan queue did not drain');
    }
  }

  private async loop(): Promise<void> {
    let after = 0;
    while (!this.stopped) {
      const staleBefore = Date.now() - CLAIM_LEASE_MS;
      const job = this.store.nextScan(this.deps.db, after, staleBefore);
      if (!job) return;
      after = job.id;
      if (!this.store.claimScan(this.deps.db, job.id, staleBefore, Date.now())) continue;
      try {
        await this.run(job);
      } catch (err) {
        const attempts = job.attempts + 1;
        const message = err instanceof Error ? err.message : String(err);
        this.deps.log.warn({ err, repository: job.repository, digest: job.digest, attempts }, 'scan failed');
        this.store.finishScan(this.deps.db, job.id, attempts >= MAX_ATTEMPTS ? 'failed' : 'pending', { attempts, error: message.slice(0, 1000) });
      }
    }
  }

  private async run(job: ScanJobRow): Promise<void> {
    const m = this.deps.store.manifestByDigest(job.repository, job.digest);
    if (!m) {
      this.store.finishScan(this.deps.db, job.id, 'done', { error: 'manifest deleted before it was scanned' });
      return;
    }
    const parsed = parseManifest(m.payload, m.mediaType);
    const reports: BlobReport[] = [];
    for (const { blob, scanners } of this.wantedBlobs(parsed)) {
      for (const scanner of scanners) reports.push(await this.scanBlob({ ...blob, repository: job.repository, manifest: job.digest }, scanner));
    }
    await this.publish(job, m.mediaType, m.size, reports);
  }

  private async scanBlob(blob: ScanBlob, scanner: Scanner): Promise<BlobReport> {
    const base = { digest: blob.digest, mediaType: blob.mediaType, fileName: blob.fileName, size: blob.size, scanner: `${scanner.id}@${scanner.version}` };
    let source;
    try {
      source = await this.deps.driver.read(blob.digest);
    } catch {
      return { ...base, truncated: false, findings: [{ severity: 'medium', rule: 'blob-unreadable', message: 'blob bytes could not be read from storage' }] };
    }
    const limited = capped(source, this.opts.maxScanBytes);
    let findings: Finding[];
    try {
      findings = await scanner.scan(blob, limited.stream, { maxBytes: this.opts.maxScanBytes });
    } catch (err) {
      findings = [{ severity: 'medium', rule: 'scanner-error', message: `scanner failed: ${err instanceof Error ? err.message : String(err)}` }];
    }
    if (limited.truncated()) findings.push({ severity: 'info', rule: 'scan-limit', message: `only the first ${this.opts.maxScanBytes} bytes were scanned` });
    return { ...base, truncated: limited.truncated(), findings };
  }

  /** Writes a blob through the storage driver (content addressed: an existing digest is reused). */
  private async writeBlob(repository: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const id = randomUUID(); // the drivers accept only UUID upload ids
    let state = await this.deps.driver.createUpload(id);
    try {
      state = await this.deps.driver.append(id, state, (async function* () {
        yield bytes;
      })());
      await this.deps.driver.commit(id, state, digest);
    } catch (err) {
      await this.deps.driver.abort(id, state).catch(() => undefined);
      throw err;
    }
    this.deps.store.linkBlob(repository, digest, bytes.length, SCANNER_ACTOR, 'oci.blob.push');
    return { digest, size: bytes.length };
  }

  private async publish(job: ScanJobRow, subjectMediaType: string, subjectSize: number, blobs: BlobReport[]): Promise<void> {
    const all = blobs.flatMap((b) => b.findings);
    const counts = Object.fromEntries(SEVERITY_ORDER.map((s) => [s, all.filter((f) => f.severity === s).length])) as Record<Severity, number>;
    const result = resultOf(all);
    const scannedAt = new Date().toISOString();
    const report = {
      schemaVersion: 1,
      repository: job.repository,
      subject: job.digest,
      scannedAt,
      result,
      counts,
      scanners: [...new Set(blobs.map((b) => b.scanner))],
      blobs,
    };
    const reportBytes = Buffer.from(JSON.stringify(report));
    const layer = await this.writeBlob(job.repository, reportBytes);
    const config = await this.writeBlob(job.repository, EMPTY_CONFIG.bytes);
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: EVIDENCE_ARTIFACT_TYPE,
      config: { mediaType: EMPTY_CONFIG.mediaType, ...config },
      layers: [{ mediaType: SCAN_REPORT_MEDIA_TYPE, ...layer, annotations: { [TITLE]: 'scan-report.json' } }],
      subject: { mediaType: subjectMediaType, digest: job.digest, size: subjectSize },
      annotations: {
        [EVIDENCE_TYPE_ANNOTATION]: SCAN_REPORT_TYPE,
        'dev.artifact-store.scan.result': result,
        'org.opencontainers.image.created': scannedAt,
      },
    };
    const payload = Buffer.from(JSON.stringify(manifest));
    const parsed = parseManifest(payload, manifest.mediaType);
    const digest = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
    const push: ManifestPush = { repository: job.repository, digest, parsed, payload, tags: [], caller, actor: SCANNER_ACTOR };
    const { governance } = this.deps;
    this.deps.store.putManifest(
      job.repository,
      {
        digest,
        mediaType: parsed.mediaType,
        payload,
        size: payload.length,
        artifactType: parsed.artifactType,
        subject: job.digest,
        annotations: parsed.annotations,
        references: [layer.digest, config.digest].map((d) => ({ digest: d, kind: 'blob' as const })),
      },
      [],
      SCANNER_ACTOR,
      {
        guard: (tx) => governance.guardPush(push, tx),
        after: (tx, inserted) => {
          governance.afterPush(push, tx, inserted);
          this.store.finishScan(tx, job.id, 'done', { report: digest, error: null, attempts: job.attempts + 1 });
          appendEvent(tx, { actor: SCANNER_ACTOR, action: 'evidence.scan.report', repository: job.repository, digest: job.digest, after: { report: digest, result, counts } });
        },
      },
    );
  }
}
