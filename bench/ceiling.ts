// Machine ceilings measured in the same run as the workloads, so ratios can be read against
// what the disk and the CPU allow: a streamed write + fdatasync (like `dd conv=fdatasync`),
// one 4 KiB write + fdatasync, and node:crypto SHA-256.

import { createHash, randomFillSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { MiB } from "./data.js";

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
