/** The event changefeed: Server-Sent Events, resumable from a sequence number. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob, randomBlob } from '../helpers/http.js';
import { startRegistryProcess, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

interface FeedEvent {
  id: number;
  data: { seq: number; action: string; repository: string | null; digest: string | null; hash: string; prevHash: string };
}

/** Reads SSE messages until `done` says stop (or the time limit passes), then aborts. */
async function readFeed(url: string, headers: Record<string, string>, done: (events: FeedEvent[]) => boolean, ms = 10_000): Promise<FeedEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  const events: FeedEvent[] = [];
  try {
    const res = await fetch(url, { headers, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let buf = '';
    while (!done(events)) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += Buffer.from(value).toString('utf8');
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const id = /^id: (\d+)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (id && data) events.push({ id: Number(id), data: JSON.parse(data) as FeedEvent['data'] });
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return events;
}

describe('event changefeed', () => {
  it('streams new events live, then resumes after Last-Event-ID without gaps or repeats', async () => {
    const first = await pushBlob(reg.url, 'feed/app', randomBlob(100));
    const live = readFeed(`${reg.url}/api/v1/events/stream`, {}, (ev) => ev.some((e) => e.data.action === 'oci.blob.push' && e.data.repository === 'feed/live'));
    await new Promise((r) => setTimeout(r, 300));
    await pushBlob(reg.url, 'feed/live', randomBlob(100));
    const seen = await live;
    // readFeed returns whatever it saw when its time runs out: the live event must be among it.
    expect(seen.some((e) => e.data.action === 'oci.blob.push' && e.data.repository === 'feed/live')).toBe(true);
    expect(seen.map((e) => e.data.digest)).toContain(first);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.id).toBe(seen[i - 1]!.id + 1);
      expect(seen[i]!.data.prevHash).toBe(seen[i - 1]!.data.hash);
    }
    const last = seen[seen.length - 1]!.id;
    await pushBlob(reg.url, 'feed/after', randomBlob(100));
    const resumed = await readFeed(`${reg.url}/api/v1/events/stream`, { 'Last-Event-ID': String(last) }, (ev) => ev.some((e) => e.data.repository === 'feed/after' && e.data.action === 'oci.blob.push'));
    expect(resumed.some((e) => e.data.repository === 'feed/after' && e.data.action === 'oci.blob.push')).toBe(true);
    expect(resumed[0]!.id).toBe(last + 1);
    expect(resumed.every((e) => e.id > last)).toBe(true);
  });

  it('a server with an open feed still shuts down promptly', async () => {
    const proc = await startRegistryProcess();
    try {
      const feed = readFeed(`${proc.url}/api/v1/events/stream`, {}, () => false, 15_000);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      expect(await proc.kill('SIGTERM')).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
      await feed;
    } finally {
      await proc.stop();
    }
  });

  it('needs an administrator when auth is on', async () => {
    const secured = await startTestRegistry({ auth: 'token' });
    try {
      expect((await fetch(`${secured.url}/api/v1/events/stream`)).status).toBe(401);
    } finally {
      await secured.stop();
    }
  });
});
