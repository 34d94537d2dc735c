/** The server as operators run it: a `node` process, JSON logs, graceful SIGTERM. */
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomBlob, sha256 } from '../helpers/http.js';
import { removeDir, startRegistryProcess } from '../helpers/registry.js';

/**
 * Starts the registry the way the README says (`npm start`, or the `artifact-store serve` bin
 * through npx), waits for /readyz, sends SIGTERM to THAT process (npm, not node) and resolves
 * once every process holding its stdout has exited, with what they logged.
 */
async function startedAsDocumented(command: string, args: string[]): Promise<{ url: string; ms: number; stop(): Promise<{ output: string; exitedInMs: number }> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'as-npm-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const started = Date.now();
  const proc = spawn(command, args, {
    env: { ...process.env, ARTIFACT_STORE_PORT: String(port), ARTIFACT_STORE_HOST: '127.0.0.1', ARTIFACT_STORE_DATA_DIR: join(dataDir, 'data'), ARTIFACT_STORE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  // 'close' fires when the last writer of the pipes (npm, a shell, node) has gone.
  const closed = new Promise<void>((r) => proc.once('close', () => r()));
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`exited early:\n${output}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break;
    if (Date.now() - started > 60_000) {
      proc.kill('SIGKILL');
      throw new Error(`not ready in 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const ms = Date.now() - started;
  return {
    url,
    ms,
    async stop() {
      const t0 = Date.now();
      proc.kill('SIGTERM');
      const hung = await Promise.race([closed.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 30_000))]);
      removeDir(dataDir);
      if (hung) throw new Error(`still running 30 s after SIGTERM to ${command}:\n${output}`);
      return { output, exitedInMs: Date.now() - t0 };
    },
  };
}

describe('server process', () => {
  it('finishes an in-flight upload on SIGTERM, then exits 0 with the database closed', async () => {
    const reg = await startRegistryProcess();
    try {
      const post = await fetch(`${reg.url}/v2/proc/app/blobs/uploads/`, { method: 'POST' });
      const loc = post.headers.get('location')!;
      const blob = randomBlob(200_000);
      const url = new URL(reg.url + loc);
      const done = new Promise<number>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PATCH', headers: { 'Content-Length': String(blob.length), 'Content-Range': `0-${blob.length - 1}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.write(blob.subarray(0, 1000));
        setTimeout(() => {
          reg.proc.kill('SIGTERM');
          setTimeout(() => req.end(blob.subarray(1000)), 300);
        }, 200);
      });
      expect(await done).toBe(202);
      expect(await reg.exited()).toBe(0);
      const lines = reg.output().trim().split('\n');
      for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
      expect(lines.some((l) => (JSON.parse(l) as { msg: string }).msg === 'artifact-store stopped')).toBe(true);
    } finally {
      await reg.stop();
    }
  });

  it('keeps serving, and stops on SIGTERM, after whatever reads its logs goes away', async () => {
    const reg = await startRegistryProcess({ ARTIFACT_STORE_LOG_LEVEL: 'debug' });
    try {
      reg.proc.stdout!.destroy();
      reg.proc.stderr!.destroy();
      for (let i = 0; i < 3; i++) expect((await fetch(`${reg.url}/v2/`)).status).toBe(200);
      expect(await Promise.race([reg.kill('SIGTERM'), new Promise((r) => setTimeout(() => r('hung'), 10_000))])).toBe(0);
    } finally {
      await reg.stop();
    }
  });

  it('`npm start` serves the built output (no compile) and SIGTERM to npm stops the server', async () => {
    const built = statSync('dist/src/main.js').mtimeMs;
    const reg = await startedAsDocumented('npm', ['start']);
    expect((await fetch(`${reg.url}/healthz`)).status).toBe(200);
    const { output } = await reg.stop();
    expect(output).toContain('"msg":"artifact-store stopped"');
    await expect(fetch(`${reg.url}/healthz`)).rejects.toThrow();
    expect(statSync('dist/src/main.js').mtimeMs).toBe(built);
  });

  it('`npm run cli -- serve` (a shell between npm and node, no exec) also stops on SIGTERM to npm', async () => {
    const reg = await startedAsDocumented('npm', ['run', 'cli', '--', 'serve']);
    const { output } = await reg.stop();
    expect(output).toContain('"msg":"artifact-store stopped"');
    await expect(fetch(`${reg.url}/healthz`)).rejects.toThrow();
  });

  it('writes one access-log line per request at info: route template, status, bytes, time, subject, client, request id', async () => {
    const reg = await startRegistryProcess({ ARTIFACT_STORE_AUTH: 'token' });
    try {
      const password = (await import('node:fs')).readFileSync(join(reg.dataDir, 'initial-admin-password'), 'utf8').trim();
      const auth = { Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` };
      expect((await fetch(`${reg.url}/v2/team/app/tags/list?n=1`, { headers: { 'X-Request-Id': 'trace-anon-1' } })).status).toBe(401);
      expect((await fetch(`${reg.url}/v2/`, { headers: { ...auth, 'X-Request-Id': 'trace-admin-1' } })).status).toBe(200);
      await reg.stop();
      const lines = reg.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ msg: 'artifact-store starting', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
      const anon = lines.find((l) => l.requestId === 'trace-anon-1');
      expect(anon).toMatchObject({ level: 30, msg: 'request', method: 'GET', route: '/v2/{name}/tags/list', path: '/v2/team/app/tags/list', status: 401, subject: 'anonymous', client: '127.0.0.1' });
      expect(anon!.bytesOut).toBeGreaterThan(0);
      expect(typeof anon!.ms).toBe('number');
      expect(JSON.stringify(anon)).not.toContain('n=1'); // no query strings
      expect(lines.find((l) => l.requestId === 'trace-admin-1')).toMatchObject({ route: '/v2/', status: 200, subject: 'admin' });
      expect(reg.output()).not.toContain(password);
    } finally {
      await reg.stop();
    }
  });

  it('refuses to start with an invalid setting, naming the variable', async () => {
    const err = (await startRegistryProcess({ ARTIFACT_STORE_STORAGE: 'floppy' }).then(() => undefined, (e: unknown) => e)) as Error;
    expect(err.message).toMatch(/ARTIFACT_STORE_STORAGE/);
    // One message for the operator, no stack trace.
    expect(err.message).toMatch(/^artifact-store: invalid configuration/m);
    expect(err.message).not.toMatch(/\n\s+at /);
  });

  it('serves a blob pushed before a restart (data survives on disk)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'as-restart-'));
    const blob = randomBlob(1000);
    try {
      const first = await startRegistryProcess({ ARTIFACT_STORE_DATA_DIR: dataDir });
      expect((await fetch(`${first.url}/v2/p/keep/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob })).status).toBe(201);
      await first.stop();
      const second = await startRegistryProcess({ ARTIFACT_STORE_DATA_DIR: dataDir });
      try {
        const res = await fetch(`${second.url}/v2/p/keep/blobs/${sha256(blob)}`);
        expect(Buffer.from(await res.arrayBuffer()).equals(blob)).toBe(true);
      } finally {
        await second.stop();
      }
    } finally {
      removeDir(dataDir);
    }
  });
});
