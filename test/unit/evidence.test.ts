/**
 * Evidence indexing, retention floors and legal holds over real HTTP, with an in-test Families
 * (evidence types, governed namespaces) and an injected clock for retention expiry.
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { events } from '../../src/meta/schema.js';
import { listEvents } from '../../src/meta/events.js';
import { replayEvidence } from '../../src/evidence/replay.js';
import { evidence as evidenceTable, legalHolds } from '../../src/evidence/schema.js';
import { expectError, pushBlob, pushImage, randomBlob } from '../helpers/http.js';
import { startHarness, type Harness } from './evidence-harness.js';
import { del, EVIDENCE, json, postHold, pushEvidence, putEvidence, TYPE_ANNOTATION } from './evidence-push.js';

const DAY = 86_400_000;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
  h.families.setEvidenceType('sbom', 30);
  h.families.setEvidenceType('instant', 0);
  h.families.setEvidenceType('retired', 10, 'disabled');
});
afterAll(async () => {
  await h.stop();
});

const subjectOf = (img: { digest: string; bytes: Buffer }) => ({ digest: img.digest, size: img.bytes.length });

function pushTime(repo: string, digest: string): number {
  const rows = h.db.select().from(events).where(eq(events.digest, digest)).all();
  const push = rows.find((e) => e.action === 'oci.manifest.push' && e.repository === repo);
  expect(push).toBeDefined();
  return push!.time;
}

describe('retention floor', () => {
  it('blocks deleting the evidence, its subject (by digest and by tag) until retentionDays after the recorded push, then allows it', async () => {
    const repo = 'ret/app';
    const img = await pushImage(h.url, repo, 'v1');
    const ev = await pushEvidence(h.url, repo, subjectOf(img), 'sbom');
    const pushedAt = pushTime(repo, ev.digest);
    const until = new Date(pushedAt + 30 * DAY).toISOString();

    for (const path of [`/v2/${repo}/manifests/${ev.digest}`, `/v2/${repo}/manifests/${img.digest}`, `/v2/${repo}/manifests/v1`]) {
      const res = await del(h.url, path);
      const body = await json(res);
      expect(res.status, path).toBe(403);
      expect(body.errors[0].code).toBe('DENIED');
      expect(body.errors[0].message).toContain(ev.digest);
      expect(body.errors[0].message).toContain(until);
    }
    // The evidence blob is still referenced (409); GC asks protectedReason, which names the retention.
    expect(h.evidence.protectedReason(repo, ev.layer)).toContain(until);
    expect(h.evidence.protectedReason(repo, img.digest)).toContain(ev.digest);
    expect(h.evidence.protectedReason(repo, img.layer)).toBeNull();

    // One millisecond before the floor: still refused; at the floor: allowed.
    h.clock.now = pushedAt + 30 * DAY - 1;
    expect((await del(h.url, `/v2/${repo}/manifests/${ev.digest}`)).status).toBe(403);
    h.clock.now = pushedAt + 30 * DAY;
    try {
      expect(h.evidence.protectedReason(repo, img.digest)).toBeNull();
      expect((await del(h.url, `/v2/${repo}/manifests/v1`)).status).toBe(202);
      const evBytes = Buffer.from(await (await fetch(`${h.url}/v2/${repo}/manifests/${ev.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer());
      expect((await del(h.url, `/v2/${repo}/manifests/${ev.digest}`)).status).toBe(202);
      // Pushed again, the same evidence starts a new retention period from its new push event.
      const again = await fetch(`${h.url}/v2/${repo}/manifests/${ev.digest}`, { method: 'PUT', body: evBytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
      expect(again.status).toBe(201);
      const repushedAt = h.db.select().from(events).where(eq(events.digest, ev.digest)).all().filter((e) => e.action === 'oci.manifest.push').at(-1)!.time;
      const refusedAgain = await del(h.url, `/v2/${repo}/manifests/${img.digest}`);
      expect(refusedAgain.status).toBe(403);
      expect((await json(refusedAgain)).errors[0].message).toContain(new Date(repushedAt + 30 * DAY).toISOString());
      h.clock.now = repushedAt + 30 * DAY;
      expect((await del(h.url, `/v2/${repo}/manifests/${ev.digest}`)).status).toBe(202);
      expect((await del(h.url, `/v2/${repo}/blobs/${ev.layer}`)).status).toBe(202);
      expect((await del(h.url, `/v2/${repo}/manifests/${img.digest}`)).status).toBe(202);
    } finally {
      h.clock.now = null;
    }
  });

  it('a later change to the type can raise retention but never shorten what was promised at push', async () => {
    const repo = 'ret/change';
    h.families.setEvidenceType('audit', 30);
    const img = await pushImage(h.url, repo, 'v1');
    const ev = await pushEvidence(h.url, repo, subjectOf(img), 'audit');
    const pushedAt = pushTime(repo, ev.digest);
    h.families.setEvidenceType('audit', 1);
    h.clock.now = pushedAt + 2 * DAY;
    try {
      expect((await del(h.url, `/v2/${repo}/manifests/${ev.digest}`)).status).toBe(403);
      h.families.setEvidenceType('audit', 60);
      h.clock.now = pushedAt + 45 * DAY;
      const res = await del(h.url, `/v2/${repo}/manifests/${ev.digest}`);
      expect(res.status).toBe(403);
      expect((await json(res)).errors[0].message).toContain(new Date(pushedAt + 60 * DAY).toISOString());
      h.clock.now = pushedAt + 60 * DAY + 1;
      expect((await del(h.url, `/v2/${repo}/manifests/${ev.digest}`)).status).toBe(202);
    } finally {
      h.clock.now = null;
    }
  });

  it('retentionDays 0 and untyped evidence (ungoverned namespace) protect nothing; GET /api/v1/evidence shows type, retention and untyped', async () => {
    const repo = 'ret/zero';
    const img = await pushImage(h.url, repo, 'v1');
    const zero = await pushEvidence(h.url, repo, subjectOf(img), 'instant');
    const untyped = await pushEvidence(h.url, repo, subjectOf(img), 'no-such-type');
    const res = await fetch(`${h.url}/api/v1/evidence?repository=${repo}&digest=${img.digest}`);
    const view = await json(res);
    expect(res.status).toBe(200);
    expect(view.protected).toBeNull();
    const byDigest = Object.fromEntries(view.evidence.map((e: { digest: string }) => [e.digest, e]));
    expect(byDigest[zero.digest]).toMatchObject({ type: 'instant', untyped: false, retentionDays: 0, retained: false });
    expect(byDigest[untyped.digest]).toMatchObject({ type: null, declaredType: 'no-such-type', untyped: true, retained: false });
    expect((await del(h.url, `/v2/${repo}/manifests/${img.digest}`)).status).toBe(202);
    expect((await del(h.url, `/v2/${repo}/manifests/${zero.digest}`)).status).toBe(202);
  });

  it('records an evidence.record event with the retention it promised', async () => {
    const repo = 'ret/event';
    const img = await pushImage(h.url, repo, 'v1');
    const ev = await pushEvidence(h.url, repo, subjectOf(img), 'sbom');
    const rec = h.db.select().from(events).where(eq(events.digest, ev.digest)).all().find((e) => e.action === 'evidence.record');
    expect(JSON.parse(rec!.after!)).toMatchObject({ subject: img.digest, type: 'sbom', retentionDays: 30, retainedUntil: new Date(pushTime(repo, ev.digest) + 30 * DAY).toISOString() });
  });
});

describe('governed namespaces fail closed', () => {
  beforeAll(() => {
    h.families.governed.add('gov');
  });

  it('refuses evidence of an unknown, disabled or missing type with MANIFEST_INVALID naming it; accepts an active type', async () => {
    const repo = 'gov/app';
    const img = await pushImage(h.url, repo, 'v1');
    for (const [type, words] of [
      ['no-such-type', "unknown evidence type 'no-such-type'"],
      ['retired', "evidence type 'retired' is disabled"],
      [undefined, TYPE_ANNOTATION],
    ] as const) {
      const r = await putEvidence(h.url, repo, subjectOf(img), type);
      const body = await json(r.res);
      expect(r.res.status, JSON.stringify(body)).toBe(400);
      expect(body.errors[0].code).toBe('MANIFEST_INVALID');
      expect(body.errors[0].message).toContain(words);
      expect(h.store.manifestByDigest(repo, r.digest)).toBeUndefined();
    }
    await pushEvidence(h.url, repo, subjectOf(img), 'sbom');
    // The built-in scan-report type is known even without an entry.
    await pushEvidence(h.url, repo, subjectOf(img), 'scan-report');
  });

  it('refuses evidence without a subject anywhere', async () => {
    const r = await putEvidence(h.url, 'free/app', null, 'sbom');
    await expectError(r.res, 400, 'MANIFEST_INVALID');
  });
});

describe('referrers', () => {
  it('lists evidence among the subject referrers, filterable by artifactType', async () => {
    const repo = 'ref/app';
    const img = await pushImage(h.url, repo, 'v1');
    const ev = await pushEvidence(h.url, repo, subjectOf(img), 'instant');
    const all = await json(await fetch(`${h.url}/v2/${repo}/referrers/${img.digest}`));
    expect(all.manifests.map((m: { digest: string }) => m.digest)).toContain(ev.digest);
    const res = await fetch(`${h.url}/v2/${repo}/referrers/${img.digest}?artifactType=${encodeURIComponent(EVIDENCE)}`);
    expect(res.headers.get('OCI-Filters-Applied')).toBe('artifactType');
    const filtered = await json(res);
    expect(filtered.manifests).toEqual([expect.objectContaining({ digest: ev.digest, artifactType: EVIDENCE, annotations: { [TYPE_ANNOTATION]: 'instant' } })]);
    const other = await json(await fetch(`${h.url}/v2/${repo}/referrers/${img.digest}?artifactType=application/vnd.example.other`));
    expect(other.manifests).toEqual([]);
  });
});

describe('legal holds', () => {
  it('a repository hold blocks every delete kind, names the hold and reason, and its release unblocks', async () => {
    const repo = 'hold/repo';
    const img = await pushImage(h.url, repo, 'v1');
    const loose = await pushBlob(h.url, repo, randomBlob(64));
    const res = await postHold(h.url, { repository: repo, reason: 'case 2026-17' });
    const hold = await json(res);
    expect(res.status).toBe(201);
    expect(hold).toMatchObject({ id: expect.any(String), repository: repo, digest: null, scope: 'repository', reason: 'case 2026-17', active: true, createdBy: 'anonymous' });

    for (const path of [`/v2/${repo}/manifests/${img.digest}`, `/v2/${repo}/manifests/v1`, `/v2/${repo}/blobs/${loose}`]) {
      const r = await del(h.url, path);
      const body = await json(r);
      expect(r.status, path).toBe(403);
      expect(body.errors[0].code).toBe('DENIED');
      expect(body.errors[0].message).toContain(hold.id);
      expect(body.errors[0].message).toContain('case 2026-17');
    }
    expect(h.evidence.protectedReason(repo, img.layer)).toContain(hold.id);

    const list = await json(await fetch(`${h.url}/api/v1/holds?repository=${repo}`));
    expect(list.holds.map((x: { id: string }) => x.id)).toEqual([hold.id]);

    const rel = await fetch(`${h.url}/api/v1/holds/${hold.id}`, { method: 'DELETE', body: JSON.stringify({ reason: 'case closed' }), headers: { 'Content-Type': 'application/json' } });
    expect(rel.status).toBe(200);
    expect(await json(rel)).toMatchObject({ id: hold.id, active: false, releaseReason: 'case closed', releasedBy: 'anonymous' });
    expect((await json(await fetch(`${h.url}/api/v1/holds?repository=${repo}`))).holds).toEqual([]);
    expect((await json(await fetch(`${h.url}/api/v1/holds?repository=${repo}&includeReleased=true`))).holds).toHaveLength(1);

    expect((await del(h.url, `/v2/${repo}/blobs/${loose}`)).status).toBe(202);
    expect((await del(h.url, `/v2/${repo}/manifests/v1`)).status).toBe(202);
    expect((await del(h.url, `/v2/${repo}/manifests/${img.digest}`)).status).toBe(202);

    const evs = h.db.select().from(events).where(eq(events.repository, repo)).all();
    expect(evs.find((e) => e.action === 'evidence.hold.create')).toMatchObject({ actor: 'anonymous', reason: 'case 2026-17' });
    expect(evs.find((e) => e.action === 'evidence.hold.release')).toMatchObject({ actor: 'anonymous', reason: 'case closed' });
  });

  it('a digest hold covers that manifest, its tags and its blobs, not the rest of the repository', async () => {
    const repo = 'hold/digest';
    const held = await pushImage(h.url, repo, 'held');
    const free = await pushImage(h.url, repo, 'free');
    const hold = await json(await postHold(h.url, { repository: repo, digest: held.digest, reason: 'litigation' }));
    expect(hold.scope).toBe('digest');
    expect((await del(h.url, `/v2/${repo}/manifests/held`)).status).toBe(403);
    expect((await del(h.url, `/v2/${repo}/manifests/${held.digest}`)).status).toBe(403);
    expect(h.evidence.protectedReason(repo, held.layer)).toContain(hold.id);
    expect(h.evidence.protectedReason(repo, free.layer)).toBeNull();
    expect((await del(h.url, `/v2/${repo}/manifests/${free.digest}`)).status).toBe(202);
    // A blob hold: the blob itself.
    const blob = await pushBlob(h.url, repo, randomBlob(32));
    const blobHold = await json(await postHold(h.url, { repository: repo, digest: blob, reason: 'exhibit A' }));
    const r = await del(h.url, `/v2/${repo}/blobs/${blob}`);
    expect(r.status).toBe(403);
    expect((await json(r)).errors[0].message).toContain(blobHold.id);
  });

  it('a hold outlasts expired retention', async () => {
    const repo = 'hold/retained';
    const img = await pushImage(h.url, repo, 'v1');
    const ev = await pushEvidence(h.url, repo, subjectOf(img), 'instant');
    const hold = await json(await postHold(h.url, { repository: repo, digest: ev.digest, reason: 'audit' }));
    const r = await del(h.url, `/v2/${repo}/manifests/${ev.digest}`);
    expect(r.status).toBe(403);
    expect((await json(r)).errors[0].message).toContain(hold.id);
    const view = await json(await fetch(`${h.url}/api/v1/evidence?repository=${repo}&digest=${img.digest}`));
    expect(view.evidence[0].holds.map((x: { id: string }) => x.id)).toEqual([hold.id]);
  });

  it('bad input: unknown repository or content, malformed bodies, unknown or twice-released holds', async () => {
    const repo = 'hold/bad';
    await pushImage(h.url, repo, 'v1');
    await expectError(await postHold(h.url, { repository: 'nobody/here', reason: 'x' }), 404, 'NAME_UNKNOWN');
    await expectError(await postHold(h.url, { repository: repo, digest: `sha256:${'a'.repeat(64)}`, reason: 'x' }), 404, 'MANIFEST_UNKNOWN');
    await expectError(await postHold(h.url, { repository: repo, digest: 'sha256:nothex', reason: 'x' }), 400, 'INVALID_PAYLOAD');
    await expectError(await postHold(h.url, { repository: repo }), 400, 'INVALID_PAYLOAD');
    await expectError(await postHold(h.url, { repository: repo, reason: '   ' }), 400, 'INVALID_PAYLOAD');
    await expectError(await postHold(h.url, { repository: 'Bad//Name', reason: 'x' }), 400, 'INVALID_PAYLOAD');
    await expectError(await fetch(`${h.url}/api/v1/holds`, { method: 'POST', body: '{not json', headers: { 'Content-Type': 'application/json' } }), 400, 'INVALID_PAYLOAD');
    await expectError(await del(h.url, '/api/v1/holds/hold-unknown'), 404, 'NOT_FOUND');
    await expectError(await fetch(`${h.url}/api/v1/holds?repository=nobody/here`), 404, 'NAME_UNKNOWN');
    await expectError(await fetch(`${h.url}/api/v1/evidence?repository=${repo}`), 400, 'INVALID_PAYLOAD');
    const hold = await json(await postHold(h.url, { repository: repo, reason: 'x' }));
    expect((await del(h.url, `/api/v1/holds/${hold.id}`)).status).toBe(200);
    const again = await del(h.url, `/api/v1/holds/${hold.id}`);
    const body = await json(again);
    expect(again.status).toBe(409);
    expect(body.errors[0]).toMatchObject({ code: 'CONFLICT', retryable: false });
    expect(body.errors[0].message).toContain('already released');
    expect(h.db.select().from(events).where(eq(events.action, 'evidence.hold.release')).all().filter((e) => e.repository === repo)).toHaveLength(1);
  });

  it('concurrency: a hold placed while deletes race never lets a held item go', async () => {
    for (let round = 0; round < 5; round++) {
      const repo = `race/r${round}`;
      const imgs = await Promise.all(Array.from({ length: 12 }, (_, i) => pushImage(h.url, repo, `t${i}`)));
      const deletes = imgs.map((img, i) => (i % 2 ? del(h.url, `/v2/${repo}/manifests/${img.digest}`) : del(h.url, `/v2/${repo}/manifests/t${i}`)));
      const holdRes = postHold(h.url, { repository: repo, reason: 'race' });
      const [results, holdResponse] = await Promise.all([Promise.all(deletes), holdRes]);
      const hold = await json(holdResponse);
      expect(holdResponse.status).toBe(201);
      // Every delete either succeeded before the hold's event or was refused naming the hold.
      const log = h.db.select().from(events).where(eq(events.repository, repo)).all();
      const holdSeq = log.find((e) => e.action === 'evidence.hold.create')!.seq;
      for (const e of log) if (e.action === 'oci.manifest.delete' || e.action === 'oci.tag.delete') expect(e.seq).toBeLessThan(holdSeq);
      for (const r of results) {
        if (r.status === 202) continue;
        expect(r.status).toBe(403);
        expect((await json(r)).errors[0].message).toContain(hold.id);
      }
      // And afterwards nothing goes.
      for (const img of imgs) if (h.store.manifestByDigest(repo, img.digest)) expect((await del(h.url, `/v2/${repo}/manifests/${img.digest}`)).status).toBe(403);
    }
  });
});

describe('event log', () => {
  it('the evidence and hold tables are exactly what a replay of the event log derives', () => {
    const all = listEvents(h.db, 0, 1_000_000);
    const replayed = replayEvidence(all);
    const byKey = <T extends { repository: string; digest: string | null }>(rows: T[]) => [...rows].sort((a, b) => `${a.repository}@${a.digest}`.localeCompare(`${b.repository}@${b.digest}`));
    expect(byKey(replayed.evidence)).toEqual(byKey(h.db.select().from(evidenceTable).all()));
    const byId = <T extends { id: string }>(rows: T[]) => [...rows].sort((a, b) => a.id.localeCompare(b.id));
    expect(byId(replayed.holds)).toEqual(byId(h.db.select().from(legalHolds).all()));
    expect(replayed.holds.length).toBeGreaterThanOrEqual(5);
    expect(replayed.evidence.length).toBeGreaterThanOrEqual(5);
  });
});
