/**
 * Usage signals: download counts and stars.
 *
 * Downloads are counted in memory on each manifest pull and written in one transaction per
 * flush (every few seconds and at shutdown), never a database write per GET: a pull storm
 * costs a Map increment. A crash loses at most one interval of counts, which is acceptable for
 * a popularity signal (they are not audit data and not in the event log). Counted per
 * repository, per manifest digest and per tag the manifest was asked for by; a tag's count is
 * its name's, so a tag deleted and set again keeps counting.
 *
 * Stars are a user's own mutation, so each one is an event (`search.star.add` / `.remove`).
 */
import type { Db } from '../meta/db.js';
import { appendEvent } from '../meta/events.js';

/**
 * `ref` '' is the repository total; `algorithm:hex` a manifest digest; anything else a tag (the
 * tag grammar has no ':', a digest always has one).
 */
const REPOSITORY_TOTAL = '';
const key = (repository: string, ref: string) => `${repository}\n${ref}`;

export class DownloadCounter {
  private pending = new Map<string, number>();

  constructor(private readonly db: Db) {}

  record(repository: string, digest: string, tag?: string): void {
    for (const ref of tag === undefined ? [REPOSITORY_TOTAL, digest] : [REPOSITORY_TOTAL, digest, tag]) {
      const k = key(repository, ref);
      this.pending.set(k, (this.pending.get(k) ?? 0) + 1);
    }
  }

  /** Writes the pending counts in one transaction. */
  flush(): void {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const upsert = this.db.$client.prepare('INSERT INTO search_downloads(repository, ref, count) VALUES (?, ?, ?) ON CONFLICT(repository, ref) DO UPDATE SET count = search_downloads.count + excluded.count');
    this.db.$client.transaction(() => {
      for (const [k, n] of batch) {
        const nl = k.indexOf('\n');
        upsert.run(k.slice(0, nl), k.slice(nl + 1), n);
      }
    })();
  }

  /** Stored plus not yet flushed. */
  count(repository: string, digest?: string): number {
    const ref = digest ?? REPOSITORY_TOTAL;
    const stored = this.db.$client.prepare('SELECT count FROM search_downloads WHERE repository = ? AND ref = ?').pluck().get(repository, ref) as number | undefined;
    return (stored ?? 0) + (this.pending.get(key(repository, ref)) ?? 0);
  }

  /** Counts of these tags (a page of a tag table: one query), stored plus not yet flushed. */
  countTags(repository: string, tags: string[]): Map<string, number> {
    const out = new Map(tags.map((t) => [t, this.pending.get(key(repository, t)) ?? 0]));
    for (let i = 0; i < tags.length; i += 500) {
      const chunk = tags.slice(i, i + 500);
      const rows = this.db.$client.prepare(`SELECT ref, count FROM search_downloads WHERE repository = ? AND ref IN (${chunk.map(() => '?').join(', ')})`).all(repository, ...chunk) as { ref: string; count: number }[];
      for (const r of rows) out.set(r.ref, (out.get(r.ref) ?? 0) + r.count);
    }
    return out;
  }
}

export class StarStore {
  constructor(private readonly db: Db) {}

  /** Returns whether the star changed anything (an event is written only then). */
  set(repository: string, user: string, starred: boolean, actor: string): boolean {
    return this.db.transaction((tx) => {
      const res = starred
        ? this.db.$client.prepare('INSERT INTO search_stars(repository, "user", created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(repository, user, Date.now())
        : this.db.$client.prepare('DELETE FROM search_stars WHERE repository = ? AND "user" = ?').run(repository, user);
      if (res.changes === 0) return false;
      // The star belongs to the user (`after.user`), whichever of its keys the actor names.
      if (starred) appendEvent(tx, { actor, action: 'search.star.add', repository, after: { user } });
      else appendEvent(tx, { actor, action: 'search.star.remove', repository, before: { user } });
      return true;
    });
  }

  count(repository: string): number {
    return this.db.$client.prepare('SELECT count(*) FROM search_stars WHERE repository = ?').pluck().get(repository) as number;
  }

  starredBy(repository: string, user: string): boolean {
    return this.db.$client.prepare('SELECT 1 FROM search_stars WHERE repository = ? AND "user" = ?').get(repository, user) !== undefined;
  }
}
