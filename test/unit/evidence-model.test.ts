/**
 * Model-based property test of the delete rule: after any sequence of evidence pushes (with
 * different retention), clock moves, holds placed and lifted, a delete of the subject or of a
 * piece of evidence succeeds exactly when a two-line model says it is neither held nor retained.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pushImage } from '../helpers/http.js';
import { startHarness, type Harness } from './evidence-harness.js';
import { del, json, postHold, pushEvidence } from './evidence-push.js';

const DAY = 86_400_000;
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ scanning: false });
  for (const d of [0, 1, 5]) h.families.setEvidenceType(`keep-${d}`, d);
});
afterAll(async () => {
  await h.stop();
});

type Op =
  | { op: 'evidence'; days: 0 | 1 | 5 }
  | { op: 'advance'; hours: number }
  | { op: 'hold'; onEvidence: boolean }
  | { op: 'release' }
  | { op: 'deleteSubject' }
  | { op: 'deleteEvidence'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('evidence' as const), days: fc.constantFrom(0 as const, 1 as const, 5 as const) }),
  fc.record({ op: fc.constant('advance' as const), hours: fc.integer({ min: 1, max: 80 }) }),
  fc.record({ op: fc.constant('hold' as const), onEvidence: fc.boolean() }),
  fc.record({ op: fc.constant('release' as const) }),
  fc.record({ op: fc.constant('deleteSubject' as const) }),
  fc.record({ op: fc.constant('deleteEvidence' as const), pick: fc.nat() }),
);

let run = 0;
it('a delete succeeds exactly when nothing holds or retains the target', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async (ops) => {
      const repo = `model/r${run++}`;
      const img = await pushImage(h.url, repo, 'v1');
      let now = Date.now();
      h.clock.now = now;
      const evidence: { digest: string; until: number }[] = [];
      const holds: { id: string; digest: string | null }[] = [];
      let subjectGone = false;
      const held = (digest: string) => holds.some((x) => x.digest === null || x.digest === digest);
      try {
        for (const o of ops) {
          if (o.op === 'evidence' && !subjectGone) {
            const ev = await pushEvidence(h.url, repo, { digest: img.digest, size: img.bytes.length }, `keep-${o.days}`);
            const view = await json(await fetch(`${h.url}/api/v1/evidence?repository=${repo}&digest=${img.digest}`));
            const pushedAt = Date.parse(view.evidence.find((e: { digest: string }) => e.digest === ev.digest).pushedAt);
            evidence.push({ digest: ev.digest, until: pushedAt + o.days * DAY });
          } else if (o.op === 'advance') {
            now += o.hours * 3_600_000;
            h.clock.now = now;
          } else if (o.op === 'hold') {
            const target = o.onEvidence && evidence.length ? evidence[evidence.length - 1]!.digest : subjectGone ? null : img.digest;
            const res = await postHold(h.url, { repository: repo, ...(target ? { digest: target } : {}), reason: 'model' });
            expect(res.status).toBe(201);
            holds.push({ id: (await json(res)).id, digest: target });
          } else if (o.op === 'release' && holds.length) {
            const x = holds.shift()!;
            expect((await del(h.url, `/api/v1/holds/${x.id}`)).status).toBe(200);
          } else if (o.op === 'deleteSubject' && !subjectGone) {
            const expectRefused = held(img.digest) || evidence.some((e) => e.until > now);
            const res = await del(h.url, `/v2/${repo}/manifests/${img.digest}`);
            expect(res.status).toBe(expectRefused ? 403 : 202);
            if (!expectRefused) subjectGone = true;
          } else if (o.op === 'deleteEvidence' && evidence.length) {
            const i = o.pick % evidence.length;
            const e = evidence[i]!;
            const expectRefused = held(e.digest) || e.until > now;
            const res = await del(h.url, `/v2/${repo}/manifests/${e.digest}`);
            expect(res.status).toBe(expectRefused ? 403 : 202);
            if (!expectRefused) evidence.splice(i, 1);
          }
        }
      } finally {
        h.clock.now = null;
      }
    }),
    { numRuns: 25 },
  );
});
