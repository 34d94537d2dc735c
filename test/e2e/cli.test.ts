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

function cli(args: string[], stdin = '', env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['dist/src/cli.js', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir, ...env } }, (err, stdout, stderr) =>
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
    expect(await cli(['events', 'verify'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^event log intact: \d+ events\b/) });
  });

  it('says what was wrong, in one message and without a stack trace (exit 2)', async () => {
    const noStack = (r: { stderr: string }) => expect(r.stderr).not.toMatch(/\n\s+at /);
    const unknownOption = await cli(['user', 'create', 'x', '--frobnicate']);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toMatch(/^artifact-store: Unknown option '--frobnicate'/);
    noStack(unknownOption);
    const noOwner = await cli(['org', 'create', 'acme']);
    expect(noOwner).toMatchObject({ code: 2, stderr: expect.stringMatching(/^artifact-store: org create: --owner <user> is required/) });
    expect((await cli(['org', 'member', 'team', 'dev', 'boss'])).stderr).toMatch(/the role must be owner, maintainer, reader or remove, not "boss"/);
    expect((await cli(['frob', 'nicate'])).stderr).toMatch(/^artifact-store: unknown command "frob nicate"/);
    expect((await cli(['user', 'create'])).stderr).toMatch(/^artifact-store: user create: which user\?/);
    const badConfig = await cli(['events', 'verify'], '', { ARTIFACT_STORE_FSYNC: 'maybe' });
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toMatch(/^artifact-store: [\s\S]*ARTIFACT_STORE_FSYNC/);
    noStack(badConfig);
    const missingFile = await cli(['events', 'verify'], '', { ARTIFACT_STORE_CONFIG: join(dataDir, 'nope.yaml') });
    expect(missingFile).toMatchObject({ code: 2, stderr: `artifact-store: config file ${join(dataDir, 'nope.yaml')} not found (ARTIFACT_STORE_CONFIG names it)\n` });
  });

  it('prompts for a new password on a terminal without echoing it', async () => {
    // A pseudo-terminal from python3 (CI installs it; the native build needs it anyway).
    const driver = [
      'import os, pty, sys',
      'pid, fd = pty.fork()',
      'if pid == 0: os.execv(sys.argv[1], sys.argv[1:])',
      'out = b""',
      'def until(token):',
      '    global out',
      '    while token not in out: out += os.read(fd, 1024)',
      'until(b"Password"); os.write(fd, b"tty-secret-password-1\\r")',
      'until(b"Repeat"); os.write(fd, b"tty-secret-password-1\\r")',
      'while True:',
      '    try: chunk = os.read(fd, 1024)',
      '    except OSError: break',
      '    if not chunk: break',
      '    out += chunk',
      '_, status = os.waitpid(pid, 0)',
      'sys.stdout.write(out.decode()); sys.exit(os.WEXITSTATUS(status))',
    ].join('\n');
    const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile('python3', ['-c', driver, process.execPath, 'bin/artifact-store.js', 'user', 'create', 'tty-user'], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir }, timeout: 30_000 }, (err, stdout) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }),
      ),
    );
    expect(out.stdout).toContain('created user tty-user');
    expect(out.stdout).not.toContain('tty-secret-password-1');
    expect(out.code).toBe(0);
    const reg = await startTestRegistry({ auth: 'token' }, dataDir);
    try {
      expect((await fetch(`${reg.url}/v2/`, { headers: { Authorization: basic('tty-user', 'tty-secret-password-1') } })).status).toBe(200);
    } finally {
      await reg.stop();
    }
  });

  it('lists users and organisations, resets a password, deletes a user and an organisation (events check stays clean)', async () => {
    expect((await cli(['user', 'create', 'gone', '--password-stdin'], 'a-password-to-forget\n')).code).toBe(0);
    expect((await cli(['org', 'create', 'doomed', '--owner', 'gone'])).code).toBe(0);
    expect((await cli(['key', 'create', 'gone', '--name', 'ci', '--scope', 'read'])).code).toBe(0);
    const users = await cli(['user', 'list']);
    expect(users.code).toBe(0);
    expect(users.stdout.split('\n')[0]).toMatch(/^USER\s+ADMIN\s+STATE\s+CREATED$/);
    expect(users.stdout).toMatch(/^admin\s+admin\s+enabled\s+\d{4}-/m);
    expect(users.stdout).toMatch(/^gone\s+-\s+enabled\s+/m);
    expect((await cli(['org', 'list'])).stdout).toMatch(/^doomed\s+gone\s+\d{4}-/m);

    expect(await cli(['user', 'password', 'dev', '--password-stdin'], 'reset-by-the-operator\n')).toMatchObject({ code: 0, stdout: expect.stringMatching(/password of dev changed/) });
    expect((await cli(['user', 'password', 'dev', '--password-stdin'], 'short\n')).code).toBe(2);

    const soleOwner = await cli(['user', 'delete', 'gone']);
    expect(soleOwner).toMatchObject({ code: 2, stderr: expect.stringMatching(/'gone' is the only owner of doomed/) });
    expect(await cli(['org', 'delete', 'doomed'])).toMatchObject({ code: 0, stdout: 'deleted organisation doomed (1 member(s) removed)\n' });
    expect(await cli(['user', 'delete', 'gone'])).toMatchObject({ code: 0, stdout: 'deleted user gone: 1 API key(s) revoked, removed from 0 organisation(s)\n' });
    expect((await cli(['user', 'delete', 'gone'])).stderr).toMatch(/no such user: gone/);
    expect((await cli(['org', 'delete', 'doomed'])).stderr).toMatch(/no such organisation: doomed/);
    expect((await cli(['user', 'delete', 'admin'])).stderr).toMatch(/last enabled administrator/);
    expect((await cli(['user', 'list'])).stdout).not.toMatch(/^gone/m);

    const reg = await startTestRegistry({ auth: 'token' }, dataDir);
    try {
      expect((await fetch(`${reg.url}/v2/`, { headers: { Authorization: basic('dev', 'reset-by-the-operator') } })).status).toBe(200);
      expect((await fetch(`${reg.url}/v2/`, { headers: { Authorization: basic('dev', 'developer-password') } })).status).toBe(401);
      expect((await fetch(`${reg.url}/v2/`, { headers: { Authorization: basic('gone', 'a-password-to-forget') } })).status).toBe(401);
    } finally {
      await reg.stop();
    }
    expect(await cli(['events', 'check'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/tables match a rebuild/) });
  });
});
