/**
 * Starts a real artifact-store for tests: through startRegistry in-process (real HTTP via
 * @hono/node-server, SQLite file and blobs in a temp dir), or as a separate `node` process
 * running the built server, the way operators run it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
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
  /** The directory the process runs on: ARTIFACT_STORE_DATA_DIR when the test gave one, else a temporary one of this helper's. */
  dataDir: string;
  proc: ChildProcess;
  output(): string;
  /** Neither exited nor ended by a signal yet. */
  running(): boolean;
  /** The exit code (null when a signal ended it), once the process has exited; at once if it already has. */
  exited(): Promise<number | null>;
  /**
   * Sends `signal` (one that ends it) and resolves as exited() does. Rejects if the process had
   * already exited: a test that means to end it must not pass on one that ended by itself.
   */
  kill(signal: NodeJS.Signals): Promise<number | null>;
  /** SIGTERM if still running, wait for the exit, remove the data directory if this helper made it. */
  stop(): Promise<void>;
  /**
   * A new process with the same settings on the same data directory, which then belongs to it;
   * this one is stopped first if it still runs (after a crash test's kill it does not).
   */
  restart(): Promise<RegistryProcess>;
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
  /** How long the first ready answer may take. */
  startupMs?: number;
  /** Node's arguments (default the build: `dist/src/main.js`). */
  entry?: string[];
  /** What answers 200 once it is ready (default /healthz). */
  readyPath?: string;
  /** How often that is asked (default 100 ms). */
  pollMs?: number;
}

/**
 * Runs `node dist/src/main.js` (built by `npm run build`, which `npm test` does first) on a free
 * loopback port. Without ARTIFACT_STORE_DATA_DIR in `env` it gets a temporary data directory that
 * stop() removes; a given one is the test's to remove.
 */
export async function startRegistryProcess(env: Record<string, string> = {}, opts: ProcessOptions = {}): Promise<RegistryProcess> {
  const given = env.ARTIFACT_STORE_DATA_DIR;
  const dataDir = given ?? mkdtempSync(join(tmpdir(), 'as-proc-'));
  try {
    return await launchProcess(env, opts, dataDir, given === undefined);
  } catch (err) {
    if (given === undefined) removeDir(dataDir);
    throw err;
  }
}

async function launchProcess(env: Record<string, string>, opts: ProcessOptions, dataDir: string, owned: boolean): Promise<RegistryProcess> {
  const port = await freePort();
  let output = '';
  const proc = spawn(process.execPath, opts.entry ?? ['dist/src/main.js'], {
    env: { ...(opts.baseEnv ?? process.env), ARTIFACT_STORE_PORT: String(port), ARTIFACT_STORE_HOST: '127.0.0.1', ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_LOG_LEVEL: 'info', ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_RATE_LIMIT_PER_SECOND: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Listened for from the start, so a kill or a crash is never missed however late a test asks.
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
  const url = `http://127.0.0.1:${port}`;
  // Generous: on a machine at load ~15 a first start (migrations, first-run scrypt) took > 20 s.
  const deadline = Date.now() + (opts.startupMs ?? 60_000);
  for (;;) {
    if (!running()) throw new Error(`registry exited early:\n${output}`);
    try {
      if ((await fetch(`${url}${opts.readyPath ?? '/healthz'}`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`registry did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
  // For clean-up: a process that is already gone is fine.
  const end = (signal: NodeJS.Signals): Promise<number | null> => {
    if (running()) proc.kill(signal);
    return exit;
  };
  return {
    url,
    dataDir,
    proc,
    output: () => output,
    running,
    exited: () => exit,
    kill(signal) {
      if (!running()) return Promise.reject(new Error(`registry process had already exited (${proc.exitCode ?? proc.signalCode}) before ${signal}:\n${output}`));
      return end(signal);
    },
    async stop() {
      await end('SIGTERM');
      if (owned) removeDir(dataDir);
    },
    async restart() {
      await end('SIGTERM');
      const next = await launchProcess({ ...env, ARTIFACT_STORE_DATA_DIR: dataDir }, opts, dataDir, owned);
      owned = false;
      return next;
    },
  };
}

/**
 * After-test cleanup for crash tests: a process still running (perhaps frozen with SIGSTOP) is
 * resumed and ended with `signal`; then its data directory goes if this helper made it.
 */
export async function disposeRegistryProcess(reg: RegistryProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!reg) return;
  if (reg.running()) {
    // SIGKILL ends a stopped process as it is.
    if (signal !== 'SIGKILL') reg.proc.kill('SIGCONT');
    await reg.kill(signal);
  }
  await reg.stop();
}

/**
 * Registers an afterEach (call it inside a describe) that disposes, newest first, each process
 * passed to the returned function during the test, ended with the signal given with it.
 */
export function disposeAfterEach(): (reg: RegistryProcess, signal?: NodeJS.Signals) => RegistryProcess {
  const started: [RegistryProcess, NodeJS.Signals | undefined][] = [];
  afterEach(async () => {
    for (const [reg, signal] of started.splice(0).reverse()) await disposeRegistryProcess(reg, signal);
  });
  return (reg, signal) => {
    started.push([reg, signal]);
    return reg;
  };
}
