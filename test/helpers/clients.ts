/**
 * Helpers for driving real OCI clients (containerd's ctr, podman) from e2e tests: running a
 * command with its output kept for the failure message, requiring a binary (a missing client
 * fails the test, it never skips) and a private containerd daemon per test file. Images come
 * from oci-layout.ts.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
export { makeRealImage, sha256, writeImageLayout, writeIndexLayout, type RealImage } from './oci-layout.js';
import { removeDir } from './registry.js';

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command; rejects with its exit status, stdout and stderr in the message. */
export function runCommand(cmd: string, args: string[], opts: { timeout?: number; env?: Record<string, string>; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeout ?? 60_000, env: { ...process.env, ...opts.env }, cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code ?? err.signal ?? err.message}):\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
        } else resolve({ stdout, stderr });
      },
    );
  });
}

/** Whether a client binary is on PATH (tests that run without it outside CI ask this). */
export function hasBinary(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of a client binary, or throws with the Debian package to install (tests fail, never skip). */
export function requireBinary(name: string, debianPackage: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed: run \`apt-get install -y ${debianPackage}\` (CI's .ci/run installs it)`);
  }
}

export async function sha256OfCommand(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => hash.update(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(`sha256:${hash.digest('hex')}`) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}

export interface Podman {
  dir: string;
  /** Runs `podman <isolating flags> ...args`. */
  podman(...args: string[]): Promise<RunResult>;
  stop(): void;
}

/**
 * A podman whose every piece of state lives in one temp dir: storage (vfs driver, no overlay or
 * fuse needed) under --root/--runroot, libpod's tmpdir, file events (no journald), cgroupfs (no
 * systemd), and containers.conf / storage.conf / registries.conf of its own so the machine's
 * /etc/containers cannot change what the test does. Only pulls and pushes: no container is run.
 * (c/image still keeps its blob-info cache in /var/lib/containers/cache, as skopeo does.)
 */
export function makePodman(): Podman {
  const bin = requireBinary('podman', 'podman');
  const dir = mkdtempSync(join(tmpdir(), 'as-podman-'));
  const root = join(dir, 'root');
  const runroot = join(dir, 'runroot');
  const conf = join(dir, 'containers.conf');
  const storageConf = join(dir, 'storage.conf');
  const registriesConf = join(dir, 'registries.conf');
  writeFileSync(conf, '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
  writeFileSync(storageConf, `[storage]\ndriver = "vfs"\ngraphroot = "${root}"\nrunroot = "${runroot}"\n`);
  writeFileSync(registriesConf, 'unqualified-search-registries = []\nshort-name-mode = "enforcing"\n');
  writeFileSync(join(dir, 'auth.json'), '{"auths":{}}\n');
  const env = {
    CONTAINERS_CONF: conf,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
  };
  const flags = ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs', '--tmpdir', join(dir, 'tmp'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
  return {
    dir,
    podman: (...args: string[]) => runCommand(bin, [...flags, ...args], { env }),
    stop: () => removeDir(dir),
  };
}

export interface Containerd {
  address: string;
  dir: string;
  proc: ChildProcess;
  output: () => string;
  /** Runs `ctr --address <socket> ...args`. */
  ctr(...args: string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

/**
 * Starts a private containerd (own root, state, socket; CRI, /opt/containerd and every snapshotter
 * but `native` off, so it needs no kernel modules, mounts or special filesystems) as a child
 * process, and waits until `ctr version` answers. ctr unpacks with the `native` snapshotter.
 */
export async function startContainerd(): Promise<Containerd> {
  const containerdBin = requireBinary('containerd', 'containerd');
  const ctrBin = requireBinary('ctr', 'containerd');
  const dir = mkdtempSync(join(tmpdir(), 'as-containerd-'));
  const address = join(dir, 'containerd.sock');
  const configPath = join(dir, 'config.toml');
  writeFileSync(
    configPath,
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = [',
      '  "io.containerd.grpc.v1.cri",',
      '  "io.containerd.snapshotter.v1.aufs",',
      '  "io.containerd.snapshotter.v1.btrfs",',
      '  "io.containerd.snapshotter.v1.devmapper",',
      '  "io.containerd.snapshotter.v1.overlayfs",',
      '  "io.containerd.snapshotter.v1.zfs",',
      '  "io.containerd.internal.v1.opt",',
      ']',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  let output = '';
  const proc = spawn(containerdBin, ['--config', configPath, '--root', join(dir, 'root'), '--state', join(dir, 'state'), '--address', address, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const ctr = (...args: string[]): Promise<RunResult> => runCommand(ctrBin, ['--address', address, ...args], { env: { CONTAINERD_SNAPSHOTTER: 'native' } });
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    removeDir(dir);
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) {
      removeDir(dir);
      throw new Error(`containerd exited early (${proc.exitCode}):\n${output}`);
    }
    if (existsSync(address)) {
      try {
        await ctr('version');
        break;
      } catch {
        /* not serving yet */
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { address, dir, proc, output: () => output, ctr, stop };
}
