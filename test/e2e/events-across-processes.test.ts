/**
 * The changefeed with two registry processes on one database (issue #15): an event appended
 * through one process is streamed by the other. The stream polls the log in the database (no
 * in-process notification), so it needs nothing shared but the database. SQLite file, or
 * PostgreSQL with ARTIFACT_STORE_TEST_POSTGRES_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob, randomBlob } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let a: TestRegistry;
let b: TestRegistry;
beforeAll(async () => {
  a = await startTestRegistry();
  b = await startTestRegistry({}, a.dataDir);
});
afterAll(async () => {
  await b.stop();
  await a.stop();
});

/** Reads the feed's events (`seq`, `repository`) until `done` holds or `ms` pass. */
async function readFeed(url: string, done: (seen: { seq: number; action: string; repository: string | null }[]) => boolean, ms = 15_000): Promise<{ seq: number; action: string; repository: string | null }[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  const seen: { seq: number; action: string; repository: string | null }[] = [];
  try {
    const res = await fetch(url, { signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let buf = '';
    while (!done(seen)) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += Buffer.from(value).toString('utf8');
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const data = /^data: (.*)$/m.exec(buf.slice(0, cut))?.[1];
        buf = buf.slice(cut + 2);
        if (data) seen.push(JSON.parse(data) as { seq: number; action: string; repository: string | null });
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return seen;
}

describe('event changefeed across processes', () => {
  it('a stream on one process carries events appended through the other, in order, once each', async () => {
    const feed = readFeed(`${b.url}/api/v1/events/stream`, (seen) => seen.filter((e) => e.repository === 'cross/feed' && e.action === 'oci.blob.push').length >= 3);
    await new Promise((r) => setTimeout(r, 300)); // the stream is open and idle
    await pushBlob(a.url, 'cross/feed', randomBlob(10));
    await pushBlob(b.url, 'cross/feed', randomBlob(11));
    await pushBlob(a.url, 'cross/feed', randomBlob(12));
    const seen = await feed;
    expect(seen.filter((e) => e.repository === 'cross/feed' && e.action === 'oci.blob.push')).toHaveLength(3);
    const seqs = seen.map((e) => e.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
  });
});
