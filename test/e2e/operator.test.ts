/**
 * Operator-facing behaviour (issue #19): /readyz probes the blob storage, trusted reverse
 * proxies name the client for rate limits and the access log, and the management API lists
 * users and organisations for the right callers only.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import type { BlobDriver } from '../../src/data/driver.js';
import { BlobNotFoundError } from '../../src/data/errors.js';
import { storageProbe } from '../../src/ops/storage-probe.js';
import { TrustedProxies } from '../../src/ops/trusted-proxies.js';
import { startRegistry } from '../../src/server.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startS3Server } from '../helpers/s3-server.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

describe('/readyz includes the blob storage', () => {
  it('is 503 with a reason when the storage cannot be read, and caches the answer', async () => {
    const reg = await startTestRegistry();
    try {
      // The blobs directory replaced by a file: every stat fails with ENOTDIR (not "absent").
      rmSync(join(reg.dataDir, 'blobs'), { recursive: true, force: true });
      writeFileSync(join(reg.dataDir, 'blobs'), 'not a directory');
      const res = await fetch(`${reg.url}/readyz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { status: string; reason: string };
      expect(body.status).toBe('storage unavailable');
      expect(body.reason).toMatch(/ENOTDIR/);
      // Repaired at once: the cached failure still answers until the cache expires (no storage call per probe).
      rmSync(join(reg.dataDir, 'blobs'), { force: true });
      mkdirSync(join(reg.dataDir, 'blobs'));
      expect((await fetch(`${reg.url}/readyz`)).status).toBe(503);
    } finally {
      await reg.stop();
    }
  });

  it('probes at most once per cache period, recovers after it, and fails a hanging probe', async () => {
    let calls = 0;
    let mode: 'fail' | 'ok' | 'hang' = 'fail';
    const driver = {
      read: async (digest: string) => {
        calls++;
        if (mode === 'fail') throw new Error('connect ECONNREFUSED 127.0.0.1:9');
        if (mode === 'hang') return new Promise<never>(() => undefined);
        throw new BlobNotFoundError(digest); // the healthy answer: no such blob
      },
    } as unknown as BlobDriver;
    const probe = storageProbe(driver, 200, 100);
    expect(await Promise.all([probe(), probe(), probe()])).toEqual(['connect ECONNREFUSED 127.0.0.1:9', 'connect ECONNREFUSED 127.0.0.1:9', 'connect ECONNREFUSED 127.0.0.1:9']);
    expect(calls).toBe(1);
    mode = 'ok';
    expect(await probe()).not.toBeNull();
    await new Promise((r) => setTimeout(r, 250));
    expect(await probe()).toBeNull();
    expect(calls).toBe(2);
    mode = 'hang';
    await new Promise((r) => setTimeout(r, 250));
    expect(await probe()).toMatch(/no answer within 100 ms/);
  });

  it('is 503 naming the error when the S3 endpoint is unreachable (the S3 driver itself)', async () => {
    const reg = await startTestRegistry({ storage: 's3', s3Bucket: 'b', s3Endpoint: 'http://127.0.0.1:9', s3ForcePathStyle: true, s3AccessKeyId: 'x', s3SecretAccessKey: 'y' });
    try {
      const res = await fetch(`${reg.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'storage unavailable', reason: expect.stringMatching(/ECONNREFUSED|no answer within/) });
      expect((await fetch(`${reg.url}/healthz`)).status).toBe(200); // liveness is not storage
    } finally {
      await reg.stop();
    }
  });

  it('is 503 naming the missing bucket on a real S3 server (HEAD alone cannot tell a missing bucket from a missing key)', async () => {
    const s3 = await startS3Server();
    const settings = { storage: 's3', s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3ForcePathStyle: true, s3AccessKeyId: s3.accessKeyId, s3SecretAccessKey: s3.secretAccessKey };
    const missing = await startTestRegistry({ ...settings, s3Bucket: 'no-such-bucket' });
    const present = await startTestRegistry({ ...settings, s3Bucket: s3.bucket });
    try {
      const res = await fetch(`${missing.url}/readyz`);
      const body = (await res.json()) as { status: string; reason?: string };
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body).toMatchObject({ status: 'storage unavailable', reason: expect.stringMatching(/NoSuchBucket|bucket does not exist/i) });
      expect((await fetch(`${present.url}/readyz`)).status).toBe(200);
    } finally {
      await missing.stop();
      await present.stop();
      await s3.stop();
    }
  }, 60_000);

  it('is 200 on a healthy registry', async () => {
    const reg = await startTestRegistry();
    try {
      expect((await fetch(`${reg.url}/readyz`)).status).toBe(200);
    } finally {
      await reg.stop();
    }
  });
});

describe('trusted proxies', () => {
  it('parses X-Forwarded-For and Forwarded only from a trusted peer, rightmost untrusted hop first', () => {
    const p = new TrustedProxies(['10.0.0.0/8', '::1']);
    expect(p.clientOf('10.1.2.3', { xForwardedFor: '203.0.113.9' })).toBe('203.0.113.9');
    expect(p.clientOf('::ffff:10.1.2.3', { xForwardedFor: '203.0.113.9' })).toBe('203.0.113.9');
    expect(p.clientOf('192.0.2.1', { xForwardedFor: '203.0.113.9' })).toBe('192.0.2.1'); // untrusted peer: header ignored
    // A client's own (spoofed) entry on the left is not believed: the hop the proxy added is.
    expect(p.clientOf('10.1.2.3', { xForwardedFor: '1.1.1.1, 203.0.113.9, 10.9.9.9' })).toBe('203.0.113.9');
    expect(p.clientOf('::1', { forwarded: 'for="[2001:db8::7]:4711";proto=https, for=10.0.0.5' })).toBe('2001:db8::7');
    expect(p.clientOf('::1', { forwarded: 'for=198.51.100.4:8080' })).toBe('198.51.100.4');
    expect(p.clientOf('10.1.2.3', { xForwardedFor: 'garbage' })).toBe('10.1.2.3');
    expect(p.clientOf('10.1.2.3', {})).toBe('10.1.2.3');
    expect(new TrustedProxies([]).clientOf('10.1.2.3', { xForwardedFor: '203.0.113.9' })).toBe('10.1.2.3');
  });

  it('the setting is validated and read from a comma-separated env var', () => {
    expect(loadConfig({ ARTIFACT_STORE_TRUSTED_PROXIES: '127.0.0.1/32, ::1' }).trustedProxies).toEqual(['127.0.0.1/32', '::1']);
    expect(() => loadConfig({ ARTIFACT_STORE_TRUSTED_PROXIES: '10.0.0.0/99' })).toThrow(/trustedProxies/);
  });

  async function rateLimited(trustedProxies: string[]): Promise<{ statuses: number[]; clients: unknown[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'as-proxy-'));
    const lines: { client?: unknown; path?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as { client?: unknown });
        done();
      },
    });
    const config = loadConfig({}, { port: 0, host: '127.0.0.1', dataDir: dir, fsync: false, auth: 'none', rateLimitPerSecond: 1, rateLimitBurst: 1, trustedProxies });
    const reg = await startRegistry(config, pino({ level: 'info' }, sink));
    try {
      const statuses: number[] = [];
      for (const client of ['203.0.113.1', '203.0.113.2', '203.0.113.1']) statuses.push((await fetch(`${reg.url}/v2/`, { headers: { 'X-Forwarded-For': client } })).status);
      await new Promise((r) => setTimeout(r, 50));
      return { statuses, clients: lines.filter((l) => l.path === '/v2/').map((l) => l.client) };
    } finally {
      await reg.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('rate limits and the access log use the forwarded client when the proxy is trusted', async () => {
    const trusted = await rateLimited(['127.0.0.1', '::1']);
    expect(trusted.statuses).toEqual([200, 200, 429]);
    expect(trusted.clients).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.1']);
    // Not trusted: the header is anyone's to send, so all three are the same (socket) client.
    const untrusted = await rateLimited([]);
    expect(untrusted.statuses).toEqual([200, 429, 429]);
    expect(untrusted.clients.every((c) => c === '127.0.0.1' || c === '::ffff:127.0.0.1')).toBe(true);
  });
});

describe('management lists', () => {
  let reg: TestRegistry;
  const root = basic('root', PASSWORD);
  const olive = basic('olive', PASSWORD);
  beforeAll(async () => {
    reg = await startTestRegistry({ auth: 'token' });
    await withIdentities(reg.dataDir, async (ids, s) => {
      await s.user('root', true);
      const oliveId = await s.user('olive');
      const oscarId = await s.user('oscar');
      s.org('acme', oliveId);
      s.org('globex', oscarId);
      const key = s.key(ids.principalByName('root')!.id, ['admin']);
      keys.rootAdminKey = basic('root', key.token);
    });
  });
  afterAll(async () => reg.stop());
  const keys: Record<string, string> = {};
  const get = (path: string, auth?: string) => fetch(`${reg.url}${path}`, { headers: auth ? { Authorization: auth } : {} });

  it('GET /api/v1/users: administrators only, no secrets', async () => {
    const res = await get('/api/v1/users', root);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { users: Record<string, unknown>[] };
    expect(body.users.map((u) => u.name)).toEqual(['olive', 'oscar', 'root']);
    expect(body.users.find((u) => u.name === 'root')).toMatchObject({ admin: true, disabled: false });
    expect(JSON.stringify(body)).not.toMatch(/scrypt|hash/i);
    expect((await get('/api/v1/users', olive)).status).toBe(403);
    expect((await get('/api/v1/users')).status).toBe(401);
    expect((await get('/api/v1/users', keys.rootAdminKey)).status).toBe(200);
  });

  it('GET /api/v1/orgs: every organisation for administrators, only their own for others', async () => {
    const all = (await (await get('/api/v1/orgs', root)).json()) as { orgs: { name: string }[] };
    expect(all.orgs.map((o) => o.name)).toEqual(['acme', 'globex']);
    const mine = (await (await get('/api/v1/orgs', olive)).json()) as { orgs: { name: string; role: string }[] };
    expect(mine.orgs).toMatchObject([{ name: 'acme', role: 'owner' }]);
    expect((await get('/api/v1/orgs')).status).toBe(401);
  });

  it('an administrator resets another user\'s password (an event), and the old one stops working', async () => {
    const res = await fetch(`${reg.url}/api/v1/users/oscar/password`, { method: 'PUT', headers: { Authorization: root, 'Content-Type': 'application/json' }, body: JSON.stringify({ password: 'a brand new passphrase' }) });
    expect(res.status).toBe(204);
    expect((await get('/api/v1/whoami', basic('oscar', PASSWORD))).status).toBe(401);
    expect((await get('/api/v1/whoami', basic('oscar', 'a brand new passphrase'))).status).toBe(200);
  });

  it('a bearer token (OCI grants only) is refused on management routes, as the README says', async () => {
    const tok = await fetch(`${reg.url}/token?service=artifact-store&scope=repository:root/x:pull`, { headers: { Authorization: root } });
    expect(tok.status).toBe(200);
    const { token } = (await tok.json()) as { token: string };
    expect((await get('/api/v1/whoami', `Bearer ${token}`)).status).toBe(401);
  });
});
