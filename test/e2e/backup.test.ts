/**
 * Backup and restore (issue #19): `backup <dir>` while the registry runs and takes writes,
 * then a registry started on a fresh data directory made from the backup serves the same
 * image, accepts a token the old registry issued (the signing key came along) and
 * `events verify` passes (chain and checkpoints).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { sha256 } from '../helpers/http.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry } from '../helpers/registry.js';

const work = mkdtempSync(join(tmpdir(), 'as-backup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[], dataDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_AUTH: 'token' } }, (err, stdout, stderr) =>
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
  expect(statSync(join(backupDir, 'metadata.db')).mode & 0o077).toBe(0);
  // Backing up into a non-empty directory is refused (never a mixed backup).
  expect((await cli(['backup', backupDir], reg.dataDir)).code).toBe(2);
  await reg.stop(); // removes the original data directory: the restore depends on the backup alone

  const restored = join(work, 'restored');
  cpSync(backupDir, restored, { recursive: true });
  expect(readdirSync(restored)).toEqual(expect.arrayContaining(['metadata.db', 'blobs', 'auth']));
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
