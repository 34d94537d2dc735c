// Machine ceilings measured in the same run as the workloads, so ratios can be read against
// what the disk and the CPU allow: a streamed write + fdatasync (like `dd conv=fdatasync`),
// one 4 KiB write + fdatasync, node:crypto SHA-256, and what a Node.js process that does nothing
// but send one reused buffer delivers to this benchmark's client over loopback: the pull rows'
// ceiling for any Node server (no sendfile(2): every byte is copied into the socket).

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createHash, randomFillSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { MiB } from "./data.js";
import { HttpClient } from "./http.js";

export interface Ceilings {
  /** MiB/s writing `bytes` in 4 MiB writes, then one fdatasync (timed together). */
  diskMiBps: number;
  /** 4 KiB write + fdatasync per second, one at a time (new file each). */
  smallSyncsPerSec: number;
  /** node:crypto SHA-256, MiB/s on 4 MiB updates. */
  sha256MiBps: number;
}

export async function measureCeilings(dir: string, bytes: number): Promise<Ceilings> {
  const tmp = mkdtempSync(join(dir, "ceiling-"));
  try {
    const buf = randomFillSync(Buffer.allocUnsafe(4 * MiB));
    const fh = await open(join(tmp, "big"), "w");
    let t0 = performance.now();
    for (let left = bytes; left > 0; left -= buf.length) await fh.write(buf, 0, Math.min(buf.length, left));
    await fh.datasync();
    const diskMiBps = bytes / MiB / ((performance.now() - t0) / 1000);
    await fh.close();
    const small = buf.subarray(0, 4096);
    const n = 100;
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const f = await open(join(tmp, `s${i}`), "w");
      await f.write(small);
      await f.datasync();
      await f.close();
    }
    const smallSyncsPerSec = n / ((performance.now() - t0) / 1000);
    const h = createHash("sha256");
    const hashBytes = Math.min(bytes, 512 * MiB);
    t0 = performance.now();
    for (let left = hashBytes; left > 0; left -= buf.length) h.update(buf);
    h.digest();
    const sha256MiBps = hashBytes / MiB / ((performance.now() - t0) / 1000);
    return { diskMiBps, smallSyncsPerSec, sha256MiBps };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The server, in a process of its own (as a registry would be): answers any GET with `bytes`
 * bytes written from one reused 1 MiB buffer, honouring backpressure. Nothing is read from disk
 * and nothing is hashed, so what limits it is the client, the socket and the copy into it.
 */
const SENDER = `
const http = require("node:http");
const chunk = Buffer.alloc(1024 * 1024, 7);
const server = http.createServer((req, res) => {
  const total = Number(process.argv[1]);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(total) });
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once("drain", pump);
    }
    res.end();
  };
  pump();
});
server.listen(0, "127.0.0.1", () => process.stdout.write(String(server.address().port) + "\\n"));
`;

/** MiB/s of the bench client receiving `bytes` from SENDER over loopback (best of `rounds`). */
export async function measureReceiveCeiling(bytes: number, rounds = 3): Promise<number> {
  const child = spawn(process.execPath, ["-e", SENDER, String(bytes)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [line] = (await once(child.stdout!, "data")) as [Buffer];
    const client = new HttpClient(`http://127.0.0.1:${Number(line.toString().trim())}`);
    let best = 0;
    for (let i = 0; i < rounds; i++) {
      let got = 0;
      const t0 = performance.now();
      await client.request("GET", "/ceiling", { sink: (c) => void (got += c.length), timeoutMs: 600_000 });
      const secs = (performance.now() - t0) / 1000;
      if (got !== bytes) throw new Error(`receive ceiling: got ${got} bytes, want ${bytes}`);
      best = Math.max(best, bytes / MiB / secs);
    }
    return best;
  } finally {
    child.kill();
  }
}
