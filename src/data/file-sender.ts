/**
 * Copies a byte range of an open file to a Writable through a few reused buffers.
 *
 * Streaming with fs.createReadStream allocates a fresh buffer per chunk; at GB/s that is
 * hundreds of MB/s of external memory for the GC to chase, and measured here it halves
 * throughput (0.7 vs 1.8-2.4 GB/s on loopback). A buffer goes back into use only after the
 * destination's write callback says the kernel has its bytes, so reuse is safe.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

const CHUNK = 2 * 1024 * 1024;
const BUFFERS = 2;

export async function sendFileRange(fh: FileHandle, start: number, end: number, dest: Writable): Promise<void> {
  const total = end - start + 1;
  const size = Math.min(CHUNK, Math.max(total, 1));
  const slots = Array.from({ length: total > size ? BUFFERS : 1 }, () => ({ buf: Buffer.allocUnsafe(size), flushed: Promise.resolve() }));
  let failure: Error | undefined;
  const onClose = (): void => {
    failure ??= new Error('destination closed before the body was sent');
  };
  dest.once('close', onClose);
  dest.once('error', onClose);
  try {
    let pos = start;
    for (let i = 0; pos <= end; i++) {
      const slot = slots[i % slots.length]!;
      await slot.flushed;
      if (failure || dest.destroyed) throw failure ?? new Error('destination destroyed');
      const { bytesRead } = await fh.read(slot.buf, 0, Math.min(size, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`file ended at ${pos}, expected ${end + 1} bytes`);
      pos += bytesRead;
      slot.flushed = new Promise<void>((resolve) => {
        dest.write(slot.buf.subarray(0, bytesRead), (err) => {
          if (err) failure ??= err;
          resolve();
        });
      });
    }
    await Promise.all(slots.map((s) => s.flushed));
    if (failure) throw failure;
    await new Promise<void>((resolve) => dest.end(resolve));
  } finally {
    dest.off('close', onClose);
    dest.off('error', onClose);
  }
}
