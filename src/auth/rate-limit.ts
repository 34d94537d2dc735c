/** Token-bucket rate limiting per credential or, for anonymous callers, per client address. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    /** Injected so tests control time instead of depending on how fast the machine is. */
    private readonly clock: () => number = Date.now,
  ) {}

  /** Seconds until one token is available (0: now), without taking it. */
  peek(key: string, now = this.clock()): number {
    if (this.perSecond <= 0) return 0;
    const b = this.refill(key, now);
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / this.perSecond);
  }

  /** Takes one token; returns 0 when allowed, else the seconds to wait. */
  take(key: string, now = this.clock()): number {
    if (this.perSecond <= 0) return 0;
    const b = this.refill(key, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.perSecond);
  }

  /** Gives back a token taken by `take` (a reservation that turned out not to be needed). */
  refund(key: string, now = this.clock()): void {
    if (this.perSecond <= 0) return;
    const b = this.refill(key, now);
    b.tokens = Math.min(this.burst, b.tokens + 1);
  }

  private refill(key: string, now: number): { tokens: number; at: number } {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > 100_000) this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    return b;
  }

  /** Forget buckets that have refilled completely: they hold no information. */
  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(k);
  }
}
