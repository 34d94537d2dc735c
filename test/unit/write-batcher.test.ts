/**
 * Group commit (src/meta/write-batcher.ts): writes issued in one event-loop turn share one
 * transaction, run in arrival order in savepoints, and a failing one rolls back alone. The
 * property: any mix of batched link and manifest commits ends exactly as the same writes run one
 * transaction at a time (same outcomes per call, same rows, same event sequence), the chain verifies.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { verifyChain } from '../../src/meta/events.js';
import { RegistryStore, type NewManifest } from '../../src/meta/registry-store.js';
import { WriteBatcher, writeBatcher } from '../../src/meta/write-batcher.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const dir = mkdtempSync(join(tmpdir(), 'write-batcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
let n = 0;
const fresh = (): Db => openDatabase(join(dir, `db-${n++}.db`));

function manifest(blobs: number[], note: string): NewManifest {
  const refs = blobs.map((b) => sha(`blob ${b}`));
  const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: refs, note }));
  return { digest: sha(payload.toString()), mediaType: 'application/vnd.oci.image.manifest.v1+json', payload, size: payload.length, artifactType: null, subject: null, annotations: null, references: refs.map((digest) => ({ digest, kind: 'blob' as const })) };
}

/** What must be identical between a batched and a one-by-one run (no timestamps). */
function snapshot(db: Db) {
  const all = (q: string) => db.$client.prepare(q).all();
  return {
    events: all('SELECT action, repository, digest, tag, before, after FROM events ORDER BY seq'),
    manifests: all('SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id ORDER BY 1, 2'),
    tags: all('SELECT r.name, t.name AS tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id ORDER BY 1, 2'),
    links: all('SELECT r.name, l.digest FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id ORDER BY 1, 2'),
    refs: all('SELECT manifest_digest, target_digest FROM manifest_references ORDER BY 1, 2'),
  };
}

describe('WriteBatcher', () => {
  it('a failing item in the middle rolls back alone; the others commit in arrival order, in one transaction', async () => {
    const db = fresh();
    const store = new RegistryStore(db);
    try {
      store.linkBlob('b/app', sha('blob 1'), 101, 't', 'oci.blob.push');
      const batcher = writeBatcher(db);
      const before = { ...batcher.stats };
      const good1 = manifest([1], 'one');
      const bad = manifest([2], 'missing blob'); // blob 2 is not linked: the in-transaction re-check refuses it
      const good2 = manifest([1], 'two');
      const results = await Promise.allSettled([
        store.commitManifest('b/app', good1, ['v1'], 't'),
        store.commitBlobLink('b/app', sha('blob 3'), 103, 't', 'oci.blob.push'),
        store.commitManifest('b/app', bad, ['v2'], 't', { after: () => undefined }),
        // A guard that throws after writing nothing, and one that throws after its own write: both vanish.
        batcher.run((tx) => {
          store.linkBlob('b/app', sha('blob 9'), 109, 't', 'oci.blob.push'); // nested: a savepoint inside the item's
          void tx;
          throw new Error('refused after writing');
        }),
        store.commitManifest('b/app', good2, ['v1', 'v3'], 't'),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
      expect((results[2] as PromiseRejectedResult).reason.code).toBe('MANIFEST_BLOB_UNKNOWN');
      expect((results[3] as PromiseRejectedResult).reason.message).toBe('refused after writing');
      expect(batcher.stats.batches - before.batches).toBe(1);
      expect(batcher.stats.items - before.items).toBe(5);

      const repoId = store.repositoryId('b/app')!;
      expect(store.manifestByDigest('b/app', bad.digest)).toBeUndefined();
      expect(store.repositoryBlobSize('b/app', sha('blob 9'))).toBeUndefined();
      expect(store.repositoryBlobSize('b/app', sha('blob 3'))).toBe(103);
      // Arrival order: v1 pointed at good1 first, then moved to good2.
      expect(store.tagDigest(repoId, 'v1')).toBe(good2.digest);
      expect(store.tagDigest(repoId, 'v2')).toBeUndefined();
      const actions = db.$client.prepare("SELECT action, digest, tag FROM events WHERE repository = 'b/app' ORDER BY seq").all();
      expect(actions).toEqual([
        { action: 'oci.repository.create', digest: null, tag: null },
        { action: 'oci.blob.push', digest: sha('blob 1'), tag: null },
        { action: 'oci.manifest.push', digest: good1.digest, tag: null },
        { action: 'oci.tag.set', digest: good1.digest, tag: 'v1' },
        { action: 'oci.blob.push', digest: sha('blob 3'), tag: null },
        { action: 'oci.manifest.push', digest: good2.digest, tag: null },
        { action: 'oci.tag.move', digest: good2.digest, tag: 'v1' },
        { action: 'oci.tag.set', digest: good2.digest, tag: 'v3' },
      ]);
      expect(verifyChain(db)).toMatchObject({ ok: true });
    } finally {
      db.$client.close();
    }
  });

  it('resolves only after an fsync of the WAL completed after the item ran; never more fsyncs than batches', async () => {
    const db = fresh();
    try {
      const b = writeBatcher(db);
      const start = { ...b.stats };
      // Ten batches in ten turns of the event loop, three items each.
      const seen: Promise<{ during: number; after: number }>[] = [];
      for (let turn = 0; turn < 10; turn++) {
        for (let k = 0; k < 3; k++) {
          const item = b.run(() => {
            db.$client.prepare('INSERT INTO blobs (digest, size) VALUES (?, ?)').run(sha(`t${turn}-${k}`), k);
            return b.stats.syncs;
          });
          seen.push(item.then((during) => ({ during, after: b.stats.syncs })));
        }
        await new Promise((r) => setImmediate(r));
      }
      for (const { during, after } of await Promise.all(seen)) expect(after).toBeGreaterThan(during);
      const batches = b.stats.batches - start.batches;
      expect(batches).toBe(10);
      expect(b.stats.syncs - start.syncs).toBeGreaterThanOrEqual(1);
      expect(b.stats.syncs - start.syncs).toBeLessThanOrEqual(batches);
    } finally {
      db.$client.close();
    }
  });

  it('a non-durable item resolves at COMMIT; a durable item of the same batch waits for the sync; alone they sync nothing', async () => {
    const db = fresh();
    try {
      let release!: () => void;
      let syncs = 0;
      const sync = () => {
        syncs++;
        return new Promise<void>((r) => (release = r));
      };
      const b = new WriteBatcher(db, { sync });
      const insert = (k: string) => () => db.$client.prepare('INSERT INTO blobs (digest, size) VALUES (?, ?)').run(sha(k), 1).changes;
      const order: string[] = [];
      const durable = b.run(insert('durable')).then(() => order.push('durable'));
      const quick = b.run(insert('quick'), 0, false).then(() => order.push('quick'));
      await quick;
      expect(order).toEqual(['quick']);
      expect(syncs).toBe(1); // started for the durable item, still running
      expect(db.$client.prepare('SELECT count(*) FROM blobs').pluck().get()).toBe(2); // both committed
      release();
      await durable;
      expect(order).toEqual(['quick', 'durable']);
      // A batch of non-durable items only: answered at COMMIT, no sync started for it.
      expect(await Promise.all([b.run(insert('a'), 0, false), b.run(insert('b'), 0, false)])).toEqual([1, 1]);
      expect(syncs).toBe(1);
    } finally {
      db.$client.close();
    }
  });

  it('upload sessions created and leased in one turn share one transaction; the per-owner cap still holds inside it', async () => {
    const db = fresh();
    const store = new RegistryStore(db);
    try {
      const b = writeBatcher(db);
      const before = b.stats.batches;
      const ids = Array.from({ length: 8 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`);
      const created = await Promise.all(ids.map((id) => store.createUploadGrouped(id, 'b/app', '{}', 'alice', 3)));
      expect(created.filter(Boolean)).toHaveLength(3);
      expect(b.stats.batches - before).toBe(1);
      const open = ids.filter((_, i) => created[i]);
      const leases = await Promise.all([...open, open[0]!].map((id, i) => store.leaseUploadGrouped(id, `holder-${i}`, 60_000)));
      // The last asked for a session leased earlier in the same batch: busy, not taken.
      expect(leases.map((l) => (typeof l === 'object' ? l.takenOver : l))).toEqual([false, false, false, 'busy']);
      expect(await store.leaseUploadGrouped('00000000-0000-4000-8000-0000000000ff', 'h', 60_000)).toBe('missing');
      expect(b.stats.batches - before).toBe(3);
    } finally {
      db.$client.close();
    }
  });

  // SQLite's synchronous pragma; on PostgreSQL 'full' is its own synchronous COMMIT (nothing to switch).
  it.skipIf(onPostgres)("durability 'full' commits with synchronous=FULL and restores the connection's NORMAL after", async () => {
    const db = fresh();
    try {
      const level = () => db.$client.pragma('synchronous', { simple: true });
      const b = new WriteBatcher(db, { durability: 'full' });
      expect(level()).toBe(1);
      expect(await b.run(() => level())).toBe(2);
      expect(level()).toBe(1);
      expect(b.stats.syncs).toBe(0);
    } finally {
      db.$client.close();
    }
  });

  it('a lone item that fails after writing leaves nothing (on PostgreSQL it runs without a savepoint)', async () => {
    const db = fresh();
    const store = new RegistryStore(db);
    try {
      const batcher = writeBatcher(db);
      const headBefore = db.$client.prepare('SELECT count(*) FROM events').pluck().get();
      await expect(
        batcher.run(() => {
          store.linkBlob('lone/app', sha('blob 5'), 105, 't', 'oci.blob.push');
          throw new Error('refused after writing');
        }),
      ).rejects.toThrow('refused after writing');
      expect(store.repositoryBlobSize('lone/app', sha('blob 5'))).toBeUndefined();
      expect(db.$client.prepare('SELECT count(*) FROM events').pluck().get()).toBe(headBefore);
      // The batcher goes on.
      await store.commitBlobLink('lone/app', sha('blob 6'), 106, 't', 'oci.blob.push');
      expect(store.repositoryBlobSize('lone/app', sha('blob 6'))).toBe(106);
    } finally {
      db.$client.close();
    }
  });

  it('an item returning a promise is refused (items must be synchronous), the batch goes on', async () => {
    const db = fresh();
    try {
      const b = writeBatcher(db);
      const [asyncOne, syncOne] = await Promise.allSettled([b.run(async () => 1), b.run(() => 2)]);
      expect(asyncOne.status).toBe('rejected');
      expect(syncOne).toEqual({ status: 'fulfilled', value: 2 });
    } finally {
      db.$client.close();
    }
  });

  it('when COMMIT fails, every item of the batch is rejected and nothing is visible', async () => {
    const db = fresh();
    const store = new RegistryStore(db);
    try {
      // A deferred foreign key fails at COMMIT time, not at the statement: the whole transaction fails.
      const results = await Promise.allSettled([
        store.commitBlobLink('c/app', sha('blob 1'), 1, 't', 'oci.blob.push'),
        writeBatcher(db).run(() => {
          // PostgreSQL defers only DEFERRABLE constraints: this test's copies of the two keys are made so.
          if (onPostgres) {
            db.$client.exec('ALTER TABLE repository_blobs ALTER CONSTRAINT repository_blobs_repository_id_fkey DEFERRABLE, ALTER CONSTRAINT repository_blobs_digest_fkey DEFERRABLE');
            db.$client.exec('SET CONSTRAINTS ALL DEFERRED');
          }
          else db.$client.pragma('defer_foreign_keys = ON');
          return db.$client.prepare('INSERT INTO repository_blobs (repository_id, digest) VALUES (999, ?)').run(sha('nothing'));
        }),
      ]);
      expect(results.map((r) => r.status), String((results[1] as PromiseRejectedResult).reason)).toEqual(['rejected', 'rejected']);
      expect(store.repositoryId('c/app')).toBeUndefined();
      expect(db.$client.prepare('SELECT count(*) FROM events').pluck().get()).toBe(0);
    } finally {
      db.$client.close();
    }
  });

  const op = fc.oneof(
    fc.record({ k: fc.constant('link' as const), repo: fc.constantFrom('p/a', 'p/b'), blob: fc.integer({ min: 0, max: 4 }) }),
    fc.record({
      k: fc.constant('manifest' as const),
      repo: fc.constantFrom('p/a', 'p/b'),
      blobs: fc.uniqueArray(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 }),
      tags: fc.uniqueArray(fc.constantFrom('latest', 'v1'), { maxLength: 2 }),
      note: fc.integer({ min: 0, max: 2 }),
      refuse: fc.boolean(),
    }),
  );

  it('property: a batch ends exactly as the same writes one transaction at a time', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        const seqDb = fresh();
        const batDb = fresh();
        const seq = new RegistryStore(seqDb);
        const bat = new RegistryStore(batDb);
        try {
          // A guard that refuses stands for governance (immutable tag, quota) saying no mid-batch.
          const hooks = (refuse: boolean) => ({ guard: () => { if (refuse) throw new Error('guard refused'); } });
          const outcomes: string[] = [];
          for (const o of ops) {
            try {
              if (o.k === 'link') seq.linkBlob(o.repo, sha(`blob ${o.blob}`), 100 + o.blob, 't', 'oci.blob.push');
              else seq.putManifest(o.repo, manifest(o.blobs, String(o.note)), o.tags, 't', hooks(o.refuse));
              outcomes.push('ok');
            } catch (err) {
              outcomes.push((err as Error).message);
            }
          }
          const settled = await Promise.allSettled(
            ops.map((o) => (o.k === 'link' ? bat.commitBlobLink(o.repo, sha(`blob ${o.blob}`), 100 + o.blob, 't', 'oci.blob.push') : bat.commitManifest(o.repo, manifest(o.blobs, String(o.note)), o.tags, 't', hooks(o.refuse)))),
          );
          expect(settled.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as Error).message))).toEqual(outcomes);
          expect(snapshot(batDb)).toEqual(snapshot(seqDb));
          expect(verifyChain(batDb)).toMatchObject({ ok: true });
        } finally {
          seqDb.$client.close();
          batDb.$client.close();
        }
      }),
      // Each run opens two fresh databases: on PostgreSQL two schemas migrated (about a second each).
      { numRuns: onPostgres ? 25 : 60 },
    );
  }, onPostgres ? 240_000 : undefined);
});
