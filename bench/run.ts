// Benchmark entry point: npx tsx bench/run.ts [--quick] [options]   (see bench/README.md)

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { measureCeilings, measureReceiveCeiling, type Ceilings } from "./ceiling.js";
import { markdownReport, median, summarize, fmtNum, type EnvInfo, type MetricResult } from "./stats.js";
import { machineCpuSeconds, processCpuSeconds, startTarget, stopAllStarted, type RunningTarget, type TargetSpec } from "./targets.js";
import { sizes, workloads, type Ctx, type Sample } from "./workloads.js";

const HELP = `usage: npx tsx bench/run.ts [options]

  --quick                 small sizes (~3 min run)               [BENCH_QUICK=1]
  --rounds=N              rounds per workload (default 3, quick 2) [BENCH_ROUNDS]
  --memory-rounds=N       rounds for the RSS workload (default 1)  [BENCH_MEMORY_ROUNDS]
  --a=SPEC --b=SPEC       candidate (A) and baseline (B)          [BENCH_A, BENCH_B]
                          SPEC: artifact-store | distribution | http://host:port | cmd:<command>
                          defaults: A=artifact-store, B=distribution
  --a-name= --b-name=     labels (default: artifact-store, distribution)
  --a-pid= --b-pid=       PID to sample RSS from for http:// targets
  --targets="l=SPEC;l=SPEC"  both at once, A first                 [BENCH_TARGETS]
  --only=a|b|LABEL        run a single target                     [BENCH_ONLY]
  --workloads=w1,w2       subset of: push-monolithic, push-chunked, push-small, pull,
                          head, manifest-put, manifest-get, tags, memory   [BENCH_WORKLOADS]
  --out=DIR               results directory (default bench/results) [BENCH_OUT]
  --distribution-bin=PATH (default /usr/bin/docker-registry)      [BENCH_DISTRIBUTION_BIN]
  --no-sync               do not run sync(1) before each timed run
  --no-ceiling            skip measuring the disk/SHA-256 ceilings after push workloads
  --timeout-min=N         abort the whole run after N minutes (default 40, quick 10)
`;

/** Pause after a ceiling measurement: page-cache pages it freed skew kernel CPU for ~2 s. */
const CEILING_PAUSE_MS = 3_000;
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..");

function parseArgs(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of argv) {
    if (a === "-h" || a === "--help") m.set("help", "1");
    else if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      if (eq < 0) m.set(a.slice(2), "1");
      else m.set(a.slice(2, eq), a.slice(eq + 1));
    } else throw new Error(`unexpected argument ${a}\n${HELP}`);
  }
  return m;
}

const args = parseArgs(process.argv.slice(2));
const opt = (flag: string, env: string): string | undefined => args.get(flag) ?? process.env[env] ?? undefined;
const t0 = performance.now();
const log = (msg: string): void => {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
};

function targetSpecs(): { a?: TargetSpec; b?: TargetSpec } {
  const pid = (v: string | undefined): { pid?: number } => (v ? { pid: Number(v) } : {});
  let a: TargetSpec | undefined;
  let b: TargetSpec | undefined;
  const combined = opt("targets", "BENCH_TARGETS");
  if (combined) {
    const parsed = combined.split(";").map((s) => s.trim()).filter(Boolean).map((entry): TargetSpec => {
      const eq = entry.indexOf("=");
      return eq < 0 ? { label: entry, spec: entry } : { label: entry.slice(0, eq), spec: entry.slice(eq + 1) };
    });
    if (parsed.length < 1 || parsed.length > 2) throw new Error("BENCH_TARGETS needs 1 or 2 entries");
    if (parsed.length === 1) {
      // A single entry runs alone; it is the baseline only if it is Distribution.
      if (parsed[0]!.spec === "distribution") b = parsed[0];
      else a = parsed[0];
    } else [a, b] = parsed;
  } else {
    a = { label: opt("a-name", "BENCH_A_NAME") ?? "artifact-store", spec: opt("a", "BENCH_A") ?? "artifact-store", ...pid(opt("a-pid", "BENCH_A_PID")) };
    b = { label: opt("b-name", "BENCH_B_NAME") ?? "distribution", spec: opt("b", "BENCH_B") ?? "distribution", ...pid(opt("b-pid", "BENCH_B_PID")) };
  }
  const only = opt("only", "BENCH_ONLY");
  if (only) {
    if (only === "a" || only === a?.label) b = undefined;
    else if (only === "b" || only === b?.label) a = undefined;
    else throw new Error(`--only=${only} matches no target`);
  }
  if (a && b && a.label === b.label) throw new Error(`targets need distinct labels (both "${a.label}")`);
  return { ...(a ? { a } : {}), ...(b ? { b } : {}) };
}

function envInfo(quick: boolean, rounds: number): EnvInfo {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  let nproc = 0;
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
  } catch {
    nproc = NaN;
  }
  return {
    date: new Date().toISOString(), node: process.version, nproc, cpu,
    memTotal: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`, quick, rounds,
  };
}

async function main(): Promise<number> {
  if (args.has("help")) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = args.has("quick") || process.env.BENCH_QUICK === "1";
  const rounds = Number(opt("rounds", "BENCH_ROUNDS") ?? (quick ? 2 : 3));
  const memRounds = Number(opt("memory-rounds", "BENCH_MEMORY_ROUNDS") ?? 1);
  const outDir = resolve(opt("out", "BENCH_OUT") ?? join(here, "results"));
  const doSync = !args.has("no-sync");
  const timeoutMin = Number(opt("timeout-min", "BENCH_TIMEOUT_MIN") ?? (quick ? 10 : 40));
  if (!(rounds >= 1 && memRounds >= 1)) throw new Error("rounds must be >= 1");
  const s = sizes(quick);
  const only = opt("workloads", "BENCH_WORKLOADS")?.split(",").map((x) => x.trim());
  const all = workloads(s, memRounds);
  const selected = only ? all.filter((w) => only.includes(w.name)) : all;
  if (only && selected.length !== only.length) throw new Error(`unknown workload in ${only.join(",")}`);

  const { a, b } = targetSpecs();
  const specs = [a, b].filter((x): x is TargetSpec => x !== undefined);
  const env = envInfo(quick, rounds);
  log(`artifact-store bench ${quick ? "(quick) " : ""}— ${env.node}, nproc ${env.nproc}, ${env.cpu}`);

  const cpuStart = machineCpuSeconds();
  const selfStart = process.cpuUsage();
  const loadStart = loadavg()[0] ?? 0;
  let cpuNote: string | undefined;
  const running: RunningTarget[] = [];
  let stopped = false;
  const stopAll = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled(running.map((t) => t.stop()));
    await stopAllStarted(); // also any target that was still starting
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: stopping targets`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const watchdog = setTimeout(() => {
    log(`timeout after ${timeoutMin} min: stopping targets`);
    void stopAll().finally(() => process.exit(124));
  }, timeoutMin * 60_000);
  watchdog.unref();

  // Ceilings in the same run as the pushes (the same disk, the same load): measured once AFTER
  // each push workload's rounds, then a pause. Writing and deleting the big file frees page-cache
  // pages; a push started within ~2 s gets them fresh from the host and is charged less kernel
  // CPU, which favoured short pushes when the ceiling ran right before every round.
  const ceilingSamples: Ceilings[] = [];
  /** MiB/s a Node server that does nothing but send delivers to the client (measured after the pull rounds). */
  const receiveCeilings: number[] = [];
  const measureCeiling = async (): Promise<void> => {
    if (args.has("no-ceiling")) return;
    execFileSync("sync");
    const c = await measureCeilings(tmpdir(), s.bigBlob);
    ceilingSamples.push(c);
    log(`ceilings: write+fdatasync ${c.diskMiBps.toFixed(0)} MiB/s, 4 KiB write+fdatasync ${c.smallSyncsPerSec.toFixed(0)}/s, SHA-256 ${c.sha256MiBps.toFixed(0)} MiB/s`);
    await new Promise((r) => setTimeout(r, CEILING_PAUSE_MS)); // keep the next workload's first round clear of it
  };
  const samples = new Map<string, Record<string, number[]>>(); // metric id -> label -> values
  const errors: Array<{ workload: string; target: string; round: number; error: string }> = [];
  const extra: Record<string, Record<string, number[]>> = {};
  const push = (store: Map<string, Record<string, number[]>> | Record<string, Record<string, number[]>>, id: string, label: string, v: number): void => {
    const rec = store instanceof Map ? (store.get(id) ?? (store.set(id, {}), store.get(id)!)) : (store[id] ??= {});
    (rec[label] ??= []).push(v);
  };

  try {
    for (const spec of specs) running.push(await startTarget(spec, { repoRoot, distributionBin: opt("distribution-bin", "BENCH_DISTRIBUTION_BIN") ?? "/usr/bin/docker-registry", log }));
    const ctxs = new Map<string, Ctx>(running.map((t) => [t.label, { t, s, log, state: new Map() }]));
    const sync = (): void => {
      if (doSync) execFileSync("sync");
    };

    for (const w of selected) {
      const metricIds = new Set(w.metrics.map((m) => m.id));
      const failed = new Set<string>();
      for (const t of running) {
        if (!w.setup) continue;
        log(`${w.name}: setup on ${t.label}`);
        try {
          t.assertAlive();
          await w.setup(ctxs.get(t.label)!);
        } catch (e) {
          failed.add(t.label);
          errors.push({ workload: w.name, target: t.label, round: 0, error: (e as Error).message });
          log(`  ERROR ${w.name} setup on ${t.label}: ${(e as Error).message}`);
        }
      }
      const n = w.rounds ?? rounds;
      for (let r = 1; r <= n; r++) {
        const order = r % 2 === 1 ? running : [...running].reverse();
        for (const t of order) {
          if (failed.has(t.label)) continue;
          sync();
          let sample: Sample;
          try {
            t.assertAlive();
            sample = await w.run(ctxs.get(t.label)!, r);
          } catch (e) {
            failed.add(t.label);
            errors.push({ workload: w.name, target: t.label, round: r, error: (e as Error).message });
            log(`  ERROR ${w.name} r${r} on ${t.label}: ${(e as Error).message}`);
            continue;
          }
          const parts: string[] = [];
          for (const [id, v] of Object.entries(sample)) {
            if (metricIds.has(id)) push(samples, id, t.label, v);
            else push(extra, id, t.label, v);
            const unit = w.metrics.find((m) => m.id === id)?.unit ?? "";
            parts.push(`${id}=${fmtNum(v)}${unit ? ` ${unit}` : ""}`);
          }
          log(`${w.name} r${r}/${n} ${t.label}: ${parts.join(", ")}`);
        }
      }
      if (w.name.startsWith("push-")) await measureCeiling();
      if (w.name === "pull" && !args.has("no-ceiling")) {
        receiveCeilings.push(await measureReceiveCeiling(s.bigBlob));
        log(`ceiling: a Node server that only sends delivers ${receiveCeilings.at(-1)!.toFixed(0)} MiB/s to this client`);
      }
    }
    const cpuEnd = machineCpuSeconds();
    if (cpuStart && cpuEnd) {
      const self = process.cpuUsage(selfStart);
      let ours = (self.user + self.system) / 1e6;
      for (const t of running) ours += t.pid !== undefined ? processCpuSeconds(t.pid) ?? 0 : 0;
      const total = cpuEnd.total - cpuStart.total;
      const busy = cpuEnd.busy - cpuStart.busy;
      const other = Math.max(0, busy - ours);
      const pct = (x: number): string => `${((100 * x) / total).toFixed(0)}%`;
      cpuNote = `Machine CPU during the run: ${pct(busy)} busy — this benchmark (client + servers) ${pct(ours)}, other processes ${pct(other)}; 1-min load average at start ${loadStart.toFixed(2)} on ${env.nproc} CPUs.`;
      if (other / total > 0.1) cpuNote += " Other load above 10% makes the numbers noisy; rerun on an idle machine for decisions.";
    }
  } finally {
    log("stopping targets");
    await stopAll();
  }

  const labelA = a?.label;
  const labelB = b?.label;
  const results: MetricResult[] = [];
  for (const w of selected) {
    for (const m of w.metrics) {
      const rec = samples.get(m.id) ?? {};
      if (Object.keys(rec).length) results.push(summarize(m, rec, labelA, labelB));
    }
  }
  env.totalSeconds = (performance.now() - t0) / 1000;
  const notes: string[] = [];
  const pages = extra["tags.pages"];
  const maxPage = extra["tags.maxpage"] ?? {};
  if (pages) {
    const desc = Object.entries(pages).map(([l, v]) => {
      const big = maxPage[l]?.[0] ?? 0;
      return `${l}: ${v[0]} page(s)${big > s.tagPage ? ` (ignores n=${s.tagPage}: returned ${big} tags in one page)` : ""}`;
    });
    notes.push(`Tag listing requests per full listing — ${desc.join("; ")}.`);
  }
  if (cpuNote) notes.push(cpuNote);
  if (ceilingSamples.length > 0) {
    const med = (f: (c: Ceilings) => number): number => median(ceilingSamples.map(f));
    const c = { diskMiBps: med((x) => x.diskMiBps), smallSyncsPerSec: med((x) => x.smallSyncsPerSec), sha256MiBps: med((x) => x.sha256MiBps) };
    const share = (id: string): string => {
      const r = results.find((x) => x.id === id);
      const v = labelA ? r?.medians[labelA] : undefined;
      return v ? `${id} ${labelA} = ${((100 * v) / c.diskMiBps).toFixed(0)}% of it` : "";
    };
    const shares = ["push.mono", "push.chunked"].map(share).filter(Boolean).join(", ");
    notes.push(
      `Ceilings measured in this run (medians of ${ceilingSamples.length}, once after each push workload's rounds and followed by a ${CEILING_PAUSE_MS / 1000} s pause, never right before a timed round; ${formatCeilingSize(s.bigBlob)}): write + fdatasync ${c.diskMiBps.toFixed(0)} MiB/s${shares ? ` (${shares})` : ""}; ` +
        `4 KiB write + fdatasync ${c.smallSyncsPerSec.toFixed(0)}/s one at a time; node:crypto SHA-256 ${c.sha256MiBps.toFixed(0)} MiB/s.`,
    );
  }
  const putMachine = results.find((x) => x.id === "manifest.put.machine")?.medians ?? {};
  const putCeilings = Object.entries(putMachine).filter((e): e is [string, number] => typeof e[1] === "number" && e[1] > 0);
  if (putCeilings.length > 0) {
    notes.push(`Manifest PUT ceiling from the whole-machine CPU per PUT (client + server + its database, all processes): with ${env.nproc} CPUs saturated, ${putCeilings.map(([l, ms]) => `${l} at ${ms.toFixed(2)} ms/PUT allows at most ${Math.round((env.nproc * 1000) / ms).toLocaleString("en-US")} PUT/s`).join("; ")}.`);
  }
  if (receiveCeilings.length > 0) {
    const ceiling = median(receiveCeilings);
    const shares = ["pull.single", "pull.multi"]
      .flatMap((id) => [labelA, labelB].filter(Boolean).map((label) => {
        const v = results.find((x) => x.id === id)?.medians[label!];
        return v ? `${id} ${label} ${((100 * v) / ceiling).toFixed(0)}%` : "";
      }))
      .filter(Boolean)
      .join(", ");
    notes.push(`Pull ceiling for a Node.js server, measured in this run: a Node process that only sends one reused buffer (no disk, no hashing; Node has no sendfile(2)) delivers ${ceiling.toFixed(0)} MiB/s to this client over loopback (best of 3, ${formatCeilingSize(s.bigBlob)})${shares ? `; ${shares} of it` : ""}.`);
  }
  notes.push("Server CPU rows are utime + stime of the server process (/proc/<pid>/stat, 10 ms ticks) over the timed part; the \"— user\" and \"— system (kernel)\" rows split them. System time on pushes is mostly copying into the page cache, which on this VM varies with how recently pages were freed, so read #17's CPU targets against the user row too.");
  notes.push("Times cover only the HTTP exchange; data generation and digest precomputation happen before the clock starts, but the client generates/hashes bytes while streaming, sharing the CPUs with the server.");
  notes.push("Each upload is checked against Docker-Content-Digest and a HEAD afterwards (untimed); every pulled blob is hashed and compared in an untimed pull (the timed throughput pulls count bytes, so the client's SHA-256 speed does not cap the servers).");
  for (const e of errors) notes.push(`ERROR in ${e.workload} (${e.target}, round ${e.round}): ${e.error.split("\n")[0]}`);
  const targetsDesc = running.map((t) => ({ label: t.label, description: t.description }));
  const md = markdownReport(results, labelA, labelB, env, targetsDesc, notes);

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "latest.md"), md);
  writeFileSync(
    join(outDir, "latest.json"),
    JSON.stringify({ env, targets: specs.map((t) => ({ ...t, role: t === a ? "candidate" : "baseline" })), sizes: s, results, extra, errors }, null, 2) + "\n",
  );
  process.stdout.write(`\n${md}`);
  log(`wrote ${join(outDir, "latest.md")} and latest.json (${env.totalSeconds.toFixed(0)} s total)`);
  return errors.length ? 1 : 0;
}

function formatCeilingSize(bytes: number): string {
  return bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
