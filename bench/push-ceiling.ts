// The push rows' ceiling for any Node.js server on this machine, measured in the same run: a
// process of its own that takes a monolithic blob upload (POST, then PUT ?digest= with the body)
// from the benchmark's client and does only what every registry must — receive the bytes and
// check their SHA-256 — with no disk, no metadata, no staging. Its throughput against
// Distribution's says how far any Node registry could get here. (A mode that also wrote and
// fdatasynced the bytes was dropped: its 3 GiB of new page-cache pages, freed at once, changed
// the CPU figures of the workload after it on this VM.)

import { spawn } from "node:child_process";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { BlobSource, MiB } from "./data.js";
import { HttpClient } from "./http.js";
import { pushMonolithic } from "./oci.js";
import { processCpuSplit } from "./targets.js";

export interface PushCeiling {
  /** Best of the rounds. */
  mibps: number;
  /** The receiver's user + system CPU seconds per GiB, median of the rounds. */
  cpuPerGiB: number;
  /** Its user part (the same round as the median). */
  userPerGiB: number;
}

const RECEIVER = `
const http = require("node:http");
const { createHash } = require("node:crypto");
let n = 0;
const server = http.createServer((req, res) => {
  if (req.method === "POST") {
    req.resume();
    res.writeHead(202, { location: "/v2/ceiling/blobs/uploads/" + ++n, "content-length": "0" });
    return res.end();
  }
  const want = new URL(req.url, "http://x").searchParams.get("digest");
  const hash = createHash("sha256");
  req.on("data", (c) => hash.update(c));
  req.on("end", () => {
    const got = "sha256:" + hash.digest("hex");
    res.writeHead(got === want ? 201 : 400, { "docker-content-digest": got, "content-length": "0" });
    res.end();
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(String(server.address().port) + "\\n"));
`;

/** Pushes `bytes` monolithically to RECEIVER `rounds` times; best MiB/s and median CPU per GiB. */
export async function measurePushCeiling(bytes: number, rounds = 3): Promise<PushCeiling> {
  const child = spawn(process.execPath, ["-e", RECEIVER], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [line] = (await once(child.stdout!, "data")) as [Buffer];
    const client = new HttpClient(`http://127.0.0.1:${Number(line.toString().trim())}`);
    let best = 0;
    const cpu: Array<{ total: number; user: number }> = [];
    for (let i = 0; i < rounds; i++) {
      const blob = new BlobSource(`push-ceiling:${i}`, bytes);
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
    return { mibps: best, cpuPerGiB: mid?.total ?? NaN, userPerGiB: mid?.user ?? NaN };
  } finally {
    child.kill();
  }
}

/** The report's note: the ceiling, and each target's monolithic push as a share of it. */
export function pushCeilingNote(c: PushCeiling, pushMono: Record<string, number | null | undefined>, sizeLabel: string, baseline?: string): string {
  const base = baseline ? (pushMono[baseline] ?? undefined) : undefined;
  const shares = Object.entries(pushMono)
    .filter((e): e is [string, number] => typeof e[1] === "number")
    .map(([label, v]) => `${label} ${((100 * v) / c.mibps).toFixed(0)}%`)
    .join(", ");
  const vsBase = base ? `, ${(c.mibps / base).toFixed(2)}× ${baseline}'s push` : "";
  return (
    `Push ceiling for a Node.js server, measured in this run right after the monolithic rounds (monolithic ${sizeLabel} from this client, best of 3): ` +
    `a Node process that only receives the body and checks its SHA-256 (no disk) takes ${c.mibps.toFixed(0)} MiB/s${vsBase}, at ${c.cpuPerGiB.toFixed(2)} s CPU/GiB (user ${c.userPerGiB.toFixed(2)})${shares ? `; push.mono ${shares} of it` : ""}.`
  );
}
