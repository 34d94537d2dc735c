/**
 * Starts a real artifact-store for tests: through startRegistry in-process (real HTTP via
 * @hono/node-server, SQLite file and blobs in a temp dir), or as a separate `node` process
 * running the built server, the way operators run it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { startRegistry } from '../../src/server.js';

export interface TestRegistry {
  url: string;
  dataDir: string;
  /** Stops the server; removes the data directory if this helper created it. */
  stop(): Promise<void>;
  /** Stops the server and starts a new one on the same data directory (a restart). */
  restart(): Promise<TestRegistry>;
}

/**
 * An in-process registry on a free port. Without `dataDir` it gets a temporary one that
 * `stop()` removes; a given `dataDir` is left in place.
 */
export function startTestRegistry(settings: Record<string, unknown> = {}, dataDir?: string): Promise<TestRegistry> {
  return launch(settings, dataDir ?? mkdtempSync(join(tmpdir(), 'as-test-')), dataDir === undefined);
}

async function launch(settings: Record<string, unknown>, dir: string, owned: boolean): Promise<TestRegistry> {
  const config = loadConfig({}, { port: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent', fsync: false, auth: 'none', rateLimitPerSecond: 0, ...settings });
  const reg = await startRegistry(config, createLogger(config.logLevel));
  return {
    url: reg.url,
    dataDir: dir,
    async stop() {
      await reg.close();
      if (owned) removeDir(dir);
    },
    async restart() {
      await reg.close();
      return launch(settings, dir, owned);
    },
  };
}

export interface RegistryProcess {
  url: string;
  dataDir: string;
  proc: ChildProcess;
  output(): string;
  /** SIGTERM, wait for the exit, remove the data directory. */
  stop(): Promise<void>;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as import('node:net').AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface ProcessOptions {
  /** The environment under the test's settings (default: this process's). */
  baseEnv?: NodeJS.ProcessEnv;
  /** How long the first /healthz may take. */
  startupMs?: number;
}

/** Runs `node dist/src/main.js` (built by `npm run build`, which `npm test` does first). */
export async function startRegistryProcess(env: Record<string, string> = {}, opts: ProcessOptions = {}): Promise<RegistryProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'as-proc-'));
  const port = await freePort();
  let output = '';
  const proc = spawn(process.execPath, ['dist/src/main.js'], {
    env: { ...(opts.baseEnv ?? process.env), ARTIFACT_STORE_PORT: String(port), ARTIFACT_STORE_HOST: '127.0.0.1', ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_LOG_LEVEL: 'info', ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_RATE_LIMIT_PER_SECOND: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  // Generous: on a machine at load ~15 a first start (migrations, first-run scrypt) took > 20 s.
  const deadline = Date.now() + (opts.startupMs ?? 60_000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`registry exited early:\n${output}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      removeDir(dataDir);
      throw new Error(`registry did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    dataDir,
    proc,
    output: () => output,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      removeDir(dataDir);
    },
  };
}

/**
 * After-each cleanup for crash tests: a process still running (perhaps frozen with SIGSTOP) is
 * resumed and stopped; one that was killed leaves only its data directory to remove.
 */
export async function disposeRegistryProcess(reg: RegistryProcess | undefined): Promise<void> {
  if (!reg) return;
  if (reg.proc.exitCode === null && reg.proc.signalCode === null) {
    reg.proc.kill('SIGCONT');
    await reg.stop();
  } else removeDir(reg.dataDir);
}
