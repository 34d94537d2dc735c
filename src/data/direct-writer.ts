/**
 * O_DIRECT writes for the large appends of the fs driver (see writeAt in file-writer.ts).
 *
 * A buffered write copies every byte into a page-cache page the kernel allocates for it. On a VM
 * whose free memory is handed back to the host (virtio-balloon free page reporting, as on the
 * benchmark machine), each such page faults on the host the first time it is written:
 * measured there, `dd` of 1 GiB into a new file costs 2.2-3.3 s of kernel time, but 0.2 s when
 * the pages were freed a moment before (not yet reported), and 0.2 s with O_DIRECT. A pushed
 * GiB paid 0.6-3.7 s of it, monolithic or chunked alike (chunked looked worse in the benchmark
 * of 2026-12-02 because its rounds met more reported memory; Distribution's did too, +2.3 s).
 * O_DIRECT skips the page cache:
 * the bytes go from a few reused, resident staging buffers straight to the device, so the cost
 * no longer depends on the state of the machine's free memory, and the final fdatasync has no
 * dirty pages left to write back (it still flushes the device cache and the file's size). The
 * price: a blob just pushed is not in the page cache, so its first pull reads the disk and fills
 * the cache then (measured on the same VM, 1 GiB: 250-370 MB/s and 2.6-3.2 s of server CPU,
 * against 1.2 GB/s and 0.4-0.5 s from the cache; later pulls are cached again). On this VM the
 * cost moves from the push to the first pull; anywhere, write-once upload bytes no longer evict
 * the blobs being pulled.
 *
 * O_DIRECT wants file offsets, lengths and buffer addresses aligned (512 B on most devices;
 * 4 KiB covers every common one). Request bodies arrive in unaligned chunks, so they are copied
 * (~0.1 s/GiB) into page-aligned staging buffers: WebAssembly.Memory, which V8 maps
 * page-aligned (Node has no aligned allocation otherwise). An append that starts mid-block
 * re-writes the block's acknowledged head (the same bytes), and the last partial block is
 * written through the ordinary fd. A filesystem or device that refuses (EINVAL) gets buffered
 * writes from then on, with no byte lost: the refused write is repeated through the ordinary fd.
 */
import { closeSync, read, write } from 'node:fs';

export const ALIGN = 4096;
export const STAGE_BYTES = 1 << 20;
/** Stages per append: up to STAGES - 1 writes in flight while the next one fills. */
const STAGES = 4;
const SLAB_BYTES = STAGES * STAGE_BYTES;
/** At most this many direct appends at once (32 MiB); the others stay buffered. */
const MAX_SLABS = 8;

/*
 * One slab (the stages of one append) stays allocated between appends; more are created for
 * concurrent appends and dropped when done. Measured: a long-lived 32 MiB pool (in V8's
 * external memory) made V8 run a full mark-compact every ~100 ms during a push (58 instead
 * of 2 per GiB, +1.5 s of CPU); 4 MiB does not.
 */
const idle: Buffer[][] = [];
let slabs = 0;

function takeStages(): Buffer[] | undefined {
  const reused = idle.pop();
  if (reused) return reused;
  if (slabs >= MAX_SLABS) return undefined;
  try {
    const memory = new WebAssembly.Memory({ initial: SLAB_BYTES / 65536, maximum: SLAB_BYTES / 65536 });
    slabs++;
    return Array.from({ length: STAGES }, (_, i) => Buffer.from(memory.buffer, i * STAGE_BYTES, STAGE_BYTES));
  } catch {
    return undefined; // no address space for it: this append stays buffered
  }
}

function giveStages(stages: Buffer[]): void {
  if (idle.length === 0) idle.push(stages);
  else slabs--; // garbage now: V8 frees the memory
}

const writeFd = (fd: number, buf: Buffer, len: number, at: number): Promise<number> =>
  new Promise((resolve, reject) => write(fd, buf, 0, len, at, (err, n) => (err ? reject(err) : resolve(n))));
const readFd = (fd: number, buf: Buffer, len: number, at: number): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buf, 0, len, at, (err, n) => (err ? reject(err) : resolve(n))));

/** Writes all of buf[0, len) at `at` through `fd` (short writes continue where they stopped). */
async function writeAll(fd: number, buf: Buffer, len: number, at: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const n = await writeFd(fd, done === 0 ? buf : buf.subarray(done), len - done, at + done);
    if (n === 0) throw new Error(`write of ${len} bytes at ${at} stalled after ${done}`);
    done += n;
  }
}

export interface DirectTarget {
  /** The session file opened with O_DIRECT, or undefined when it cannot be (the append stays buffered). */
  open(): number | undefined;
  /** Called when the filesystem refused an aligned O_DIRECT write: no more attempts. */
  unsupported(): void;
}

/**
 * Receives the bytes of an append from `start` on, through aligned O_DIRECT writes of whole
 * stages. `fd` is the session's ordinary fd (the head block's bytes, the tail, fallbacks).
 */
export class DirectWriter {
  private cur = 0;
  private fill: number;
  /** File offset of the current stage's first byte (always ALIGN-aligned). */
  private stagePos: number;
  private readonly pending: (Promise<void> | undefined)[];
  private failure: unknown;
  private direct = true;

  private constructor(
    private readonly fd: number,
    private readonly dfd: number,
    private readonly target: DirectTarget,
    private readonly stages: Buffer[],
    stagePos: number,
    head: number,
  ) {
    this.stagePos = stagePos;
    this.fill = head;
    this.pending = stages.map(() => undefined);
  }

  /** A writer for an append at `start`, or undefined when no stage or no O_DIRECT fd is available. */
  static async start(fd: number, target: DirectTarget, start: number): Promise<DirectWriter | undefined> {
    const stages = takeStages();
    if (!stages) return undefined;
    let dfd: number | undefined;
    try {
      dfd = target.open();
    } finally {
      if (dfd === undefined) giveStages(stages); // refused or threw: the slab is not lost
    }
    if (dfd === undefined) return undefined;
    const head = start % ALIGN;
    const writer = new DirectWriter(fd, dfd, target, stages, start - head, head);
    try {
      // The acknowledged bytes of the block the append starts in: written again, unchanged.
      if (head > 0 && (await readFd(fd, stages[0]!, head, start - head)) !== head) throw new Error(`session file shorter than ${start} bytes`);
    } catch (err) {
      await writer.close();
      throw err;
    }
    return writer;
  }

  /** File offset after the last byte received. */
  get end(): number {
    return this.stagePos + this.fill;
  }

  /** Copies `chunk` into the stages; resolves once there is room for more. Throws a failed write's error. */
  async push(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const stage = this.stages[this.cur]!;
      const n = Math.min(chunk.length - off, STAGE_BYTES - this.fill);
      stage.set(n === chunk.length ? chunk : chunk.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === STAGE_BYTES) {
        this.submit(STAGE_BYTES);
        this.cur = (this.cur + 1) % this.stages.length;
        this.fill = 0;
        await this.pending[this.cur]; // the stage to fill next must be written out first
      }
      if (this.failure) throw this.failure;
    }
  }

  /** Writes what is left: whole blocks directly, the last partial block through the ordinary fd. */
  async finish(): Promise<void> {
    const whole = this.fill - (this.fill % ALIGN);
    const stage = this.stages[this.cur]!;
    const tail = this.fill - whole;
    const tailAt = this.stagePos + whole;
    if (whole > 0) this.submit(whole);
    await Promise.all(this.pending);
    if (this.failure) throw this.failure;
    if (tail > 0) await writeAll(this.fd, stage.subarray(whole), tail, tailAt);
    this.stagePos = tailAt;
    this.fill = tail;
  }

  /** Waits for every write, returns the stages and closes the O_DIRECT fd. Call it always. */
  async close(): Promise<void> {
    await Promise.all(this.pending);
    giveStages(this.stages);
    closeSync(this.dfd);
  }

  private submit(len: number): void {
    const i = this.cur;
    const stage = this.stages[i]!;
    const at = this.stagePos;
    this.stagePos += len;
    this.pending[i] = this.writeStage(stage, len, at).then(
      () => {
        this.pending[i] = undefined;
      },
      (err: unknown) => {
        this.pending[i] = undefined;
        this.failure ??= err;
      },
    );
  }

  private async writeStage(stage: Buffer, len: number, at: number): Promise<void> {
    if (this.direct) {
      try {
        const n = await writeFd(this.dfd, stage, len, at);
        if (n === len) return;
        // A short direct write (a full disk, typically): the rest, unaligned now, goes the ordinary way.
        if (n > 0) return await writeAll(this.fd, stage.subarray(n), len - n, at + n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException)?.code !== 'EINVAL') throw err;
        // Alignment this filesystem or device does not take: buffered from now on, this stage
        // included (and the others already in flight, which fail the same way).
        if (this.direct) this.target.unsupported();
        this.direct = false;
      }
    }
    await writeAll(this.fd, stage, len, at);
  }
}
