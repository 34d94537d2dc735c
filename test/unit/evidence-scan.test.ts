/**
 * The background scan queue end to end: a pushed model layer is scanned after the push, the
 * findings come back as a `scan-report` evidence referrer (a real OCI manifest whose layer is
 * the JSON report), pending work survives a stop/start, and a full queue pushes back with 429.
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanJobs } from '../../src/evidence/schema.js';
import { EvidenceStore } from '../../src/evidence/store.js';
import { events } from '../../src/meta/schema.js';
import { expectError, pushBlob, pushImage, sha256 } from '../helpers/http.js';
import { startHarness, type Harness } from './evidence-harness.js';
import { EVIDENCE, json } from './evidence-push.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** `cos\nsystem\n(S'id'\ntR.`: os.system('id') at pickle protocol 0. */
const POISON = Buffer.from("cos\nsystem\n(S'id'\ntR.", 'latin1');
/** A protocol-2 pickle of an OrderedDict: harmless. */
const BENIGN = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from('ccollections\nOrderedDict\n', 'latin1'), Buffer.from([0x29, 0x52, 0x2e])]);

async function pushModel(h: Harness, repo: string, tag: string, file: Buffer, name = 'model.pkl'): Promise<{ digest: string; res: Response }> {
  const config = Buffer.from('{}');
  const configDigest = await pushBlob(h.url, repo, config);
  const layer = await pushBlob(h.url, repo, file);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      artifactType: 'application/vnd.example.model.v1',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/octet-stream', digest: layer, size: file.length, annotations: { 'org.opencontainers.image.title': name } }],
    }),
  );
  const res = await fetch(`${h.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': MANIFEST } });
  return { digest: sha256(bytes), res };
}

async function reportOf(h: Harness, repo: string, subject: string) {
  const job = h.db.select().from(scanJobs).where(eq(scanJobs.digest, subject)).all().find((j) => j.repository === repo);
  expect(job?.error ?? null).toBeNull();
  const idx = await json(await fetch(`${h.url}/v2/${repo}/referrers/${subject}?artifactType=${encodeURIComponent(EVIDENCE)}`));
  const reports = idx.manifests.filter((m: { annotations?: Record<string, string> }) => m.annotations?.['dev.artifact-store.evidence.type'] === 'scan-report');
  expect(reports).toHaveLength(1);
  const manifest = await json(await fetch(`${h.url}/v2/${repo}/manifests/${reports[0].digest}`, { headers: { Accept: MANIFEST } }));
  expect(manifest.subject.digest).toBe(subject);
  const layer = await json(await fetch(`${h.url}/v2/${repo}/blobs/${manifest.layers[0].digest}`));
  return { digest: reports[0].digest as string, manifest, report: layer };
}

describe('scanning', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('a poisoned pickle gets a failing scan-report evidence referrer with the finding, and an event', async () => {
    const repo = 'ml/poisoned';
    const model = await pushModel(h, repo, 'v1', POISON);
    expect(model.res.status).toBe(201);
    await h.evidence.scans.idle();
    const { digest, manifest, report } = await reportOf(h, repo, model.digest);
    expect(manifest.artifactType).toBe(EVIDENCE);
    expect(manifest.annotations['dev.artifact-store.scan.result']).toBe('fail');
    expect(report).toMatchObject({ subject: model.digest, result: 'fail', counts: { critical: 1 } });
    expect(report.blobs[0].findings[0]).toMatchObject({ severity: 'critical', rule: 'dangerous-global' });
    expect(report.blobs[0].findings[0].message).toContain('os.system');
    const ev = h.db.select().from(events).where(eq(events.action, 'evidence.scan.report')).all().find((e) => e.digest === model.digest);
    expect(JSON.parse(ev!.after!)).toMatchObject({ report: digest, result: 'fail' });
    // It is indexed evidence like any other.
    const view = await json(await fetch(`${h.url}/api/v1/evidence?repository=${repo}&digest=${model.digest}`));
    expect(view.evidence).toEqual([expect.objectContaining({ digest, type: 'scan-report', untyped: false, pinsSubject: false })]);
  });

  it("a scan report is retained by its type's retentionDays, but does not pin the (maybe poisoned) model", async () => {
    h.families.setEvidenceType('scan-report', 365);
    const repo = 'ml/pinned';
    const model = await pushModel(h, repo, 'v1', Buffer.concat([POISON, Buffer.from('  ')]));
    await h.evidence.scans.idle();
    const { digest } = await reportOf(h, repo, model.digest);
    const refused = await fetch(`${h.url}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
    expect(refused.status).toBe(403);
    expect((await json(refused)).errors[0].message).toContain('type scan-report');
    expect((await fetch(`${h.url}/v2/${repo}/manifests/${model.digest}`, { method: 'DELETE' })).status).toBe(202);
  });

  it('a benign pickle passes; an ordinary image is not scanned at all', async () => {
    const model = await pushModel(h, 'ml/benign', 'v1', BENIGN, 'weights.pt');
    await h.evidence.scans.idle();
    expect((await reportOf(h, 'ml/benign', model.digest)).report.result).toBe('pass');
    const img = await pushImage(h.url, 'ml/plain', 'v1');
    await h.evidence.scans.idle();
    expect(h.db.select().from(scanJobs).where(eq(scanJobs.digest, img.digest)).all()).toEqual([]);
  });

  it('a text file with a credential gets a secrets finding in its report', async () => {
    const model = await pushModel(h, 'ml/config', 'v1', Buffer.from('REGION=eu\nAWS_KEY=AKIAABCDEFGHIJKLMNOP\n'), 'prod.env');
    await h.evidence.scans.idle();
    const { report } = await reportOf(h, 'ml/config', model.digest);
    expect(report.blobs[0]).toMatchObject({ scanner: 'secrets@1', fileName: 'prod.env' });
    expect(report.blobs[0].findings).toEqual([expect.objectContaining({ rule: 'aws-access-key-id', severity: 'high' })]);
    expect(JSON.stringify(report)).not.toContain('AKIAABCDEFGHIJKLMNOP');
    expect(report.result).toBe('fail');
  });

  it('pending scans survive a stop and run on the next start', async () => {
    h.evidence.scans.stop();
    const model = await pushModel(h, 'ml/later', 'v1', POISON);
    await new Promise((r) => setTimeout(r, 50));
    const job = () => h.db.select().from(scanJobs).where(eq(scanJobs.repository, 'ml/later')).get();
    expect(job()).toMatchObject({ digest: model.digest, state: 'pending' });
    h.evidence.scans.start();
    await h.evidence.scans.idle();
    expect(job()?.state).toBe('done');
    expect((await reportOf(h, 'ml/later', model.digest)).report.result).toBe('fail');
  });
});

describe('scan job claims', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    h.evidence.scans.stop();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('two workers sharing the database never both take a job; a claim past its lease is taken again', () => {
    const a = new EvidenceStore(h.db);
    const b = new EvidenceStore(h.db);
    const id = h.db.transaction((tx) => a.enqueueScan(tx, 'ml/x', `sha256:${'1'.repeat(64)}`));
    const now = Date.now();
    const lease = 15 * 60_000;
    expect(a.nextScan(h.db, 0, now - lease)?.id).toBe(id);
    expect(a.claimScan(h.db, id, now - lease, now)).toBe(true);
    expect(b.claimScan(h.db, id, now - lease, now)).toBe(false);
    expect(b.nextScan(h.db, 0, now - lease)).toBeUndefined();
    expect(a.pendingScans(h.db)).toBe(1); // running jobs count against the queue bound
    // The first worker died: after the lease the job is claimable again, once.
    const later = now + lease + 1;
    expect(b.nextScan(h.db, 0, later - lease)?.id).toBe(id);
    expect(b.claimScan(h.db, id, later - lease, later)).toBe(true);
    expect(a.claimScan(h.db, id, later - lease, later)).toBe(false);
  });
});

describe('scan queue backpressure', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ maxPendingScans: 1 });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('refuses a scannable push with 429 while the queue is full, accepts it once drained', async () => {
    h.evidence.scans.stop();
    expect((await pushModel(h, 'ml/q', 'a', POISON)).res.status).toBe(201);
    const second = await pushModel(h, 'ml/q', 'b', BENIGN);
    expect(second.res.headers.get('Retry-After')).toBe('30');
    await expectError(second.res, 429, 'TOOMANYREQUESTS');
    expect(h.store.manifestByTag('ml/q', 'b')).toBeUndefined();
    // Non-scannable pushes are unaffected.
    await pushImage(h.url, 'ml/q', 'plain');
    h.evidence.scans.start();
    await h.evidence.scans.idle();
    expect((await pushModel(h, 'ml/q', 'b', BENIGN)).res.status).toBe(201);
  });
});
