/**
 * Scale-out test parts (issue #15): registry processes that share one PostgreSQL database and one
 * S3 bucket, and a round-robin HTTP proxy in front of them standing in for a load balancer.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { imageManifest, randomBlob, sha256 } from './http.js';
import { startRegistryProcess, type RegistryProcess } from './registry.js';

export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/**
 * The environment of a process that must use the explicit ARTIFACT_STORE_DATABASE_URL: without
 * the suite's test-mode variable, which would otherwise redirect nothing here (a URL is opened as
 * given) but is not the configuration an operator runs with.
 */
export function replicaEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.ARTIFACT_STORE_TEST_POSTGRES_URL;
  return env;
}

/**
 * `node dist/src/main.js` with its own data directory and port, the rest from `env`; generous
 * start-up: a first start migrates a fresh schema, and on a loaded machine (load ~20, a shared
 * PostgreSQL) three starting together took over 40 s.
 */
export function startReplica(env: Record<string, string>): Promise<RegistryProcess> {
  return startRegistryProcess(env, { baseEnv: replicaEnv({}), startupMs: 150_000 });
}

export interface RoundRobinProxy {
  url: string;
  /** Which backend (index into the given URLs) answered each request, in arrival order. */
  served: { method: string; path: string; backend: number }[];
  /** Backends taken out of the rotation after a connection error. */
  dead: Set<number>;
  close(): Promise<void>;
}

/** Test-only request header: send this request to backend n instead of the next in turn. */
export const PIN_HEADER = 'x-replica-pin';
/** Response header naming the backend that answered. */
export const SERVED_BY_HEADER = 'x-replica';

// Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own, never forwarded.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', PIN_HEADER]);

function forwardable(headers: IncomingMessage['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

/**
 * Each new request goes to the next live backend, its body and the answer streamed through.
 * The request body is held back until the backend's connection is open (one connection per
 * request): a backend that refuses or drops the connection before any body byte went out is
 * taken out of the rotation and the request is retried on the next one, as a load balancer's
 * health check would. A failure after body bytes went out cannot be replayed: the client gets a
 * 502 (or a cut connection, if the answer had begun).
 */
export async function startRoundRobinProxy(backends: string[]): Promise<RoundRobinProxy> {
  let next = 0;
  const served: RoundRobinProxy['served'] = [];
  const dead = new Set<number>();

  const pick = (): number | undefined => {
    for (let i = 0; i < backends.length; i++) {
      const n = next++ % backends.length;
      if (!dead.has(n)) return n;
    }
    return undefined;
  };

  function forward(req: IncomingMessage, res: ServerResponse, backend: number | undefined, pinned: boolean): void {
    if (backend === undefined) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end('no live backend');
      return;
    }
    const target = new URL(backends[backend]!);
    let bodyBytesSent = 0;
    let answered = false;
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: forwardable(req.headers), agent: false });
    upstream.on('socket', (socket) => {
      const go = (): void => {
        // A retried request without a body has already ended: nothing to stream.
        if (req.readableEnded) return void upstream.end();
        req.on('data', (d: Buffer) => (bodyBytesSent += d.length));
        req.pipe(upstream);
      };
      if (socket.connecting) socket.once('connect', go);
      else go();
    });
    upstream.on('response', (up) => {
      answered = true;
      served.push({ method: req.method ?? '', path: req.url ?? '', backend });
      res.writeHead(up.statusCode ?? 502, { ...forwardable(up.headers), [SERVED_BY_HEADER]: String(backend) });
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('error', () => {
      if (answered) return void res.destroy();
      if (bodyBytesSent === 0 && !pinned) {
        dead.add(backend);
        return forward(req, res, pick(), false);
      }
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain', [SERVED_BY_HEADER]: String(backend) }).end('backend failed mid-request');
      else res.destroy();
    });
    // The client went away: so does the request to the backend.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
  }

  const server: Server = createServer((req, res) => {
    const pin = req.headers[PIN_HEADER];
    if (typeof pin === 'string') forward(req, res, Number(pin), true);
    else forward(req, res, pick(), false);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    dead,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A push that reports failure instead of asserting: under a kill, failures are expected and allowed. */
export async function tryPushImage(base: string, repo: string, tag: string): Promise<{ digest: string; blobs: string[] } | undefined> {
  try {
    const layer = randomBlob(2000);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
    for (const b of [layer, config]) {
      const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: b, headers: { 'Content-Type': 'application/octet-stream' } });
      await res.arrayBuffer();
      if (res.status !== 201) return undefined;
    }
    const bytes = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]);
    const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': MANIFEST } });
    await res.arrayBuffer();
    return res.status === 201 ? { digest: sha256(bytes), blobs: [sha256(layer), sha256(config)] } : undefined;
  } catch {
    return undefined;
  }
}

export async function blobDigestAt(base: string, repo: string, digest: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) return `HTTP ${res.status}`;
  return sha256(Buffer.from(await res.arrayBuffer()));
}

export async function manifestDigestAt(base: string, repo: string, ref: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { Accept: MANIFEST } });
  if (res.status !== 200) return `HTTP ${res.status}`;
  return sha256(Buffer.from(await res.arrayBuffer()));
}
