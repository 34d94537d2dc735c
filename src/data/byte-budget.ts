/**
 * A process-wide budget of buffer bytes, handed out first come, first served. The S3 driver
 * holds about one part in memory per append; without a global cap, N concurrent PATCHes pin N
 * parts (8-80 MiB each). Waiting for budget leaves the request body unread, so TCP backpressure
 * slows the client instead of memory growing.
 */
import { StorageUnavailableError } from './errors.js';

interface Waiter {
  bytes: number;
  grant: () => void;
}

export class ByteBudget {
  private used = 0;
  private highWater = 0;
  private readonly queue: Waiter[] = [];

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit <= 0) throw new Error('buffer budget must be a positive integer');
  }

  /** Bytes handed out now, and the most ever handed out at once. */
  get inUse(): number {
    return this.used;
  }
  get peak(): number {
    return this.highWater;
  }

  /**
   * Reserves `bytes` (at most the whole budget, so one oversized request still runs alone) and
   * returns the function that gives them back. Rejects with StorageUnavailableError after
   * `timeoutMs` of waiting (the client may retry: 503).
   */
  acquire(bytes: number, timeoutMs: number): Promise<() => void> {
    const want = Math.min(Math.max(0, bytes), this.limit);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        bytes: want,
        grant: () => {
          clearTimeout(timer);
          this.take(want);
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            this.used -= want;
            this.drain();
          });
        },
      };
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(waiter);
        if (i < 0) return;
        this.queue.splice(i, 1);
        this.drain();
        reject(new StorageUnavailableError(`upload buffers are full (${this.limit} bytes in use); retry later`));
      }, timeoutMs);
      timer.unref?.();
      this.queue.push(waiter);
      this.drain();
    });
  }

  private take(bytes: number): void {
    this.used += bytes;
    this.highWater = Math.max(this.highWater, this.used);
  }

  /** Grants waiters in order; one that does not fit yet holds back those behind it (no starvation). */
  private drain(): void {
    while (this.queue.length > 0 && this.used + this.queue[0]!.bytes <= this.limit) this.queue.shift()!.grant();
  }
}
