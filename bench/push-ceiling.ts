// The push rows' ceiling for any Node.js server on this machine, measured in the same run: a
// process of its own that takes a monolithic blob upload (POST, then PUT ?digest= with the body)
// from the benchmark's client and does only what every registry must — receive the bytes and
// check their SHA-256 — and, in a second mode, also writes them to a file and fdatasyncs before
// answering 201 (what "a 201 means durable" costs at the least). No metadata, no staging, no
// O_DIRECT. Its throughput against Distribution's says how far any Node registry could get here.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { BlobSource, MiB } from "./data.js";
import { HttpClient } from "./http.js";
import { pushMonolithic } from "./oci.js";
import { processCpuSplit } from "./targets.js";

export type PushCeilingMode = "hash" | "hash+fdatasync";

export interface PushCeiling {
  mode: PushCeilingMode;
  /** Best of the rounds. */
  mibps: number;
  /** The receiver's user + system CPU seconds per GiB, median of the rounds. */
  cpuPerGiB: number;
  /** Its user part (the same round as the median). */
  userPerGiB: number;
}

const RECEIVER = `
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const { createHash } = require("node:crypto");
const [mode, dir] = process.argv.slice(1);
let n = 0;
const server = http.createServer((req, res) => {
  if (req.method === "POST") {
    req.resume();
    res.writeHead(202, { location: "/v2/ceiling/blobs/uploads/" + ++n, "content-length": "0" });
    return res.end();
  }
  const want = new URL(req.url, "http://x").searchParams.get("digest");
  const hash = createHash("sha256");
  const fd = mode === "hash" ? -1 : fs.openSync(path.join(dir, "blob"), "w");
  req.on("data", (c) => {
    hash.update(c);
    if (fd >= 0) fs.writeSync(fd, c);
  });
  req.on("end", () => {
    if (fd >= 0) { fs.fdatasyncSync(fd); fs.closeSync(fd); }
    const got = "sha256:" + hash.digest("hex");
    res.writeHead(got === want ? 201 : 400, { "docker-content-digest": got, "content-length": "0" });
    res.end();
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(String(server.address().port) + "\\n"));
`;

/** Pushes `bytes` monolithically to RECEIVER in `mode`, `rounds` times; best MiB/s and median CPU per GiB. */
export async function measurePushCeiling(mode: PushCeilingMode, workDir: string, bytes: number, rounds = 3): Promise<PushCeiling> {
  const dir = mkdtempSync(join(workDir, "push-ceiling-"));
  const child = spawn(process.execPath, ["-e", RECEIVER, mode, dir], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [line] = (await once(child.stdout!, "data")) as [Buffer];
    const client = new HttpClient(`http://127.0.0.1:${Number(line.toString().trim())}`);
    let best = 0;
    const cpu: Array<{ total: number; user: number }> = [];
    for (let i = 0; i < rounds; i++) {
      const blob = new BlobSource(`push-ceiling:${mode}:${i}`, bytes);
      const digest = blob.digest();
      const before = processCpuSplit(child.pid!);
      const t0 = performance.now();
      await pushMonolithic(client, "ceiling", blob, digest); // throws unless 201 with the right digest
      const secs = (performance.now() - t0) / 1000;
      const after = processCpuSplit(child.pid!);
      best = Math.max(best, bytes / MiB / secs);
      const gib = bytes / (1024 * MiB);
      if (before && after) cpu.push({ total: (after.user + after.sys - before.user - before.sys) / gib, user: (after.user - before.user) / gib });
    }
    cpu.sort((a, b) => a.total - b.total);
    const mid = cpu[Math.floor(cpu.length / 2)];
    return { mode, mibps: best, cpuPerGiB: mid?.total ?? NaN, userPerGiB: mid?.user ?? NaN };
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The report's note: each ceiling, and each target's monolithic push as a share of it. */
export function pushCeilingNote(ceilings: PushCeiling[], pushMono: Record<string, number | null | undefined>, sizeLabel: string, baseline?: string): string {
  const base = baseline ? (pushMono[baseline] ?? undefined) : undefined;
  const parts = ceilings.map((c) => {
    const shares = Object.entries(pushMono)
      .filter((e): e is [string, number] => typeof e[1] === "number")
      .map(([label, v]) => `${label} ${((100 * v) / c.mibps).toFixed(0)}%`)
      .join(", ");
    const what = c.mode === "hash" ? "receives and checks SHA-256 (no disk)" : "receives, checks SHA-256, writes a file and fdatasyncs before the 201";
    const vsBase = base ? `, ${(c.mibps / base).toFixed(2)}× ${baseline}'s push` : "";
    return `one that ${what} takes ${c.mibps.toFixed(0)} MiB/s${vsBase} at ${c.cpuPerGiB.toFixed(2)} s CPU/GiB (user ${c.userPerGiB.toFixed(2)})${shares ? ` (push.mono ${shares} of it)` : ""}`;
  });
  return `Push ceiling for a Node.js server, measured in this run (monolithic ${sizeLabel} from this client, best of 3): ${parts.join("; ")}.`;
}
