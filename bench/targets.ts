// Starting/stopping registries under test, free ports, and RSS sampling.
//
// A target spec is one of:
//   artifact-store        node dist/src/main.js (ARTIFACT_STORE_* env)
//   distribution          CNCF Distribution (docker-registry) with a temp config
//   http://host:port      an already running registry (not started or stopped)
//   cmd:<shell command>   any command; {port}, {host}, {dataDir} are substituted
//                         and the same values are exported as BENCH_PORT,
//                         BENCH_HOST, BENCH_DATA_DIR. It must serve GET /v2/ -> 200.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { HttpClient } from "./http.js";

export interface TargetSpec {
  label: string;
  spec: string;
  /** PID to sample RSS from when the target is an external URL. */
  pid?: number;
}

export interface StartOptions {
  repoRoot: string;
  distributionBin: string;
  log: (msg: string) => void;
}

export interface RunningTarget {
  label: string;
  description: string;
  baseUrl: string;
  /** Server process (for RSS sampling), if known. */
  pid?: number;
  client: HttpClient;
  /** Throws if a started server has exited unexpectedly. */
  assertAlive(): void;
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";

/** Stop functions of every server started and not yet stopped (including ones still starting). */
const live = new Set<() => Promise<void>>();

/** Stop every server this process started (for signal handlers and the watchdog). */
export async function stopAllStarted(): Promise<void> {
  await Promise.allSettled([...live].map((stop) => stop()));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function distributionConfig(dataDir: string, port: number): string {
  // Mirrors the packaged default (filesystem + in-memory blob descriptor cache)
  // minus auth; access log off so both servers log at "warn" only.
  return [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  cache:",
    "    blobdescriptor: inmemory",
    "  filesystem:",
    `    rootdirectory: ${dataDir}`,
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: ${HOST}:${port}`,
    "",
  ].join("\n");
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function waitReady(client: HttpClient, child: ChildProcess | undefined, logFile: string | undefined, label: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let lastErr = "";
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new Error(`${label} exited with code ${child.exitCode} before becoming ready\n${logFile ? tail(logFile) : ""}`);
    }
    let status = 0;
    try {
      status = (await client.request("GET", "/v2/", { timeoutMs: 2000 })).status;
      lastErr = `GET /v2/ -> ${status}`;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    if (status === 200) return;
    if (status === 401) throw new Error(`${label}: GET /v2/ -> 401; the bench needs a registry without authentication`);
    await sleep(100);
  }
  throw new Error(`${label} not ready after 60 s (${lastErr})\n${logFile ? tail(logFile) : ""}`);
}

export async function startTarget(t: TargetSpec, o: StartOptions): Promise<RunningTarget> {
  if (/^https?:\/\//.test(t.spec)) {
    const client = new HttpClient(t.spec);
    await waitReady(client, undefined, undefined, t.label);
    return {
      label: t.label,
      description: `external registry at ${t.spec}${t.pid ? ` (pid ${t.pid})` : ""}`,
      baseUrl: t.spec,
      ...(t.pid !== undefined ? { pid: t.pid } : {}),
      client,
      assertAlive: () => undefined,
      stop: async () => client.close(),
    };
  }

  const tmp = await mkdtemp(join(tmpdir(), `artifact-store-bench-${t.label.replace(/[^a-z0-9]+/gi, "_")}-`));
  const dataDir = join(tmp, "data");
  const port = await freePort();
  const logFile = join(tmp, "server.log");
  let cmd: string;
  let args: string[];
  let env: NodeJS.ProcessEnv = { ...process.env };
  let description: string;
  let cwd = o.repoRoot;

  if (t.spec === "distribution") {
    if (!existsSync(o.distributionBin)) {
      throw new Error(`${o.distributionBin} not found (apt-get install -y docker-registry, or set BENCH_DISTRIBUTION_BIN)`);
    }
    const cfg = join(tmp, "config.yml");
    writeFileSync(cfg, distributionConfig(dataDir, port));
    cmd = o.distributionBin;
    args = ["serve", cfg];
    description = `CNCF Distribution (${o.distributionBin} serve, filesystem storage, inmemory blob cache)`;
  } else if (t.spec === "artifact-store") {
    const main = join(o.repoRoot, "dist/src/main.js");
    if (!existsSync(main)) {
      throw new Error(`${main} not found: run \`npm run build\` first, or run only the baseline with --only=distribution`);
    }
    cmd = process.execPath;
    args = [main];
    cwd = tmp; // so a stray ./artifact-store.yaml in the repo is not picked up
    env = {
      // No auth and no rate limit (Distribution runs without either); overridable from the environment.
      ARTIFACT_STORE_AUTH: "none",
      ARTIFACT_STORE_RATE_LIMIT_PER_SECOND: "0",
      ...env,
      ARTIFACT_STORE_PORT: String(port),
      ARTIFACT_STORE_HOST: HOST,
      ARTIFACT_STORE_DATA_DIR: dataDir,
      ARTIFACT_STORE_LOG_LEVEL: "warn",
    };
    description = `node dist/src/main.js (filesystem data dir; auth none, rate limit off unless overridden by ARTIFACT_STORE_* env)`;
  } else if (t.spec.startsWith("cmd:")) {
    const line = t.spec
      .slice(4)
      .replaceAll("{port}", String(port))
      .replaceAll("{host}", HOST)
      .replaceAll("{dataDir}", dataDir);
    cmd = "/bin/sh";
    args = ["-c", `exec ${line}`]; // exec so the PID is the server itself
    env = { ...env, BENCH_PORT: String(port), BENCH_HOST: HOST, BENCH_DATA_DIR: dataDir };
    description = `\`${t.spec.slice(4)}\``;
  } else {
    throw new Error(`unknown target spec "${t.spec}" for ${t.label}`);
  }

  const fd = openSync(logFile, "a");
  const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const baseUrl = `http://${HOST}:${port}`;
  const client = new HttpClient(baseUrl);
  let stopping = false;

  const stop = async (): Promise<void> => {
    live.delete(stop);
    stopping = true;
    client.close();
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill("SIGTERM");
      const killed = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!killed) {
        child.kill("SIGKILL");
        await exited;
      }
    }
    await rm(tmp, { recursive: true, force: true });
  };

  live.add(stop);
  try {
    o.log(`starting ${t.label}: ${description} on ${baseUrl} (data ${dataDir})`);
    await waitReady(client, child, logFile, t.label);
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    label: t.label,
    description,
    baseUrl,
    ...(child.pid !== undefined ? { pid: child.pid } : {}),
    client,
    assertAlive: () => {
      if (!stopping && child.exitCode !== null) {
        throw new Error(`${t.label} exited (code ${child.exitCode})\n${tail(logFile)}`);
      }
    },
    stop,
  };
}

// ---------------------------------------------------------------------------
// RSS sampling from /proc

interface ProcMem {
  rssKiB: number;
  hwmKiB: number;
}

function readMem(pid: number): ProcMem | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(s);
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(s);
    return { rssKiB: rss ? Number(rss[1]) : 0, hwmKiB: hwm ? Number(hwm[1]) : 0 };
  } catch {
    return undefined;
  }
}

/** `pid` plus all its descendants (scans /proc once). */
function processTree(pid: number): number[] {
  const parent = new Map<number, number[]>();
  for (const ent of readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = readFileSync(`/proc/${ent}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const kids = parent.get(ppid) ?? [];
      kids.push(Number(ent));
      parent.set(ppid, kids);
    } catch {
      // process vanished
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(parent.get(out[i]!) ?? []));
  return out;
}

export interface RssReport {
  /** Max of the summed VmRSS over the process tree, sampled every interval. */
  peakRssMiB: number;
  /** Summed VmHWM of the process tree at stop (reset at start when permitted). */
  hwmMiB: number;
  hwmReset: boolean;
  samples: number;
}

/** Samples the server's RSS (process tree) every `intervalMs` while running. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private tree: number[];
  private treeAt = 0;
  private peakKiB = 0;
  private n = 0;
  private hwmReset = false;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 50,
  ) {
    this.tree = [pid];
  }

  start(): void {
    this.tree = processTree(this.pid);
    this.treeAt = Date.now();
    // Reset the kernel's peak-RSS counter (VmHWM) so it covers only this phase.
    this.hwmReset = true;
    for (const p of this.tree) {
      try {
        writeFileSync(`/proc/${p}/clear_refs`, "5");
      } catch {
        this.hwmReset = false;
      }
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  private sample(): void {
    if (Date.now() - this.treeAt > 1000) {
      this.tree = processTree(this.pid);
      this.treeAt = Date.now();
    }
    let sum = 0;
    for (const p of this.tree) sum += readMem(p)?.rssKiB ?? 0;
    this.n++;
    if (sum > this.peakKiB) this.peakKiB = sum;
  }

  stop(): RssReport {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    let hwm = 0;
    for (const p of this.tree) hwm += readMem(p)?.hwmKiB ?? 0;
    return { peakRssMiB: this.peakKiB / 1024, hwmMiB: hwm / 1024, hwmReset: this.hwmReset, samples: this.n };
  }
}

export function currentRssMiB(pid: number): number | undefined {
  const m = readMem(pid);
  return m ? m.rssKiB / 1024 : undefined;
}

// ---------------------------------------------------------------------------
// CPU accounting, to tell how much of the machine other processes used

const CLK_TCK = 100; // USER_HZ on Linux

/** utime and stime of a process (seconds), or undefined if it is gone. */
export function processCpuSplit(pid: number): { user: number; sys: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** utime + stime of a process (seconds), or undefined if it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  const c = processCpuSplit(pid);
  return c ? c.user + c.sys : undefined;
}

/** Whole-machine CPU time (seconds, summed over CPUs): busy and total. */
export function machineCpuSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const v = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
  } catch {
    return undefined;
  }
}
