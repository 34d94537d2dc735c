/**
 * Online backup (`artifact-store backup <dir>`), safe while the server runs:
 * 0. take the garbage-collection lease (gc_state, the one every collector of every process
 *    sharing the database needs, renewed while the backup runs): no GC deletes anything between
 *    the snapshot and the blob copy, and a GC already running is waited for;
 * 1. the metadata database through SQLite's online backup API (a consistent snapshot, writers
 *    keep going; a plain file copy of a WAL database can be torn). On PostgreSQL
 *    (ARTIFACT_STORE_DATABASE_URL): `pg_dump` of the registry's schema into metadata.pgdump, run by
 *    the backup itself so the dump is taken inside the GC lease and before the blob copy (an
 *    operator's separate pg_dump could name blobs a GC deleted, or blobs pushed after the copy).
 *    Without pg_dump on PATH the backup refuses (no half backup). Restore: `pg_restore --no-owner
 *    --dbname=<url> metadata.pgdump` into an empty database; blobs and keys as below.
 * 2. the blobs the snapshot names. fs: the blob files (immutable, written before the metadata
 *    that names them). s3: each object streamed from the bucket into the same layout on disk
 *    (blobs/<algo>/<xx>/<hex>), checked against its digest, a few at a time, so memory stays
 *    flat whatever the blob sizes,
 * 3. the signing keys under auth/ (tokens, event-log checkpoints), or the configured key files
 *    (tokenSigningKeyFile, eventLogSigningKeyFile): without them restored checkpoints do not
 *    verify and every issued token is void.
 * The result IS a data directory for `storage: fs`; for S3 it is also the bucket's blobs/
 * tree, to copy back under the prefix. Upload sessions in progress are not kept (clients retry).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import type { Config } from '../config/index.js';
import { BlobNotFoundError } from '../data/errors.js';
import { keys as storageKeys } from '../data/keys.js';
import { isPostgres, type Db } from '../meta/db.js';
import type { PostgresDatabase } from '../meta/pg/facade.js';
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

/**
 * pg_dump of the registry's schema (custom format) into `file`. The password goes to pg_dump
 * through PGPASSWORD, not its command line, where any local user could read it (ps).
 */
async function dumpPostgres(client: PostgresDatabase, file: string): Promise<void> {
  const url = new URL(client.options.url);
  const password = decodeURIComponent(url.password);
  url.password = '';
  // A registry in its own schema (?schema=) dumps that schema; one in public dumps its database
  // (--schema=public would emit a CREATE SCHEMA public that fails on restore into a fresh database).
  const schema = client.options.schema ? [`--schema=${client.options.schema}`] : [];
  const args = ['--format=custom', '--no-owner', ...schema, `--file=${file}`, `--dbname=${url.toString()}`];
  await new Promise<void>((resolve, reject) => {
    execFile('pg_dump', args, { env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('the metadata is in PostgreSQL and pg_dump is not on PATH: install the PostgreSQL client tools (the server\'s major version or newer) and run the backup again'));
      } else reject(new Error(`pg_dump failed: ${stderr.trim() || err.message}`));
    });
  });
  await chmod(file, 0o600);
}

/** Streams every blob in `digests` from the bucket into `dest/blobs/…`, digest-checked. */
async function copyS3Blobs(config: Config, digests: string[], dest: string): Promise<BackupReport['blobs']> {
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

  const postgres = isPostgres(db);
  const database = join(dest, postgres ? 'metadata.pgdump' : 'metadata.db');
  const blobs = await withGcLease(db, async (): Promise<BackupReport['blobs']> => {
    const s3 = config.storage === 's3';
    if (postgres) {
      await dumpPostgres(db.$client as unknown as PostgresDatabase, database);
      // Read after the dump: a superset of the blobs it names (blobs are stored before the rows that name them, and the lease keeps GC off).
      if (s3) return copyS3Blobs(config, db.$client.prepare('SELECT digest FROM blobs ORDER BY digest').pluck().all() as string[], dest);
    } else {
      await db.$client.backup(database);
      if (s3) {
        const snap = new Database(database, { readonly: true });
        const digests = snap.prepare('SELECT digest FROM blobs ORDER BY digest').pluck().all() as string[];
        snap.close();
        return copyS3Blobs(config, digests, dest);
      }
    }
    const from = join(dataDir, 'blobs');
    if (existsSync(from)) await cp(from, join(dest, 'blobs'), { recursive: true, preserveTimestamps: true, errorOnExist: true, force: false });
    return { copied: true, storage: 'fs', files: await countFiles(join(dest, 'blobs')) };
  });

  const keys: string[] = [];
  const auth = join(dataDir, 'auth');
  if (existsSync(auth)) await cp(auth, join(dest, 'auth'), { recursive: true, preserveTimestamps: true });
  // Replicas (PostgreSQL) keep the signing keys in configured files, usually outside the data
  // directory: copied under the default names, so the backup restores as a data directory
  // without those settings, and the keys in use win over stale ones left in auth/.
  for (const [file, name] of [[config.tokenSigningKeyFile, 'token-signing-key.jwk'], [config.eventLogSigningKeyFile, 'event-log-signing-key.pem']] as const) {
    if (!file || !existsSync(resolve(file))) continue;
    await mkdir(join(dest, 'auth'), { recursive: true, mode: 0o700 });
    await copyFile(resolve(file), join(dest, 'auth', name));
    await chmod(join(dest, 'auth', name), 0o600);
  }
  if (existsSync(join(dest, 'auth'))) for (const e of await readdir(join(dest, 'auth'))) keys.push(`auth/${e}`);

  const report: BackupReport = { directory: dest, database, blobs, keys, ms: Math.round(performance.now() - started) };
  await writeFile(join(dest, 'backup.json'), `${JSON.stringify({ version: VERSION, createdAt: new Date().toISOString(), storage: config.storage, ...report }, null, 2)}\n`, { mode: 0o600 });
  return report;
}
