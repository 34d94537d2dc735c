/**
 * Online backup (`artifact-store backup <dir>`), safe while the server runs:
 * 1. the metadata database through SQLite's online backup API (a consistent snapshot, writers
 *    keep going; a plain file copy of a WAL database can be torn),
 * 2. then the blob files (fs storage): blobs are immutable and written before the metadata that
 *    names them, so every blob the snapshot references is already on disk when it is copied,
 * 3. the signing keys under auth/ (tokens, event-log checkpoints): without them restored
 *    checkpoints do not verify and every issued token is void.
 * The result IS a data directory: restoring is copying it into place (or pointing
 * ARTIFACT_STORE_DATA_DIR at it). Upload sessions in progress are not kept (clients retry).
 * Garbage collection must not run during a backup: it could remove a blob the snapshot still
 * references between steps 1 and 2.
 */
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Config } from '../config/index.js';
import type { Db } from '../meta/db.js';
import { VERSION } from '../version.js';

export interface BackupReport {
  directory: string;
  database: string;
  blobs: { copied: boolean; files: number; note?: string };
  keys: string[];
  ms: number;
}

async function countFiles(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
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
  await db.$client.backup(database);

  let blobs: BackupReport['blobs'];
  if (config.storage === 'fs') {
    const from = join(dataDir, 'blobs');
    if (existsSync(from)) await cp(from, join(dest, 'blobs'), { recursive: true, preserveTimestamps: true, errorOnExist: true, force: false });
    blobs = { copied: true, files: await countFiles(join(dest, 'blobs')) };
  } else {
    blobs = { copied: false, files: 0, note: `blobs live in bucket ${config.s3Bucket ?? ''}${config.s3Prefix ? ` under ${config.s3Prefix}` : ''}: back it up with the store's own versioning or replication` };
  }

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
