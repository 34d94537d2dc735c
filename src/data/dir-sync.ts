/**
 * Group commit for directory fsyncs. Concurrent commits rename into the same few directories
 * (uploads/, blobs/<algo>/<xx>/); each needs an fsync of the directory that starts after its
 * rename. A caller arriving while a sync of that directory runs cannot use it (it may have
 * started before the caller's rename), so it queues the next one, and everyone arriving until
 * that one starts shares it: one fsync per directory per round instead of one per commit.
 */
export class DirSyncer {
  private readonly dirs = new Map<string, { running?: Promise<void>; queued?: Promise<void> }>();

  constructor(private readonly syncOne: (dir: string) => Promise<void>) {}

  /** Resolves after an fsync of `dir` that started after this call. */
  sync(dir: string): Promise<void> {
    let entry = this.dirs.get(dir);
    if (!entry) this.dirs.set(dir, (entry = {}));
    const e = entry;
    if (e.queued) return e.queued;
    if (!e.running) return this.start(dir, e);
    const after = (): Promise<void> => {
      e.queued = undefined;
      return this.start(dir, e);
    };
    e.queued = e.running.then(after, after);
    return e.queued;
  }

  private start(dir: string, e: { running?: Promise<void>; queued?: Promise<void> }): Promise<void> {
    const p = this.syncOne(dir);
    e.running = p;
    const done = (): void => {
      if (e.running === p) e.running = undefined;
      if (!e.running && !e.queued) this.dirs.delete(dir);
    };
    p.then(done, done);
    return p;
  }
}
