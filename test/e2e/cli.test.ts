/** The operator CLI against a data directory, then the server using what it created. */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { basic } from '../helpers/identities.js';
import { removeDir, startTestRegistry } from '../helpers/registry.js';

const dataDir = mkdtempSync(join(tmpdir(), 'as-cli-'));
afterAll(() => removeDir(dataDir));

function cli(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['dist/src/cli.js', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(stdin);
  });
}

describe('cli', () => {
  it('bootstraps an admin, an org, a member and a key; refuses weak passwords and taken names', async () => {
    expect((await cli(['user', 'create', 'admin', '--admin', '--password-stdin'], 'short\n')).code).toBe(2);
    expect(await cli(['user', 'create', 'admin', '--admin', '--password-stdin'], 'a-long-admin-password\n')).toMatchObject({ code: 0, stdout: 'created user admin (administrator)\n' });
    expect((await cli(['user', 'create', 'admin', '--password-stdin'], 'another-long-password\n')).stderr).toMatch(/taken/);
    expect((await cli(['user', 'create', 'dev', '--password-stdin'], 'developer-password\n')).code).toBe(0);
    expect((await cli(['org', 'create', 'team', '--owner', 'admin'])).code).toBe(0);
    expect((await cli(['org', 'create', 'dev', '--owner', 'admin'])).stderr).toMatch(/taken/);
    expect((await cli(['org', 'member', 'team', 'dev', 'maintainer'])).code).toBe(0);
    expect((await cli(['repo', 'visibility', 'team/site', 'public'])).code).toBe(0);
    const key = await cli(['key', 'create', 'dev', '--name', 'ci', '--scope', 'publish', '--repo', 'team/*']);
    expect(key.code).toBe(0);
    const token = key.stdout.trim();
    expect(token).toMatch(/^ask_[0-9a-f]{12}_/);

    const reg = await startTestRegistry({ auth: 'token' }, dataDir);
    try {
      const push = await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: basic('ci', token) } });
      expect(push.status).toBe(202);
      const other = await fetch(`${reg.url}/v2/dev/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: basic('ci', token) } });
      expect(other.status).toBe(403);
      const id = token.slice(4, 16);
      expect((await cli(['key', 'revoke', id])).code).toBe(0);
      const after = await fetch(`${reg.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: basic('ci', token) } });
      expect(after.status).toBe(401);
    } finally {
      await reg.stop();
    }
    expect(await cli(['events', 'verify'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^event log intact: \d+ events\n$/) });
  });
});
