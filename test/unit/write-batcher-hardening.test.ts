/**
 * WriteBatcher hardening (src/meta/write-batcher.ts): a failed WAL sync is final (fsyncgate),
 * the durable-sequence watermark that webhooks / checkpoints / the events API read up to, and
 * the byte cap per batch. The WAL sync is injected here (the `sync` option) so a test can hold it
 * or make it fail; production uses the real fdatasync (test/unit/write-batcher.test.ts).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { openAccess } from '../../src/auth/access.js';
import { AppError } from '../../src/errors/catalogue.js';
import { registerEventRoutes } from '../../src/events/routes.js';
import type { AppEnv } from '../../src/http/env.js';
import { listCheckpoints, loadOrCreateLogKey, signDurableHead } from '../../src/events/checkpoints.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { appendEvent } from '../../src/meta/events.js';
import { RegistryStore } from '../../src/meta/registry-store.js';
import { WriteBatcher, writeBatcher } from '../../src/meta/write-batcher.js';
import { WebhookDispatcher } from '../../src/webhooks/delivery.js';
import { WebhookStore } from '../../src/webhooks/store.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const dir = mkdtempSync(join(tmpdir(), 'write-batcher-hardening-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): Db => openDatabase(join(dir, `db-${n++}.db`));
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const turn = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WAL sync the test completes by hand: `calls[i]` is the i-th sync started. */
function heldSync() {
  const calls: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  const sync = () => new Promise<void>((resolve, reject) => void calls.push({ resolve, reject }));
  return { calls, sync };
}

const insertBlob = (db: Db, name: string) => () => db.$client.prepare('INSERT INTO blobs (digest, size) VALUES (?, 1)').run(sha(name));
const blobThere = (db: Db, name: string) => db.$client.prepare('SELECT count(*) FROM blobs WHERE digest = ?').pluck().get(sha(name)) === 1;
/** An event written outside the batcher (a plain transaction: CLI, seeding, scanner, blob DELETE). */
const plainEvent = (db: Db, repo: string) => db.transaction((tx) => appendEvent(tx, { actor: 't', action: 'oci.manifest.push', repository: repo, digest: sha(repo) })).seq;

// SQLite's WAL fdatasync (fsyncgate: a failed sync is final). On PostgreSQL durability is its own
// COMMIT; a barrier that fails means a lost connection and its callers retry (write-batcher.ts).
describe.skipIf(onPostgres)('WriteBatcher: a failed WAL sync', () => {
  it('rejects the callers it covered, the batch committed meanwhile and every later write with a retryable 503; logs once; the watermark stops', async () => {
    const db = fresh();
    try {
      const { calls, sync } = heldSync();
      const b = new WriteBatcher(db, { sync });
      const lines: unknown[] = [];
      b.logTo({ error: (...args: unknown[]) => void lines.push(args) } as never);

      const first = b.run(insertBlob(db, 'one'));
      await turn();
      expect(calls).toHaveLength(1); // committed, its sync in flight
      const second = b.run(insertBlob(db, 'two'));
      await turn();
      expect(calls).toHaveLength(1); // committed too, waits for the next sync
      expect(blobThere(db, 'two')).toBe(true);

      calls[0]!.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      for (const r of await Promise.allSettled([first, second])) {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason as AppError;
        expect(err).toBeInstanceOf(AppError);
        expect(err.code).toBe('UNAVAILABLE');
        expect(err.status).toBe(503);
        expect(err.retryable).toBe(true);
        expect(err.message).toMatch(/could not be synced to disk \(EIO.*restarted/);
      }
      expect(b.failed?.code).toBe('UNAVAILABLE');

      // Later writes never run: a successful sync after a failed one proves nothing (fsyncgate).
      await expect(b.run(insertBlob(db, 'three'))).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
      await turn();
      expect(blobThere(db, 'three')).toBe(false);
      expect(calls).toHaveLength(1);
      expect(lines).toHaveLength(1);

      // The watermark stays where the last good sync left it (nothing synced yet: 0), no new sync.
      plainEvent(db, 'w/a');
      expect(await b.durableSeq()).toBe(0);
      expect(calls).toHaveLength(1);
    } finally {
      db.$client.close();
    }
  });

  it('items queued for the next batch when the sync fails are refused before they run', async () => {
    const db = fresh();
    try {
      const { calls, sync } = heldSync();
      const b = new WriteBatcher(db, { sync });
      b.logTo(pino({ level: 'silent' }));
      const first = b.run(insertBlob(db, 'a'));
      await turn();
      const queued = b.run(insertBlob(db, 'b')); // flushes on the next turn: the failure lands first
      calls[0]!.reject(new Error('EIO'));
      await expect(first).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      await expect(queued).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect(blobThere(db, 'b')).toBe(false);
    } finally {
      db.$client.close();
    }
  });
});

describe('WriteBatcher: the durable-sequence watermark', () => {
  it('covers commits made outside the batcher: a sync runs on demand, one at a time, and a second follows when needed', async () => {
    const db = fresh();
    try {
      const { calls, sync } = heldSync();
      const b = new WriteBatcher(db, { sync });
      expect(await b.durableSeq()).toBe(0); // nothing written: no sync
      expect(calls).toHaveLength(0);

      const s1 = plainEvent(db, 'w/one');
      const p1 = b.durableSeq();
      await turn();
      expect(calls).toHaveLength(1);
      const s2 = plainEvent(db, 'w/two'); // committed while that sync runs: not covered by it
      const p2 = b.durableSeq();
      await turn();
      expect(calls).toHaveLength(1); // one sync at a time
      calls[0]!.resolve();
      expect(await p1).toBe(s1);
      await turn();
      expect(calls).toHaveLength(2); // p2 still waits: a second sync starts by itself
      calls[1]!.resolve();
      expect(await p2).toBe(s2);
      expect(await b.durableSeq()).toBe(s2); // caught up: answered without a sync
      expect(calls).toHaveLength(2);
    } finally {
      db.$client.close();
    }
  });

  it('a batch sync moves it too: a manifest acknowledged is below the watermark', async () => {
    const db = fresh();
    try {
      const { calls, sync } = heldSync();
      writeBatcher(db, { sync });
      const store = new RegistryStore(db);
      const payload = Buffer.from('{"schemaVersion":2}');
      const put = store.commitManifest('w/app', { digest: sha('m'), mediaType: 'application/vnd.oci.image.manifest.v1+json', payload, size: payload.length, artifactType: null, subject: null, annotations: null, references: [] }, ['v1'], 't');
      await turn();
      calls[0]!.resolve();
      await put;
      const head = db.$client.prepare('SELECT max(seq) FROM events').pluck().get() as number;
      expect(head).toBe(3); // repository.create, manifest.push, tag.set
      expect(await writeBatcher(db).durableSeq()).toBe(head);
      expect(calls).toHaveLength(1);
    } finally {
      db.$client.close();
    }
  });

  it('checkpoints sign only the durable head', async () => {
    const db = fresh();
    try {
      const { calls, sync } = heldSync();
      writeBatcher(db, { sync });
      const key = loadOrCreateLogKey(join(dir, `key-${n}.pem`));
      plainEvent(db, 'c/one');
      const signing = signDurableHead(db, key);
      await turn();
      expect(calls).toHaveLength(1);
      expect(listCheckpoints(db)).toHaveLength(0); // committed, not synced: not signed
      const s2 = plainEvent(db, 'c/two');
      calls[0]!.resolve();
      const { checkpoint } = await signing;
      expect(checkpoint?.seq).toBe(1); // the event committed during the sync is not in it
      const next = signDurableHead(db, key);
      await turn();
      calls[1]!.resolve();
      expect((await next).checkpoint?.seq).toBe(s2);
    } finally {
      db.$client.close();
    }
  });

  it('the events API pages only up to the watermark', async () => {
    const db = fresh();
    try {
      const { calls, sync } = heldSync();
      writeBatcher(db, { sync });
      const app = new Hono<AppEnv>();
      registerEventRoutes(app, { db, access: openAccess, isLive: () => true });
      const page = async () => ((await (await app.request('/api/v1/events?after=0')).json()) as { events: { seq: number }[] }).events.map((e) => e.seq);
      const s1 = plainEvent(db, 'e/one');
      const first = page();
      await turn();
      expect(calls).toHaveLength(1);
      plainEvent(db, 'e/two'); // committed while the sync runs
      calls[0]!.resolve();
      expect(await first).toEqual([s1]);
      const second = page();
      await turn();
      calls[1]!.resolve();
      expect(await second).toEqual([s1, s1 + 1]);
    } finally {
      db.$client.close();
    }
  });

  it('webhooks deliver an event only after the sync that covers it', async () => {
    const db = fresh();
    const got: number[] = [];
    const receiver: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        got.push((JSON.parse(body) as { data: { seq: number } }).data.seq);
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const { calls, sync } = heldSync();
    writeBatcher(db, { sync });
    const store = new WebhookStore(db);
    const log = pino({ level: 'silent' });
    const dispatcher = new WebhookDispatcher(db, store, { allowPrivateTargets: true, maxAttempts: 3, retryBaseMs: 50, timeoutMs: 2000, source: '/test', leaseMs: 30_000 }, log);
    try {
      store.create({ url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['oci.*'], namespaces: null, secret: 'a-secret-of-16-chars' }, 't');
      const seq = plainEvent(db, 'h/app');
      dispatcher.start();
      await sleep(700); // two or three polls
      expect(calls.length).toBeGreaterThanOrEqual(1);
      expect(got).toEqual([]); // committed, not on disk: not sent
      for (const c of calls) c.resolve();
      for (let i = 0; i < 40 && got.length === 0; i++) await sleep(50);
      expect(got).toEqual([seq]);
    } finally {
      await dispatcher.stop();
      receiver.close();
      db.$client.close();
    }
  });
});

describe('WriteBatcher: batch bounds', () => {
  /** Each item returns the index of the batch it ran in. */
  const sized = (b: WriteBatcher, sizes: number[]) => sizes.map((s) => b.run(() => b.stats.batches, s));

  it('caps a batch by declared payload bytes; an item over the cap runs alone; one batch per event-loop turn', async () => {
    const db = fresh();
    try {
      const b = new WriteBatcher(db, { durability: 'commit', maxBytes: 100 });
      const items = sized(b, [40, 40, 40, 250, 10, 10]);
      let seenBetween = -1;
      setImmediate(() => (seenBetween = b.stats.batches)); // queued after the first flush
      expect(await Promise.all(items)).toEqual([0, 0, 1, 2, 3, 3]);
      expect(seenBetween).toBe(1); // the loop turned after the first batch
      expect(b.stats.largestBytes).toBe(250);
    } finally {
      db.$client.close();
    }
  });

  it('caps by items too, and the default 8 MiB cap splits three 4 MiB manifests', async () => {
    const db = fresh();
    try {
      const few = new WriteBatcher(db, { durability: 'commit', maxItems: 2 });
      expect(await Promise.all(sized(few, [0, 0, 0, 0, 0]))).toEqual([0, 0, 1, 1, 2]);
      const dflt = new WriteBatcher(db, { durability: 'commit' });
      const mib4 = 4 * 1024 * 1024;
      expect(await Promise.all(sized(dflt, [mib4, mib4, mib4]))).toEqual([0, 0, 1]);
    } finally {
      db.$client.close();
    }
  });

  it('commitManifest declares its payload size', async () => {
    const db = fresh();
    try {
      const b = writeBatcher(db, { durability: 'commit' });
      const payload = Buffer.alloc(12_345, 'x');
      await new RegistryStore(db).commitManifest('s/app', { digest: sha('big'), mediaType: 'application/vnd.oci.image.manifest.v1+json', payload, size: payload.length, artifactType: null, subject: null, annotations: null, references: [] }, [], 't');
      expect(b.stats.largestBytes).toBe(12_345);
    } finally {
      db.$client.close();
    }
  });
});
