/**
 * Pull times for retention's keepPulledWithinDays, recorded cheaply: a manifest GET/HEAD only
 * updates an in-memory map; the map is written in one transaction every FLUSH_MS, before each
 * GC run, and when it grows past MAX_PENDING. A crash loses at most the last interval, which
 * only makes retention keep less by pull time for content pulled in that interval.
 */
import type { Logger } from 'pino';
import type { OperationsStore } from './store.js';

const MAX_PENDING = 10_000;

export class PullRecorder {
  private pending = new Map<string, { repository: string; digest: string; at: number }>();

  constructor(
    private readonly store: OperationsStore,
    private readonly log: Logger,
  ) {}

  record(repository: string, digest: string, at = Date.now()): void {
    this.pending.set(`${repository}@${digest}`, { repository, digest, at });
    if (this.pending.size >= MAX_PENDING) this.flush();
  }

  flush(): void {
    if (this.pending.size === 0 || !this.store.db.$client.open) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    try {
      this.store.recordPulls(batch);
    } catch (err) {
      this.log.warn({ err, pulls: batch.length }, 'recording pull times failed');
    }
  }
}
