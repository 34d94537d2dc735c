/**
 * Backup and restore (issue #19): `backup <dir>` while the registry runs and takes writes,
 * then a registry started on a fresh data directory made from the backup serves the same
 * image, accepts a token the old registry issued (the signing key came along) and
 * `events verify` passes (chain and checkpoints). On S3 the blobs come from the bucket, and
 * garbage collection is held off while the backup runs.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { afterAll, expect, it } from 'vitest';
import { sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry } from '../helpers/registry.js';
import { startS3Server } from '../helpers/s3-server.js';
import { metadataSchema, onPostgres, openMetadata } from '../helpers/metadata.js';

/** On PostgreSQL the backup holds a pg_dump of the registry's schema instead of a SQLite snapshot. */
const METADATA = onPostgres ? 'metadata.pgdump' : 'metadata.db';

/**
 * What an operator does to restore: on SQLite nothing more (metadata.db is in the copied
 * directory); on PostgreSQL `pg_restore` of the dump, here into the schema test mode gives the
 * restored directory (the hash-named schema is unique text, so renaming it in the SQL is exact).
 */
function restoreMetadata(backupDir: string, fromDataDir: string, intoDataDir: string): void {
  if (!onPostgres) return;
  const sql = execFileSync('pg_restore', ['--no-owner', '--file=-', join(backupDir, METADATA)], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', process.env.ARTIFACT_STORE_TEST_POSTGRES_URL!], { input: sql.replaceAll(metadataSchema(fromDataDir), metadataSchema(intoDataDir)), stdio: ['pipe', 'ignore', 'pipe'] });
}

/** The registry's metadata, read as the test's side channel: the SQLite file, or its schema in test mode. */
const metadata = (dataDir: string): Database.Database => openMetadata(dataDir, { readonly: true });

const work = mkdtempSync(join(tmpdir(), 'as-backup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[], dataDir: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_AUTH: 'token', ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function push(url: string, auth: string, repo: string, tag: string, content: Buffer): Promise<string> {
  const h = { Authorization: auth };
  const digest = sha256(content);
  expect((await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: content, headers: h })).status).toBe(201);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: content.length }, layers: [] });
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { ...h, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  expect(res.status).toBe(201);
  return res.headers.get('docker-content-digest')!;
}

it('backup while serving → restore into a fresh data dir → same image pulls, old token valid, events verify', async () => {
  const reg = await startTestRegistry({ auth: 'token' });
  const admin = basic('root', PASSWORD);
  await withIdentities(reg.dataDir, async (_ids, s) => void (await s.user('root', true)));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', backup: 'test' }));
  const digest = await push(reg.url, admin, 'root/app', 'v1', config);
  // A signed checkpoint, so `events verify` checks the restored signing key too.
  expect((await fetch(`${reg.url}/api/v1/events/checkpoints`, { method: 'POST', headers: { Authorization: admin } })).status).toBeLessThan(300);
  const tok = await fetch(`${reg.url}/token?service=artifact-store&scope=repository:root/app:pull`, { headers: { Authorization: admin } });
  const { token } = (await tok.json()) as { token: string };

  const backupDir = join(work, 'backup');
  // Writes keep going during the backup (online); the backup must still be consistent.
  const writing = (async () => {
    for (let i = 0; i < 5; i++) await push(reg.url, admin, 'root/busy', `t${i}`, Buffer.from(`{"n":${i}}`));
  })();
  const out = await cli(['backup', backupDir], reg.dataDir);
  await writing;
  expect(out.stderr).toBe('');
  expect(out.code).toBe(0);
  const report = JSON.parse(out.stdout) as { blobs: { files: number }; keys: string[] };
  expect(report.blobs.files).toBeGreaterThanOrEqual(1);
  expect(report.keys).toEqual(expect.arrayContaining(['auth/token-signing-key.jwk', 'auth/event-log-signing-key.pem']));
  expect(statSync(backupDir).mode & 0o777).toBe(0o700);
  expect(statSync(join(backupDir, METADATA)).mode & 0o077).toBe(0);
  // Backing up into a non-empty directory is refused (never a mixed backup).
  expect((await cli(['backup', backupDir], reg.dataDir)).code).toBe(2);
  await reg.stop(); // removes the original data directory: the restore depends on the backup alone

  const restored = join(work, 'restored');
  cpSync(backupDir, restored, { recursive: true });
  expect(readdirSync(restored)).toEqual(expect.arrayContaining([METADATA, 'blobs', 'auth']));
  restoreMetadata(backupDir, reg.dataDir, restored);
  const again = await startTestRegistry({ auth: 'token' }, restored);
  try {
    const m = await fetch(`${again.url}/v2/root/app/manifests/v1`, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(m.status).toBe(200);
    expect(m.headers.get('docker-content-digest')).toBe(digest);
    const b = await fetch(`${again.url}/v2/root/app/blobs/${sha256(config)}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(b.status).toBe(200);
    expect(Buffer.from(await b.arrayBuffer()).equals(config)).toBe(true);
    // Every tag the snapshot knows has its blob (none lost between the database and blob copies).
    const tags = (await (await fetch(`${again.url}/v2/root/busy/tags/list`, { headers: { Authorization: admin } })).json()) as { tags: string[] | null };
    for (const t of tags.tags ?? []) {
      const mt = await fetch(`${again.url}/v2/root/busy/manifests/${t}`, { headers: { Authorization: admin, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const cfg = ((await mt.json()) as { config: { digest: string } }).config.digest;
      expect((await fetch(`${again.url}/v2/root/busy/blobs/${cfg}`, { method: 'HEAD', headers: { Authorization: admin } })).status).toBe(200);
    }
  } finally {
    await again.stop();
  }
  const verify = await cli(['events', 'verify'], restored);
  expect(verify.stderr).toBe('');
  expect(verify.code).toBe(0);
  expect(verify.stdout).toMatch(/event log intact: \d+ events, [1-9]\d* signed checkpoints verified/);
}, 120_000);

it('on S3: blobs streamed from the bucket (digest-checked, memory flat), GC held off while it runs, restorable to fs or to a bucket', async () => {
  const s3 = await startS3Server();
  const s3Settings = { storage: 's3', s3Endpoint: s3.endpoint, s3Bucket: s3.bucket, s3Region: 'us-east-1', s3ForcePathStyle: true, s3AccessKeyId: s3.accessKeyId, s3SecretAccessKey: s3.secretAccessKey };
  const s3Env = { ARTIFACT_STORE_STORAGE: 's3', ARTIFACT_STORE_S3_ENDPOINT: s3.endpoint, ARTIFACT_STORE_S3_BUCKET: s3.bucket, ARTIFACT_STORE_S3_REGION: 'us-east-1', ARTIFACT_STORE_S3_FORCE_PATH_STYLE: 'true', ARTIFACT_STORE_S3_ACCESS_KEY_ID: s3.accessKeyId, ARTIFACT_STORE_S3_SECRET_ACCESS_KEY: s3.secretAccessKey, ARTIFACT_STORE_S3_PREFIX: 'live' };
  const reg = await startTestRegistry({ auth: 'token', ...s3Settings, s3Prefix: 'live' });
  const admin = basic('root', PASSWORD);
  const restoredDirs: string[] = [];
  try {
    await withIdentities(reg.dataDir, async (_ids, s) => void (await s.user('root', true)));
    // A 128 MiB layer: a backup that buffered a blob would lift its peak memory by at least that.
    const layer = randomBytes(128 * 1024 * 1024);
    const layerDigest = sha256(layer);
    expect((await fetch(`${reg.url}/v2/root/big/blobs/uploads/?digest=${layerDigest}`, { method: 'POST', body: layer, headers: { Authorization: admin } })).status).toBe(201);
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    expect((await fetch(`${reg.url}/v2/root/big/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config, headers: { Authorization: admin } })).status).toBe(201);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }] });
    expect((await fetch(`${reg.url}/v2/root/big/manifests/v1`, { method: 'PUT', body: manifest, headers: { Authorization: admin, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);

    // GC is refused while the backup holds the lease (seen in gc_state), and runs again after it.
    const backupDir = join(work, 's3-backup');
    const running = cli(['backup', backupDir], reg.dataDir, s3Env);
    const state = metadata(reg.dataDir);
    let held = false;
    for (let i = 0; i < 400 && !held; i++) {
      held = /\/backup$/.test((state.prepare('SELECT holder FROM gc_state WHERE id = 1').get() as { holder: string | null }).holder ?? '');
      if (!held) await new Promise((r) => setTimeout(r, 25));
    }
    expect(held).toBe(true);
    const gcDuring = await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', headers: { Authorization: admin, 'Content-Type': 'application/json' }, body: '{"dryRun":false}' });
    const out = await running;
    state.close();
    expect(gcDuring.status).toBe(409);
    // The AWS SDK warns about Node 20 on stderr; no error of ours or a stack may appear there.
    expect(out.stderr).not.toMatch(/artifact-store:|\w*Error\b|\n\s+at /);
    expect(out.code).toBe(0);
    const report = JSON.parse(out.stdout) as { blobs: { storage: string; files: number; bytes: number; missing: string[]; rssMiB: { before: number; peak: number } } };
    // Every blob the snapshot names (ours and the registry's own, e.g. family documents), byte for byte.
    // (On PostgreSQL the live schema: nothing was written since the dump.)
    const snapshot = onPostgres ? metadata(reg.dataDir) : new Database(join(backupDir, 'metadata.db'), { readonly: true });
    const named = snapshot.prepare('SELECT count(*) AS n, sum(size) AS bytes FROM blobs').get() as { n: number; bytes: number };
    snapshot.close();
    expect(report.blobs).toMatchObject({ storage: 's3', files: named.n, bytes: named.bytes, missing: [] });
    expect(report.blobs.bytes).toBeGreaterThan(layer.length);
    const { before, peak } = report.blobs.rssMiB;
    console.log(`S3 backup: ${report.blobs.files} blobs, ${(report.blobs.bytes / 2 ** 20).toFixed(1)} MiB; resident ${before} MiB before the copy, at most ${peak} MiB during it`);
    // Streaming leaves some garbage until V8 collects it (the AWS SDK alone: ~+35 MiB for any
    // size of GET), but it levels off; holding the layer would add its full 128 MiB.
    expect(peak - before).toBeLessThan(90);
    expect((await fetch(`${reg.url}/api/v1/gc`, { method: 'POST', headers: { Authorization: admin, 'Content-Type': 'application/json' }, body: '{"dryRun":true}' })).status).toBe(200);

    // Restore 1: the backup as a storage: fs data directory.
    const asFs = join(work, 's3-restored-fs');
    cpSync(backupDir, asFs, { recursive: true });
    restoreMetadata(backupDir, reg.dataDir, asFs);
    restoredDirs.push(asFs);
    const fsReg = await startTestRegistry({ auth: 'token' }, asFs);
    try {
      const b = await fetch(`${fsReg.url}/v2/root/big/blobs/${layerDigest}`, { headers: { Authorization: admin } });
      expect(b.status).toBe(200);
      expect(sha256(Buffer.from(await b.arrayBuffer()))).toBe(layerDigest);
    } finally {
      await fsReg.stop();
    }
    // Restore 2: blobs/ copied back into a bucket under a new prefix, the database and keys as the data directory.
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    for (const f of readdirSync(join(backupDir, 'blobs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile())) {
      const path = join(f.parentPath, f.name);
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `restored/${relative(backupDir, path)}`, Body: readFileSync(path) }));
    }
    // A blob the database names but the bucket lost: the backup says so and exits 1.
    const hex = sha256(config).slice('sha256:'.length);
    await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `live/blobs/sha256/${hex.slice(0, 2)}/${hex}` }));
    const incomplete = await cli(['backup', join(work, 's3-incomplete')], reg.dataDir, s3Env);
    expect(incomplete.code).toBe(1);
    expect(incomplete.stderr).toMatch(/artifact-store: backup incomplete: 1 blob\(s\) the database names are not in the bucket/);
    expect((JSON.parse(incomplete.stdout) as { blobs: { missing: string[] } }).blobs.missing).toEqual([sha256(config)]);
    client.destroy();
    const asS3 = join(work, 's3-restored-s3');
    cpSync(backupDir, asS3, { recursive: true, filter: (src) => !src.startsWith(join(backupDir, 'blobs')) });
    restoreMetadata(backupDir, reg.dataDir, asS3);
    restoredDirs.push(asS3);
    const s3Reg = await startTestRegistry({ auth: 'token', ...s3Settings, s3Prefix: 'restored' }, asS3);
    try {
      const m = await fetch(`${s3Reg.url}/v2/root/big/manifests/v1`, { headers: { Authorization: admin, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(m.status).toBe(200);
      const b = await fetch(`${s3Reg.url}/v2/root/big/blobs/${layerDigest}`, { headers: { Authorization: admin } });
      expect(sha256(Buffer.from(await b.arrayBuffer()))).toBe(layerDigest);
    } finally {
      await s3Reg.stop();
    }
  } finally {
    await reg.stop();
    await s3.stop();
  }
}, 180_000);
