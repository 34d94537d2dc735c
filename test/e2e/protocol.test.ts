/**
 * Protocol edges answered inside the spec's envelope: dot segments in /v2/ paths, requests the
 * HTTP parser rejects (raw sockets: nothing else can send them), and refusals of streamed
 * bodies that reach the client as what they are (ctr's "read/write on closed pipe").
 */
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasDotSegment } from '../../src/http/middleware.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let open: TestRegistry;
let authed: TestRegistry;
beforeAll(async () => {
  open = await startTestRegistry();
  authed = await startTestRegistry({ auth: 'token' });
});
afterAll(async () => {
  await open?.stop();
  await authed?.stop();
});

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  closed: boolean;
}

/** Collects bytes from a socket until one full response (Content-Length framed) has arrived. */
function readResponse(socket: Socket, ms = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let closed = false;
    const timer = setTimeout(() => reject(new Error(`no complete response in ${ms} ms: ${JSON.stringify(buf.toString())}`)), ms);
    const tryParse = (): void => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + length) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + length).toString(), closed });
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      tryParse();
    };
    socket.on('data', onData);
    socket.once('end', () => {
      closed = true;
      tryParse();
    });
  });
}

function rawSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
}

async function send(url: string, bytes: string | Buffer): Promise<RawResponse> {
  const s = await rawSocket(url);
  try {
    const res = readResponse(s);
    s.write(bytes);
    return await res;
  } finally {
    s.destroy();
  }
}

const envelopeCode = (r: RawResponse): string => (JSON.parse(r.body) as { errors: { code: string }[] }).errors[0]!.code;

describe('dot segments in /v2/ paths', () => {
  for (const path of ['/v2/../v2/', '/v2/%2e%2e/x/tags/list', '/v2/%2E%2e/x/manifests/latest', '/v2/a/./b/tags/list', '/v2/a/%2e/b/blobs/uploads/', '/v2/a/..%2f../tags/list', '/v2/a/b/..', '/v2/a\\..\\b/tags/list']) {
    it(`${path} → 400 NAME_INVALID in the envelope`, async () => {
      const res = await send(open.url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      if (path === '/v2/a/..%2f../tags/list') {
        // `..%2f..` is one segment named "..%2f..": not a dot segment, but still no valid name.
        expect([400, 404]).toContain(res.status);
        return;
      }
      expect(res.status).toBe(400);
      expect(envelopeCode(res)).toBe('NAME_INVALID');
      expect(res.headers['content-type']).toMatch(/application\/json/);
    });
  }

  it('never mistakes a valid repository name for a dot segment (property)', () => {
    const component = fc.stringMatching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/);
    fc.assert(fc.property(fc.array(component, { minLength: 1, maxLength: 4 }), (parts) => !hasDotSegment(`/v2/${parts.join('/')}/tags/list?n=1&last=..`)));
    fc.assert(fc.property(fc.array(component, { maxLength: 3 }), fc.constantFrom('.', '..', '%2e', '%2E%2e', '.%2e'), (parts, dot) => hasDotSegment(`/v2/${[...parts, dot, 'x'].join('/')}/tags/list`)));
  });
});

describe('requests the HTTP parser rejects get a JSON envelope', () => {
  it('a bad method token → 400 with a body', async () => {
    const res = await send(open.url, 'G(T /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/json');
    expect(envelopeCode(res)).toBe('UNSUPPORTED');
  });

  it('a malformed header line → 400 with a body', async () => {
    const res = await send(open.url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
  });

  it('oversized headers → 431 with a body', async () => {
    const res = await send(open.url, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(envelopeCode(res)).toBe('SIZE_INVALID');
  });

  it('a Host header that is no host name, and a target that is no path → 400 with a body', async () => {
    const host = await send(open.url, 'GET /v2/ HTTP/1.1\r\nHost: user@evil.example\r\nConnection: close\r\n\r\n');
    expect(host.status).toBe(400);
    expect(envelopeCode(host)).toBe('UNSUPPORTED');
    const target = await send(open.url, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(target.status).toBe(400);
    expect(envelopeCode(target)).toBe('UNSUPPORTED');
  });

  it('a broken request line → 400 with a body, and the server keeps serving', async () => {
    const res = await send(open.url, 'this is not http\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toHaveProperty('errors');
    expect((await fetch(`${open.url}/v2/`)).status).toBe(200);
  });
});

describe('a refused streamed body (ctr push with a read-only key)', () => {
  it('is read before the 401 is sent, so the client finishes writing and then reads the refusal', async () => {
    const s = await rawSocket(authed.url);
    try {
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [] }));
      const response = readResponse(s);
      let early = false;
      void response.then(() => (early = true));
      s.write('PUT /v2/team/app/manifests/latest HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n');
      s.write(`${(20).toString(16)}\r\n${manifest.subarray(0, 20).toString('latin1')}\r\n`);
      await new Promise((r) => setTimeout(r, 400));
      // Before the fix the 401 came back here, while the client was still writing.
      expect(early).toBe(false);
      const rest = manifest.subarray(20);
      s.write(`${rest.length.toString(16)}\r\n${rest.toString('latin1')}\r\n0\r\n\r\n`);
      const res = await response;
      expect(res.status).toBe(401);
      expect(envelopeCode(res)).toBe('UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm=/);
      expect(res.closed).toBe(false);
      // The connection is still in sync: a second request on it is answered.
      const second = readResponse(s);
      s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      expect((await second).status).toBe(200);
    } finally {
      s.destroy();
    }
  });

  it('a refused body declared larger than 4 MiB is not read: the answer comes at once and the connection closes', async () => {
    const s = await rawSocket(authed.url);
    try {
      const response = readResponse(s);
      s.write(`PATCH /v2/team/app/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`);
      s.write(Buffer.alloc(1024));
      const res = await response;
      expect(res.status).toBe(401);
      expect(res.headers.connection).toBe('close');
    } finally {
      s.destroy();
    }
  });
});

describe('health and metrics probes', () => {
  it('are never rate-limited, while an anonymous /v2/ caller from the same address is', async () => {
    const limited = await startTestRegistry({ auth: 'token', rateLimitPerSecond: 1, rateLimitBurst: 2 });
    try {
      const v2: number[] = [];
      for (let i = 0; i < 5; i++) v2.push((await fetch(`${limited.url}/v2/team/app/tags/list`)).status);
      expect(v2).toContain(429);
      for (let i = 0; i < 10; i++) {
        expect((await fetch(`${limited.url}/healthz`)).status).toBe(200);
        expect((await fetch(`${limited.url}/readyz`)).status).toBe(200);
      }
    } finally {
      await limited.stop();
    }
  });
});
