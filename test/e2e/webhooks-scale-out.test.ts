/**
 * Webhooks with several registry processes on one database (issue #15): every process runs a
 * dispatcher, yet each event reaches a receiver once, because one process at a time holds a
 * subscription's lease. A holder that stops releases it; one that crashes loses it when it runs out.
 * Runs on SQLite (one file shared by the processes) and, with ARTIFACT_STORE_TEST_POSTGRES_URL,
 * on PostgreSQL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { metadataTarget, openDatabase, type Db } from '../../src/meta/db.js';
import { pushBlob, randomBlob } from '../helpers/http.js';
import { disposeRegistryProcess, startRegistryProcess, startTestRegistry, type RegistryProcess, type TestRegistry } from '../helpers/registry.js';
import { receiver, until, type Receiver } from '../helpers/webhook-receiver.js';

const SECRET = 'a-webhook-secret-of-some-length';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function subscribe(url: string, target: string): Promise<string> {
  const res = await fetch(`${url}/api/v1/webhooks`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ url: target, events: ['oci.blob.push'], namespaces: ['team'], secret: SECRET }) });
  expect(res.status, await res.clone().text()).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/** Each received event's digest, in arrival order. */
const digests = (rx: Receiver): string[] => rx.got.map((g) => g.body.data.digest!);

/** Waits for `want` to have arrived, then a while longer: a duplicate from the other process would show. */
async function settled(rx: Receiver, want: string[], quiet = 1000): Promise<void> {
  await until(() => want.every((d) => digests(rx).includes(d)), 20_000);
  await new Promise((r) => setTimeout(r, quiet));
}

function claimOf(db: Db, id: string): { claimed_by: string | null; claimed_until: number | null } {
  return db.$client.prepare('SELECT claimed_by, claimed_until FROM webhooks WHERE id = ?').get(id) as { claimed_by: string | null; claimed_until: number | null };
}

describe('webhooks across processes on one database', () => {
  it('two processes deliver each event exactly once; a holder that stops hands over at once', async () => {
    const settings = { webhookAllowPrivateTargets: true, webhookRetryBaseMs: 20 };
    const a: TestRegistry = await startTestRegistry(settings);
    let aStopped = false;
    cleanups.push(async () => void (aStopped || (await a.stop())));
    // A slow receiver keeps each delivery in flight across dispatcher ticks: without the lease
    // the other process would read the same cursor meanwhile and send the event again.
    const rx = await receiver(() => new Promise((r) => setTimeout(() => r(204), 100)));
    cleanups.push(rx.close);
    await subscribe(a.url, rx.url);
    const sent = [await pushBlob(a.url, 'team/scale', randomBlob(10))];
    await until(() => rx.got.length === 1); // A alone: it holds the subscription

    const b = await startTestRegistry(settings, a.dataDir);
    cleanups.push(() => b.stop());
    for (let i = 0; i < 10; i++) sent.push(await pushBlob(i % 2 ? a.url : b.url, 'team/scale', randomBlob(20 + i)));
    await settled(rx, sent);
    expect(digests(rx)).toEqual(sent); // once each, in log order

    // A stops (releasing its lease, 30 s by default): B delivers the next event well before that.
    await a.stop();
    aStopped = true;
    const started = Date.now();
    sent.push(await pushBlob(b.url, 'team/scale', randomBlob(99)));
    await settled(rx, sent, 300);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(digests(rx)).toEqual(sent);
  });

  it('when the holder crashes, the other process takes over once its lease has run out; nothing is lost or doubled', async () => {
    const leaseMs = 2000;
    const at: number[] = [];
    const rx = await receiver(() => (at.push(Date.now()), new Promise((r) => setTimeout(() => r(204), 50))));
    cleanups.push(rx.close);
    const env = { ARTIFACT_STORE_WEBHOOK_LEASE_MS: String(leaseMs), ARTIFACT_STORE_WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };
    const p: RegistryProcess = await startRegistryProcess(env);
    cleanups.push(() => disposeRegistryProcess(p));
    const id = await subscribe(p.url, rx.url);
    const sent = [await pushBlob(p.url, 'team/crash', randomBlob(10))];
    await until(() => rx.got.length === 1, 20_000); // the spawned process alone: it holds the lease

    const b = await startTestRegistry({ webhookAllowPrivateTargets: true, webhookLeaseMs: leaseMs }, p.dataDir);
    cleanups.push(() => b.stop());
    const db = openDatabase(metadataTarget({ dataDir: p.dataDir }));
    cleanups.push(async () => db.$client.close());
    const holder = claimOf(db, id).claimed_by;
    expect(holder).toMatch(new RegExp(`/${p.proc.pid}/`));
    for (let i = 0; i < 4; i++) sent.push(await pushBlob(b.url, 'team/crash', randomBlob(20 + i)));
    await settled(rx, sent, 500);
    expect(digests(rx)).toEqual(sent);

    // kill -9: no release. The lease stays until it runs out; then B claims and delivers.
    await p.kill('SIGKILL');
    const leftUntil = claimOf(db, id).claimed_until!;
    for (let i = 0; i < 3; i++) sent.push(await pushBlob(b.url, 'team/crash', randomBlob(50 + i)));
    await settled(rx, sent, 500);
    expect(digests(rx)).toEqual(sent);
    // Not before the crashed holder's lease ran out (same machine, same clock).
    for (const t of at.slice(5)) expect(t).toBeGreaterThanOrEqual(leftUntil);
    const now = claimOf(db, id);
    expect(now.claimed_by).not.toBe(holder);
    expect(now.claimed_by).toMatch(new RegExp(`/${process.pid}/`));
  }, 90_000);
});
