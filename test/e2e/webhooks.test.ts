/**
 * Webhooks against a real HTTP receiver on loopback: CloudEvents bodies, HMAC signatures,
 * order, retries with backoff, dead letters, restart resumption, the SSRF guard.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/webhooks/delivery.js';
import { globMatches } from '../../src/webhooks/glob.js';
import { isPublicAddress } from '../../src/webhooks/targets.js';
import { expectError, pushBlob, pushImage, randomBlob } from '../helpers/http.js';
import { removeDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { receiver, until } from '../helpers/webhook-receiver.js';

const SECRET = 'a-webhook-secret-of-some-length';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function registry(settings: Record<string, unknown> = {}): Promise<TestRegistry> {
  const reg = await startTestRegistry({ webhookAllowPrivateTargets: true, webhookRetryBaseMs: 20, ...settings });
  cleanups.push(() => reg.stop());
  return reg;
}

async function subscribe(url: string, body: Record<string, unknown>): Promise<{ id: string }> {
  const res = await fetch(`${url}/api/v1/webhooks`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ secret: SECRET, ...body }) });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { id: string };
}

describe('webhooks', () => {
  it('delivers signed CloudEvents in log order, filtered by glob and namespace', async () => {
    const reg = await registry();
    const rx = await receiver(() => 204);
    cleanups.push(rx.close);
    const created = await subscribe(reg.url, { url: rx.url, events: ['oci.manifest.*', 'oci.tag.*'], namespaces: ['team'] });
    expect(JSON.stringify(created)).not.toContain(SECRET);

    const a = await pushImage(reg.url, 'team/app', 'v1');
    await pushImage(reg.url, 'other/app', 'v1'); // another namespace: never delivered
    const b = await pushImage(reg.url, 'team/app', 'v2');
    await until(() => rx.got.length >= 4);
    await new Promise((r) => setTimeout(r, 300)); // nothing else may arrive
    expect(rx.got.map((g) => [g.body.type, g.body.data.digest])).toEqual([
      ['oci.manifest.push', a.digest],
      ['oci.tag.set', a.digest],
      ['oci.manifest.push', b.digest],
      ['oci.tag.set', b.digest],
    ]);
    const seqs = rx.got.map((g) => g.body.data.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    for (const g of rx.got) {
      expect(g.headers['content-type']).toBe('application/cloudevents+json');
      expect(g.body.specversion).toBe('1.0');
      expect(g.body.id).toBe(String(g.body.data.seq));
      expect(Number.isNaN(Date.parse(g.body.time))).toBe(false);
      expect(g.headers['x-artifact-store-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(g.raw).digest('hex')}`);
    }
  });

  it('retries a failing receiver with backoff, keeping the same event id, then delivers', async () => {
    const reg = await registry();
    const rx = await receiver((n) => (n < 3 ? 500 : 200));
    cleanups.push(rx.close);
    await subscribe(reg.url, { url: rx.url, events: ['oci.blob.push'], namespaces: ['team'] });
    const digest = await pushBlob(reg.url, 'team/blobs', randomBlob(100));
    await until(() => rx.got.length === 1);
    expect(rx.attempts()).toBe(4);
    expect(rx.got[0]!.body.data.digest).toBe(digest);
  });

  it('waits at least the backoff floor between attempts: base·2^(n-1), minus the 50 % jitter', async () => {
    const base = 200;
    const reg = await registry({ webhookRetryBaseMs: base });
    const at: number[] = [];
    const rx = await receiver((n) => {
      at.push(performance.now());
      return n < 3 ? 500 : 204;
    });
    cleanups.push(rx.close);
    await subscribe(reg.url, { url: rx.url, events: ['oci.blob.push'], namespaces: ['team'] });
    await pushBlob(reg.url, 'team/backoff', randomBlob(10));
    await until(() => rx.got.length === 1);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps).toHaveLength(3);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(0.5 * base * 2 ** i - 5));
  });

  it('dead-letters an event after the last attempt and moves on', async () => {
    const reg = await registry({ webhookMaxAttempts: 2 });
    let failFirst = true;
    const rx = await receiver(() => (failFirst ? 500 : 200));
    cleanups.push(rx.close);
    const { id } = await subscribe(reg.url, { url: rx.url, events: ['oci.blob.push'], namespaces: ['team'] });
    const first = await pushBlob(reg.url, 'team/dl', randomBlob(10));
    await until(() => rx.attempts() >= 2);
    failFirst = false;
    const second = await pushBlob(reg.url, 'team/dl', randomBlob(10));
    await until(() => rx.got.some((g) => g.body.data.digest === second));
    expect(rx.got.some((g) => g.body.data.digest === first)).toBe(false);
    const view = (await (await fetch(`${reg.url}/api/v1/webhooks/${id}`)).json()) as { deadLettered: number; state: string; deadLetters: { seq: number; attempts: number; lastError: string }[] };
    expect(view.deadLetters).toHaveLength(1);
    expect(view).toMatchObject({ deadLettered: 1, state: 'ok' });
    const list = (await (await fetch(`${reg.url}/api/v1/webhooks`)).json()) as { webhooks: { id: string; deadLettered: number; deadLetters?: unknown }[] };
    expect(list.webhooks.find((w) => w.id === id)).toMatchObject({ deadLettered: 1 });
    expect(list.webhooks[0]!.deadLetters).toBeUndefined();
    expect(view.deadLetters[0]!.attempts).toBe(2);
    expect(view.deadLetters[0]!.lastError).toContain('500');
  });

  it('resumes after a restart: every event arrives at least once, in order', async () => {
    let reg = await registry();
    let up = false;
    const rx = await receiver(() => (up ? 200 : 503));
    cleanups.push(rx.close);
    await subscribe(reg.url, { url: rx.url, events: ['oci.blob.push'], namespaces: ['team'] });
    const digests: string[] = [];
    for (let i = 0; i < 5; i++) digests.push(await pushBlob(reg.url, 'team/restart', randomBlob(50 + i)));
    await until(() => rx.attempts() >= 1);
    reg = await reg.restart();
    cleanups.push(() => reg.stop());
    up = true;
    await until(() => new Set(rx.got.map((g) => g.body.data.digest)).size === 5);
    const firstSeen = [...new Set(rx.got.map((g) => g.body.data.digest))];
    expect(firstSeen).toEqual(digests);
  });

  it('refuses private targets unless allowed, and bad subscriptions', async () => {
    const reg = await registry({ webhookAllowPrivateTargets: false });
    const post = (body: unknown) => fetch(`${reg.url}/api/v1/webhooks`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    // IPv4-mapped and IPv4-compatible IPv6 literals (the URL parser rewrites them to hex: [::ffff:7f00:1], [::7f00:1]).
    for (const url of ['http://127.0.0.1:9/x', 'http://10.1.2.3/x', 'http://[::1]/x', 'http://169.254.169.254/latest', 'http://localhost/x', 'http://[::ffff:127.0.0.1]/x', 'http://[::127.0.0.1]/x', 'http://2130706433/x']) {
      await expectError(await post({ url, events: ['*'], secret: SECRET }), 400, 'INVALID_PAYLOAD');
    }
    await expectError(await post({ url: 'ftp://example.com/x', events: ['*'], secret: SECRET }), 400, 'INVALID_PAYLOAD');
    await expectError(await post({ url: 'http://user:pw@example.com/x', events: ['*'], secret: SECRET }), 400, 'INVALID_PAYLOAD');
    await expectError(await post({ url: 'http://example.com/x', events: [], secret: SECRET }), 400, 'INVALID_PAYLOAD');
    await expectError(await post({ url: 'http://example.com/x', events: ['*'], secret: 'short' }), 400, 'INVALID_PAYLOAD');
    const res = await post({ url: 'http://example.com/x', events: ['*'], secret: 'short' });
    expect(((await res.json()) as { errors: { retryable: boolean }[] }).errors[0]!.retryable).toBe(false);
  });

  it('refuses an IP-literal private target at delivery once private targets are no longer allowed', async () => {
    // Node connects to an IP literal without a DNS lookup: the connect-time guard must still apply.
    const dir = mkdtempSync(join(tmpdir(), 'as-wh-literal-'));
    cleanups.push(async () => removeDir(dir));
    const rx = await receiver(() => 204);
    cleanups.push(rx.close);
    const first = await startTestRegistry({ webhookAllowPrivateTargets: true, webhookRetryBaseMs: 20 }, dir);
    const { id } = await subscribe(first.url, { url: rx.url, events: ['oci.blob.push'], namespaces: ['team'] });
    await first.stop();
    const reg = await startTestRegistry({ webhookAllowPrivateTargets: false, webhookRetryBaseMs: 20 }, dir);
    cleanups.push(() => reg.stop());
    await pushBlob(reg.url, 'team/literal', randomBlob(10));
    let view: { lastError: string | null; pendingAttempts: number } = { lastError: null, pendingAttempts: 0 };
    const poll = setInterval(() => void fetch(`${reg.url}/api/v1/webhooks/${id}`).then(async (r) => (view = (await r.json()) as typeof view)), 50);
    try {
      await until(() => view.lastError !== null);
    } finally {
      clearInterval(poll);
    }
    expect(view.lastError).toContain('refused non-public address 127.0.0.1');
    expect(rx.attempts()).toBe(0);
  });

  it('a receiver that never finishes its answer neither stalls the subscription nor shutdown', async () => {
    // Answers 200 at once, then drips its body forever: the status is the answer.
    let requests = 0;
    const seen: string[] = [];
    const dripping = createServer((req, res) => {
      requests++;
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => {
        seen.push((JSON.parse(raw) as { data: { digest: string } }).data.digest);
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        const drip = setInterval(() => res.write('.'), 50);
        res.on('close', () => clearInterval(drip));
      });
    });
    await new Promise<void>((r) => dripping.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      dripping.closeAllConnections();
      await new Promise<void>((r) => dripping.close(() => r()));
    });
    const reg = await registry({ webhookTimeoutMs: 400 });
    await subscribe(reg.url, { url: `http://127.0.0.1:${(dripping.address() as AddressInfo).port}/hook`, events: ['oci.blob.push'], namespaces: ['team'] });
    const a = await pushBlob(reg.url, 'team/drip', randomBlob(10));
    const b = await pushBlob(reg.url, 'team/drip', randomBlob(11));
    await until(() => seen.length >= 2, 5000);
    expect(seen).toEqual([a, b]);
    expect(requests).toBe(2); // each delivered once: a 200 whose body never ends is still a 200
  });

  it('shutdown aborts a delivery in flight without counting it as a failed attempt; it is sent again after restart', async () => {
    let hang = true;
    const held: import('node:http').ServerResponse[] = [];
    const got: string[] = [];
    const slow = createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => {
        if (hang) return void held.push(res); // never answers
        got.push((JSON.parse(raw) as { data: { digest: string } }).data.digest);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      slow.closeAllConnections();
      await new Promise<void>((r) => slow.close(() => r()));
    });
    let reg = await registry({ webhookTimeoutMs: 60_000 });
    const { id } = await subscribe(reg.url, { url: `http://127.0.0.1:${(slow.address() as AddressInfo).port}/hook`, events: ['oci.blob.push'], namespaces: ['team'] });
    const digest = await pushBlob(reg.url, 'team/slow', randomBlob(10));
    await until(() => held.length === 1);
    const started = performance.now();
    hang = false;
    reg = await reg.restart(); // before: waited for the receiver's answer, up to webhookTimeoutMs (60 s)
    cleanups.push(() => reg.stop());
    expect(performance.now() - started).toBeLessThan(5000);
    await until(() => got.length === 1);
    expect(got).toEqual([digest]);
    const view = (await (await fetch(`${reg.url}/api/v1/webhooks/${id}`)).json()) as { pendingAttempts: number; deadLetters: unknown[]; delivered: number };
    expect(view).toMatchObject({ pendingAttempts: 0, deadLetters: [], delivered: 1 });
  });

  it('many subscriptions delivering at once share the shutdown signal without a listener-leak warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    cleanups.push(async () => void process.off('warning', onWarning));
    const reg = await registry();
    const rx = await receiver(() => 204);
    cleanups.push(rx.close);
    for (let i = 0; i < 12; i++) await subscribe(reg.url, { url: rx.url, events: ['oci.blob.push'], namespaces: ['team'] });
    await pushBlob(reg.url, 'team/many', randomBlob(10));
    await until(() => rx.got.filter((g) => g.body.type === 'oci.blob.push').length === 12);
    expect(warnings.filter((w) => /MaxListeners|memory leak/.test(w))).toEqual([]);
  });

  it('redacts the secret of a webhook.create event it delivers', async () => {
    const reg = await registry();
    const rx = await receiver(() => 204);
    cleanups.push(rx.close);
    await subscribe(reg.url, { url: rx.url, events: ['webhook.*'] });
    const other = 'the-second-subscriptions-secret';
    await subscribe(reg.url, { url: rx.url, events: ['oci.*'], secret: other });
    // Both creations (a subscription starts at the log head before its own creation event).
    await until(() => rx.got.length === 2);
    for (const g of rx.got) {
      expect(g.body.type).toBe('webhook.create');
      expect(g.raw).not.toContain(other);
      expect(g.raw).not.toContain(SECRET);
      expect((g.body.data as unknown as { after: { secret: string } }).after.secret).toBe('[redacted]');
    }
  });

  it('lists and deletes subscriptions without revealing secrets', async () => {
    const reg = await registry();
    const { id } = await subscribe(reg.url, { url: 'http://127.0.0.1:9/x', events: ['*'] });
    const list = await (await fetch(`${reg.url}/api/v1/webhooks`)).text();
    expect(list).toContain(id);
    expect(list).not.toContain(SECRET);
    expect((await fetch(`${reg.url}/api/v1/webhooks/${id}`, { method: 'DELETE' })).status).toBe(204);
    await expectError(await fetch(`${reg.url}/api/v1/webhooks/${id}`), 404, 'NOT_FOUND');
  });
});

describe('webhook globs and address guard', () => {
  it.each([
    ['*', 'oci.manifest.push', true],
    ['oci.*', 'oci.manifest.push', true],
    ['oci.*', 'identity.user.create', false],
    ['oci.manifest.push', 'oci.manifest.push', true],
    ['oci.manifest', 'oci.manifest.push', false],
    ['*.delete', 'oci.tag.delete', true],
    ['oci.*.delete', 'oci.manifest.push', false],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['', '', true],
  ])('%s matches %s: %s', (pattern, text, expected) => {
    expect(globMatches(pattern, text)).toBe(expected);
  });

  it('backoff doubles per attempt within ±50 % jitter, capped at 5 minutes', () => {
    for (let attempts = 1; attempts <= 20; attempts++) {
      const nominal = Math.min(1000 * 2 ** (attempts - 1), 300_000);
      const samples = Array.from({ length: 200 }, () => backoffMs(attempts, 1000));
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(nominal * 0.5);
      expect(Math.max(...samples)).toBeLessThanOrEqual(nominal * 1.5);
      expect(new Set(samples).size).toBeGreaterThan(1); // jittered, so retries do not arrive in lockstep
    }
  });

  it('does not blow up on hostile patterns', () => {
    const started = performance.now();
    expect(globMatches('*a'.repeat(100) + 'b', 'a'.repeat(200))).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it.each([
    ['8.8.8.8', true],
    ['127.0.0.1', false],
    ['10.0.0.1', false],
    ['172.16.5.4', false],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['::1', false],
    ['fe80::1', false],
    ['fd00::1', false],
    ['fec0::1', false],
    ['::7f00:1', false],
    ['::ffff:10.0.0.1', false],
    ['::ffff:8.8.8.8', true],
    ['2001:4860:4860::8888', true],
    ['not-an-ip', false],
  ])('%s public: %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});
