// Minimal registry HTTP client over fetch, with Docker-style authentication:
//  - 401 + `WWW-Authenticate: Bearer realm=..,service=..,scope=..` -> fetch a token from
//    the realm (GET, Basic credentials when configured, anonymous otherwise), retry with Bearer;
//  - 401 + `WWW-Authenticate: Basic` -> retry with Basic credentials.
// Redirects are never followed implicitly; callers opt in (GET/HEAD only) and every hop is
// recorded so checks can still verify the final body against the digest they asked for.
// Secrets (passwords, tokens, Authorization headers, query strings) are never logged.

export interface Hop {
  status: number;
  url: string;
  headers: Headers;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** Final URL (after followed redirects). */
  url: string;
  /** Redirect responses that were followed, in order. */
  hops: Hop[];
  text(): string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json(): unknown;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Send the body as a stream (chunked transfer encoding, no Content-Length). */
  stream?: boolean;
  /** Follow redirects (only honoured for GET and HEAD). */
  follow?: boolean;
  /** Answer authentication challenges (default true). */
  auth?: boolean;
}

export interface ClientOptions {
  rootUrl: string;
  username?: string;
  password?: string;
  timeoutMs: number;
  debug?: boolean;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses the first challenge of a WWW-Authenticate header. */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2] ?? '')) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Repository name a /v2/ path is about, used to reuse bearer tokens per repository. */
function repoOf(path: string): string {
  const m = /^\/v2\/(.+?)\/(?:blobs|manifests|tags|referrers)\//.exec(path);
  return m ? m[1]! : path.startsWith('/v2/_catalog') ? '_catalog' : '';
}

function makeResponse(status: number, raw: Headers, body: Uint8Array, url: string, hops: Hop[]): HttpResponse {
  // A relative Location is resolved against the request URL here, once, so that callers can
  // reuse it as is (the spec allows absolute and relative upload/blob locations).
  const headers = new Headers(raw);
  const location = raw.get('location');
  if (location) headers.set('location', new URL(location, url).toString());
  return {
    status,
    headers,
    body,
    url,
    hops,
    text: () => new TextDecoder().decode(body),
    json: () => {
      try {
        return JSON.parse(new TextDecoder().decode(body)) as unknown;
      } catch {
        return undefined;
      }
    },
  };
}

export class RegistryClient {
  private readonly root: URL;
  private basic = false;
  private readonly repoTokens = new Map<string, string>();
  private readonly scopeTokens = new Map<string, string>();
  private lastBearer: { realm: string; service: string | undefined } | undefined;

  constructor(private readonly opts: ClientOptions, private readonly log: (line: string) => void = () => {}) {
    this.root = new URL(opts.rootUrl);
  }

  /** Absolute URL for a registry path ("/v2/...") or an absolute/relative Location. */
  resolve(target: string, base?: string): URL {
    if (/^https?:\/\//i.test(target)) return new URL(target);
    if (base) return new URL(target, base);
    const prefix = this.root.pathname.replace(/\/+$/, '');
    return new URL(prefix + (target.startsWith('/') ? target : `/${target}`), this.root.origin);
  }

  async request(method: string, target: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    let url = this.resolve(target);
    const hops: Hop[] = [];
    const canFollow = opts.follow === true && (method === 'GET' || method === 'HEAD');
    let sameOrigin = true;
    for (let n = 0; ; n++) {
      const res = await this.send(method, url, opts, sameOrigin);
      const location = res.headers.get('location');
      if (canFollow && REDIRECTS.has(res.status) && location && n < 5) {
        hops.push({ status: res.status, url: url.toString(), headers: res.headers });
        url = new URL(location, url);
        // Credentials for the registry are not sent to another origin (e.g. a presigned URL).
        sameOrigin = url.origin === this.root.origin;
        continue;
      }
      return makeResponse(res.status, res.headers, res.body, url.toString(), hops);
    }
  }

  private async send(method: string, url: URL, opts: RequestOptions, sameOrigin: boolean) {
    const authEnabled = opts.auth !== false && sameOrigin;
    const repo = repoOf(url.pathname);
    let authorization = authEnabled ? this.cachedAuthorization(repo) : undefined;
    // A cross-repository mount needs pull on the source too; like docker, ask for both scopes up
    // front (a registry answers a mount it may not perform with a plain 202, not a challenge).
    const from = url.searchParams.get('from');
    if (authEnabled && from && !this.basic && this.lastBearer) {
      const token = await this.fetchToken(this.lastBearer.realm, this.lastBearer.service, [`repository:${repo}:pull,push`, `repository:${from}:pull`]);
      authorization = `Bearer ${token}`;
    }
    for (let attempt = 0; ; attempt++) {
      const res = await this.raw(method, url, opts, authorization);
      if (res.status !== 401 || !authEnabled || attempt > 0) return res;
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      if (!challenge) return res;
      const next = await this.answer(challenge, repo, authorization);
      if (!next || next === authorization) return res;
      authorization = next;
    }
  }

  private cachedAuthorization(repo: string): string | undefined {
    if (this.basic) return this.basicHeader();
    const token = this.repoTokens.get(repo);
    return token ? `Bearer ${token}` : undefined;
  }

  private basicHeader(): string | undefined {
    if (!this.opts.username) return undefined;
    const raw = `${this.opts.username}:${this.opts.password ?? ''}`;
    return `Basic ${Buffer.from(raw, 'utf8').toString('base64')}`;
  }

  private async answer(challenge: Challenge, repo: string, rejected?: string): Promise<string | undefined> {
    if (challenge.scheme === 'basic') {
      const header = this.basicHeader();
      if (header) this.basic = true;
      return header;
    }
    if (challenge.scheme !== 'bearer') return undefined;
    const realm = challenge.params.realm;
    if (!realm) return undefined;
    const service = challenge.params.service;
    this.lastBearer = { realm, service };
    const scopes = (challenge.params.scope ?? '').split(' ').filter(Boolean);
    const key = `${realm}|${service ?? ''}|${scopes.join(' ')}`;
    let token = this.scopeTokens.get(key);
    if (!token || `Bearer ${token}` === rejected) {
      // No token for this scope yet, or the cached one was just refused (e.g. expired).
      token = await this.fetchToken(realm, service, scopes);
      this.scopeTokens.set(key, token);
    }
    this.repoTokens.set(repo, token);
    return `Bearer ${token}`;
  }

  private async fetchToken(realm: string, service: string | undefined, scopes: string[]): Promise<string> {
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = this.basicHeader();
    if (basic) headers.authorization = basic;
    const res = await fetch(url, { method: 'GET', headers, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    const text = await res.text();
    if (this.opts.debug) this.log(`  token ${url.origin}${url.pathname} -> ${res.status}`);
    if (res.status !== 200) throw new Error(`token endpoint ${url.origin}${url.pathname} answered ${res.status}`);
    let body: { token?: unknown; access_token?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`token endpoint ${url.origin}${url.pathname} did not answer JSON`);
    }
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') throw new Error('token endpoint answered no token');
    return token;
  }

  private async raw(method: string, url: URL, opts: RequestOptions, authorization: string | undefined) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', ...(opts.headers ?? {}) };
    if (authorization) headers.authorization = authorization;
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    };
    if (opts.body !== undefined) {
      const data = opts.body;
      if (opts.stream) {
        // Two pieces so the body really arrives as a stream of chunks.
        const cut = Math.floor(data.length / 2);
        init.body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(data.slice(0, cut));
            controller.enqueue(data.slice(cut));
            controller.close();
          },
        });
        init.duplex = 'half';
      } else {
        init.body = new Uint8Array(data); // own ArrayBuffer (BodyInit typing)
      }
    }
    const res = await fetch(url, init);
    const body = new Uint8Array(await res.arrayBuffer());
    if (this.opts.debug) this.log(`  ${method} ${url.pathname} -> ${res.status}`);
    return { status: res.status, headers: res.headers, body };
  }
}
