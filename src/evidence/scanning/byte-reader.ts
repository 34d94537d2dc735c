/** Pull-style reading of an async byte stream without ever holding more than one chunk plus a small lookahead. */
export class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private done = false;
  /** Absolute offset of the next unread byte. */
  offset = 0;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private get available(): number {
    return this.buf.length - this.pos;
  }

  /** Makes at least `n` bytes available (n small); false when the stream ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.available < n) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const chunk = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.buf = this.available === 0 ? chunk : Buffer.concat([this.buf.subarray(this.pos), chunk]);
      this.pos = 0;
    }
    return true;
  }

  /** Ends the underlying stream early (releases a decompressor, closes a file). */
  async close(): Promise<void> {
    this.done = true;
    await this.it.return?.();
  }

  /** The next `n` bytes without consuming them; call after `ensure(n)` returned true. */
  peek(n: number): Buffer {
    return this.buf.subarray(this.pos, this.pos + n);
  }

  /** The next byte if it is already buffered (no await on the hot path), else -1. */
  tryU8(): number {
    if (this.pos >= this.buf.length) return -1;
    this.offset++;
    return this.buf[this.pos++]!;
  }

  /** The next `n` bytes if already buffered, else null (then call `take`). */
  tryTake(n: number): Buffer | null {
    if (this.buf.length - this.pos < n) return null;
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  async u8(): Promise<number | null> {
    if (!(await this.ensure(1))) return null;
    this.offset++;
    return this.buf[this.pos++]!;
  }

  /** Next `n` bytes (n small: callers cap it), or null at end of stream. */
  async take(n: number): Promise<Buffer | null> {
    if (!(await this.ensure(n))) return null;
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Discards `n` bytes without keeping them; false when the stream ends first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.available === 0 && !(await this.ensure(1))) return false;
      const step = Math.min(left, this.available);
      this.pos += step;
      this.offset += step;
      left -= step;
    }
    return true;
  }

  /**
   * Reads up to and including the next `\n`. Returns the line without it, or `null` (line read
   * but longer than `keep`, so not kept) — or `undefined` when the stream ends before a newline.
   */
  async line(keep: number): Promise<Buffer | null | undefined> {
    const parts: Buffer[] = [];
    let kept = 0;
    let overflow = false;
    for (;;) {
      if (this.available === 0 && !(await this.ensure(1))) return undefined;
      const nl = this.buf.indexOf(10, this.pos);
      const end = nl === -1 ? this.buf.length : nl;
      const piece = this.buf.subarray(this.pos, end);
      if (!overflow) {
        if (kept + piece.length > keep) overflow = true;
        else {
          parts.push(piece);
          kept += piece.length;
        }
      }
      const consumed = end - this.pos + (nl === -1 ? 0 : 1);
      this.pos += consumed;
      this.offset += consumed;
      if (nl !== -1) return overflow ? null : Buffer.concat(parts);
    }
  }

  /** The next `n` bytes as a stream of chunks (for archive entries); `rest()` skips what the consumer left. */
  sub(n: number): { stream: AsyncIterable<Uint8Array>; rest(): Promise<boolean> } {
    let left = n;
    const self = this;
    return {
      stream: {
        async *[Symbol.asyncIterator]() {
          while (left > 0) {
            if (self.available === 0 && !(await self.ensure(1))) return;
            const step = Math.min(left, self.available);
            const out = self.buf.subarray(self.pos, self.pos + step);
            self.pos += step;
            self.offset += step;
            left -= step;
            yield out;
          }
        },
      },
      rest: () => {
        const l = left;
        left = 0;
        return self.skip(l);
      },
    };
  }
}

/** Stops a stream after `max` bytes and reports whether it had more. */
export function capped(source: AsyncIterable<Uint8Array>, max: number): { stream: AsyncIterable<Uint8Array>; truncated(): boolean } {
  let truncated = false;
  return {
    stream: {
      async *[Symbol.asyncIterator]() {
        let seen = 0;
        for await (const chunk of source) {
          if (seen + chunk.byteLength > max) {
            const keep = max - seen;
            if (keep > 0) yield chunk.subarray(0, keep);
            truncated = true;
            return;
          }
          seen += chunk.byteLength;
          yield chunk;
        }
      },
    },
    truncated: () => truncated,
  };
}

/**
 * Raw-deflate decompression as a pull stream: input is read only when the consumer wants more
 * output, so a consumer that stops early leaves the source untouched past what it asked for
 * (the caller can then skip the rest of an archive entry).
 */
export async function* inflateRaw(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const { createInflateRaw } = await import('node:zlib');
  const inflater = createInflateRaw();
  const out: Buffer[] = [];
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  inflater.on('data', (d: Buffer) => {
    out.push(d);
    notify();
  });
  inflater.on('end', () => {
    ended = true;
    notify();
  });
  inflater.on('error', (e: Error) => {
    failure = e;
    notify();
  });
  const input = source[Symbol.asyncIterator]();
  let inputDone = false;
  try {
    for (;;) {
      while (out.length) yield out.shift()!;
      if (failure) throw failure;
      if (ended) return;
      if (!inputDone) {
        const r = await input.next();
        if (r.done) {
          inputDone = true;
          inflater.end();
        } else inflater.write(r.value);
      }
      // Give zlib (thread pool) a chance to produce output before reading more input.
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (!inputDone) setImmediate(notify);
      });
    }
  } finally {
    inflater.destroy();
  }
}
