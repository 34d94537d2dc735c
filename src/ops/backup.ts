/**
 * Online backup (`artifact-store backup <dir>`), safe while the server runs:
 * 0. take the garbage-collection lease (gc_state, the one every collector of every process
 *    sharing the database needs, renewed while the backup runs): no GC deletes anything between
 *    the snapshot and the blob copy, and a GC already running is waited for;
 * 1. the metadata database through SQLite's online backup API (a consistent snapshot, writers
 *    keep going; a plain file copy of a WAL database can be torn),
 * 2. the blobs the snapshot names. fs: the blob files (immutable, written before the metadata
 *    that names them). s3: each object streamed from the bucket into the same layout on disk
 *    (blobs/<algo>/<xx>/<hex>), checked against its digest, a few at a time, so memory stays
 *    flat whatever the blob sizes,
 * 3. the signing keys under auth/ (tokens, event-log checkpoints): without them restored
 *    checkpoints do not verify and every issued token is void.
 * The result IS a data directory for `storage: fs`; for S3 it is also the bucket's blobs/
 * tree, to copy back under the prefix. Upload sessions in progress are not kept (clients retry).
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import type { Config } from '../config/index.js';
import { BlobNotFoundError } from '../data/errors.js';
import { keys as storageKeys } from '../data/keys.js';
import type { Db } from '../meta/db.js';
import { holderIsDead, PROCESS_ID } from '../operations/lease.js';
import { OperationsStore } from '../operations/store.js';
import { createDriver } from '../server.js';
import { VERSION } from '../version.js';

export interface BackupReport {
  directory: string;
  database: string;
  blobs: {
    copied: boolean;
    storage: 'fs' | 's3';
    files: number;
    bytes?: number;
    missing?: string[];
    note?: string;
    /** s3: resident memory (MiB) before the copy and its peak during it (sampled): flat, however large the blobs. */
    rssMiB?: { before: number; peak: number };
  };
  keys: string[];
  ms: number;
}

/** Lease length as the collector uses it; renewed every RENEW_MS while the backup runs. */
const LEASE_MS = 120_000;
const RENEW_MS = 20_000;
/** How long a backup waits for a running garbage collection to finish. */
const LEASE_WAIT_MS = 10 * 60_000;
/** Blobs streamed from S3 at once. */
const COPY_CONCURRENCY = 4;

async function countFiles(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

/** Holds the GC lease while `fn` runs: the holder names this process, so a crashed backup's lease is taken over. */
async function withGcLease<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  const store = new OperationsStore(db);
  const holder = `${PROCESS_ID}/backup`;
  const deadline = Date.now() + LEASE_WAIT_MS;
  while (!store.acquireLease(holder, LEASE_MS, holderIsDead)) {
    if (Date.now() > deadline) throw new Error('a garbage collection has held its lease for 10 minutes: retry the backup when it has finished');
    await new Promise((r) => setTimeout(r, 500));
  }
  const renew = setInterval(() => store.acquireLease(holder, LEASE_MS), RENEW_MS);
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    store.releaseLease(holder);
  }
}

/** Streams every blob the snapshot names from the bucket into `dest/blobs/…`, digest-checked. */
async function copyS3Blobs(config: Config, snapshot: string, dest: string): Promise<BackupReport['blobs']> {
  const snap = new Database(snapshot, { readonly: true });
  const digests = snap.prepare('SELECT digest FROM blobs ORDER BY digest').pluck().all() as string[];
  snap.close();
  const driver = await createDriver(config);
  // Resident memory once everything is loaded, and its peak while blobs stream (the report shows both).
  const rss = (): number => Math.round(process.memoryUsage().rss / 2 ** 20);
  const rssMiB = { before: rss(), peak: 0 };
  const sampler = setInterval(() => (rssMiB.peak = Math.max(rssMiB.peak, rss())), 25);
  const missing: string[] = [];
  let files = 0;
  let bytes = 0;
  let next = 0;
  const copyOne = async (digest: string): Promise<void> => {
    const file = join(dest, storageKeys.blob(digest));
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const [algo] = digest.split(':') as [string];
    const hash = createHash(algo === 'sha512' ? 'sha512' : 'sha256');
    let size = 0;
    const tmp = `${file}.partial`;
    try {
      const source = await driver.read(digest);
      const pass = new PassThrough();
      const tap = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      });
      await Promise.all([source.pipeTo(pass), pipeline(pass, tap, createWriteStream(tmp, { mode: 0o600 }))]);
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof BlobNotFoundError) return void missing.push(digest);
      throw err;
    }
    if (algo !== 'blake3' && `${algo}:${hash.digest('hex')}` !== digest) throw new Error(`${digest}: the bytes read from the bucket do not match the digest`);
    await rename(tmp, file);
    files++;
    bytes += size;
  };
  try {
    await Promise.all(
      Array.from({ length: COPY_CONCURRENCY }, async () => {
        for (let i = next++; i < digests.length; i = next++) await copyOne(digests[i]!);
      }),
    );
  } finally {
    clearInterval(sampler);
    rssMiB.peak = Math.max(rssMiB.peak, rss());
    await driver.close();
  }
  const note = `streamed from bucket ${config.s3Bucket ?? ''}${config.s3Prefix ? ` (prefix ${config.s3Prefix})` : ''}; restore by copying blobs/ back under the prefix, or run the backup as a storage: fs data directory`;
  return { copied: true, storage: 's3', files, bytes, missing, note, rssMiB };
}

export async function backupRegistry(config: Config, db: Db, target: string): Promise<BackupReport> {
  const started = performance.now();
  const dataDir = resolve(config.dataDir);
  const dest = resolve(target);
  const rel = relative(dataDir, dest);
  if (rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'))) throw new Error(`the backup directory must be outside the data directory ${dataDir}`);
  if (existsSync(dest) && (await readdir(dest)).length > 0) throw new Error(`${dest} is not empty: back up into a new directory`);
  await mkdir(dest, { recursive: true, mode: 0o700 });

  const database = join(dest, 'metadata.db');
  const blobs = await withGcLease(db, async (): Promise<BackupReport['blobs']> => {
    await db.$client.backup(database);
    if (config.storage === 's3') return copyS3Blobs(config, database, dest);
    const from = join(dataDir, 'blobs');
    if (existsSync(from)) await cp(from, join(dest, 'blobs'), { recursive: true, preserveTimestamps: true, errorOnExist: true, force: false });
    return { copied: true, storage: 'fs', files: await countFiles(join(dest, 'blobs')) };
  });

  const keys: string[] = [];
  const auth = join(dataDir, 'auth');
  if (existsSync(auth)) {
    await cp(auth, join(dest, 'auth'), { recursive: true, preserveTimestamps: true });
    for (const e of await readdir(join(dest, 'auth'))) keys.push(`auth/${e}`);
  }

  const report: BackupReport = { directory: dest, database, blobs, keys, ms: Math.round(performance.now() - started) };
  await writeFile(join(dest, 'backup.json'), `${JSON.stringify({ version: VERSION, createdAt: new Date().toISOString(), storage: config.storage, ...report }, null, 2)}\n`, { mode: 0o600 });
  return report;
}
