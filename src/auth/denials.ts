/**
 * Refusals of privileged actions go to the append-only event log, so a caller must not be able
 * to flood it (issue #18: 40 requests for 40 invented repository names wrote 40 events). Per
 * actor and attempted action, each window records the first `budget` distinct refusals as events;
 * the rest are only counted, and one summarising event per window records how many there were.
 */

export interface DenialRecord {
  actor: string;
  /** The attempted action (an audit-action id such as `oci.push` or `user.manage`). */
  action: string;
  repository: string | null;
  reason: string;
  /** Set on a summary: refusals in the window that were not recorded one by one. */
  suppressed?: number;
  windowStart?: number;
}

export interface DenialLogOptions {
  windowMs: number;
  budget: number;
  /** Open windows kept at most; beyond it every window is closed (summaries written) at once. */
  maxWindows: number;
}

export const DEFAULT_DENIAL_OPTIONS: DenialLogOptions = { windowMs: 60_000, budget: 5, maxWindows: 10_000 };

interface Window {
  start: number;
  written: number;
  suppressed: number;
  /** Repositories (and reasons) already recorded in this window: an exact repeat is only counted. */
  seen: Set<string>;
  timer?: ReturnType<typeof setTimeout>;
}

export class DenialLog {
  private readonly windows = new Map<string, Window>();
  /** Refusals not written as their own event since start (summaries count them again). */
  suppressedTotal = 0;

  constructor(
    private readonly write: (record: DenialRecord) => void,
    private readonly options: DenialLogOptions = DEFAULT_DENIAL_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {}

  record(actor: string, action: string, repository: string | null, reason: string): void {
    const key = `${actor}\0${action}`;
    const t = this.now();
    let w = this.windows.get(key);
    if (w && t - w.start >= this.options.windowMs) {
      this.close(key, w);
      w = undefined;
    }
    if (!w) {
      if (this.windows.size >= this.options.maxWindows) this.flush();
      w = { start: t, written: 0, suppressed: 0, seen: new Set() };
      this.windows.set(key, w);
    }
    const signature = `${repository ?? ''}\0${reason}`;
    if (!w.seen.has(signature) && w.written < this.options.budget) {
      w.written++;
      w.seen.add(signature);
      this.safeWrite({ actor, action, repository, reason });
      return;
    }
    w.suppressed++;
    this.suppressedTotal++;
    if (!w.timer) {
      const window = w;
      window.timer = setTimeout(() => {
        if (this.windows.get(key) === window) this.close(key, window);
      }, Math.max(0, window.start + this.options.windowMs - t));
      window.timer.unref?.();
    }
  }

  /** Closes every open window, writing the summaries owed (shutdown, or too many windows). */
  flush(): void {
    for (const [key, w] of [...this.windows]) this.close(key, w);
  }

  private close(key: string, w: Window): void {
    this.windows.delete(key);
    if (w.timer) clearTimeout(w.timer);
    if (w.suppressed === 0) return;
    const [actor, action] = key.split('\0') as [string, string];
    this.safeWrite({ actor, action, repository: null, reason: `${w.suppressed} further refusals of ${action} in this window were counted, not recorded one by one`, suppressed: w.suppressed, windowStart: w.start });
  }

  private safeWrite(record: DenialRecord): void {
    try {
      this.write(record);
    } catch {
      // A closed database (shutdown) must not crash a timer; a refusal record is best effort.
    }
  }
}
