// Minimal HTTP client on node:http / node:https with keep-alive agents.
// node:http is used (rather than fetch) for low per-request overhead and
// explicit control over streaming request bodies and back-pressure.

import http from "node:http";
import https from "node:https";
import { performance } from "node:perf_hooks";

export interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Collected body (empty when a sink consumed it). */
  body: Buffer;
  /** Bytes received in the body. */
  bytes: number;
}

export type Body = Buffer | Iterable<Buffer> | AsyncIterable<Buffer>;

export interface ReqOpts {
  headers?: Record<string, string | number>;
  body?: Body;
  /** Receives body chunks instead of collecting them. */
  sink?: (chunk: Buffer) => void;
  /** Follow 3xx redirects for GET/HEAD (e.g. to object storage). */
  follow?: boolean;
  timeoutMs?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export { header };

export class HttpClient {
  readonly base: URL;
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;
  private readonly foreignAgents = new Map<string, http.Agent>();

  constructor(baseUrl: string, maxSockets = 256) {
    this.base = new URL(baseUrl);
    const secure = this.base.protocol === "https:";
    this.mod = secure ? https : http;
    const opts = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: "lifo" as const };
    this.agent = secure ? new https.Agent(opts) : new http.Agent(opts);
  }

  /** Resolve a (possibly relative) Location header against the registry base URL. */
  resolve(location: string): URL {
    return new URL(location, this.base);
  }

  /** Path + query of `u` if it is on this registry, else the absolute URL string. */
  private target(pathOrUrl: string | URL): { mod: typeof http | typeof https; agent: http.Agent; url: URL } {
    const url = typeof pathOrUrl === "string" ? new URL(pathOrUrl, this.base) : pathOrUrl;
    if (url.origin === this.base.origin) return { mod: this.mod, agent: this.agent, url };
    const secure = url.protocol === "https:";
    let agent = this.foreignAgents.get(url.origin);
    if (!agent) {
      agent = secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
      this.foreignAgents.set(url.origin, agent);
    }
    return { mod: secure ? https : http, agent, url };
  }

  async request(method: string, pathOrUrl: string | URL, opts: ReqOpts = {}): Promise<Resp> {
    let res = await this.once(method, pathOrUrl, opts).catch((e: unknown) => {
      // A pooled keep-alive socket the server closed while it sat idle (Node servers: after 5 s)
      // fails the next request at once; such a request never reached the server, so a body the
      // client still holds is sent again on a fresh socket.
      if ((e as { staleSocket?: boolean }).staleSocket && (opts.body === undefined || Buffer.isBuffer(opts.body))) return this.once(method, pathOrUrl, opts);
      throw e;
    });
    let hops = 0;
    while (opts.follow && (method === "GET" || method === "HEAD") && REDIRECTS.has(res.status) && hops < 5) {
      const loc = header(res.headers, "location");
      if (!loc) break;
      const next = new URL(loc, typeof pathOrUrl === "string" ? new URL(pathOrUrl, this.base) : pathOrUrl);
      // Do not forward registry headers to a foreign origin (signed URLs carry their own auth).
      const headers = next.origin === this.base.origin ? opts.headers : {};
      res = await this.once(method, next, { ...opts, headers });
      pathOrUrl = next;
      hops++;
    }
    return res;
  }

  private once(method: string, pathOrUrl: string | URL, opts: ReqOpts): Promise<Resp> {
    const { mod, agent, url } = this.target(pathOrUrl);
    return new Promise<Resp>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown): void => {
        if (!settled) {
          settled = true;
          const err = e instanceof Error ? e : new Error(String(e));
          const code = (err as NodeJS.ErrnoException).code;
          if (req.reusedSocket && !gotResponse && (code === "ECONNRESET" || code === "EPIPE")) Object.assign(err, { staleSocket: true });
          reject(err);
        }
      };
      const req = mod.request({
        agent,
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        headers: opts.headers,
      });
      if (opts.timeoutMs) {
        req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
      }
      let gotResponse = false;
      req.on("error", fail);
      req.on("response", (res) => {
        gotResponse = true;
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          if (opts.sink) opts.sink(c);
          else chunks.push(c);
        });
        res.on("error", fail);
        res.on("end", () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes });
        });
      });
      const body = opts.body;
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else writeStream(req, body).catch((e: unknown) => {
        req.destroy(e instanceof Error ? e : new Error(String(e)));
        fail(e);
      });
    });
  }

  close(): void {
    this.agent.destroy();
    for (const a of this.foreignAgents.values()) a.destroy();
  }
}

/** Write an (async) iterable of chunks with back-pressure; stops early if the request dies. */
async function writeStream(req: http.ClientRequest, body: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void> {
  let dead = false;
  const onDead = (): void => {
    dead = true;
  };
  req.once("close", onDead);
  req.once("error", onDead);
  req.once("response", onDead); // server answered early (e.g. 4xx): stop sending
  try {
    for await (const chunk of body) {
      if (dead) return;
      if (!req.write(chunk)) {
        await new Promise<void>((r) => {
          const done = (): void => {
            req.off("drain", done);
            req.off("close", done);
            req.off("response", done);
            r();
          };
          req.on("drain", done);
          req.on("close", done);
          req.on("response", done);
        });
      }
    }
    if (!dead) req.end();
  } finally {
    req.off("close", onDead);
    req.off("error", onDead);
    req.off("response", onDead);
  }
}

/**
 * Run `count` tasks with at most `concurrency` in flight; rejects on the first
 * failure. With `deadline` (performance.now() ms) no new task starts after it.
 * Returns the number of tasks completed.
 */
export async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
  deadline = Infinity,
): Promise<number> {
  let next = 0;
  let done = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && performance.now() < deadline) {
      const i = next++;
      if (i >= count) return;
      try {
        await task(i);
        done++;
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failed !== undefined) throw failed;
  return done;
}
