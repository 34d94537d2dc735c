/** Cross-cutting request handling: request ids, the API version header, dot segments, access logs. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { ociError } from '../errors/catalogue.js';
import { routeLabel } from '../metrics/index.js';
import type { AppEnv } from './env.js';
import { errorResponse } from './errors.js';

/**
 * `/v2/../x`, `/v2/%2e%2e/x`, `/v2/a/./b`: URL parsing would quietly resolve these to another
 * path (and a 404 outside the spec's codes). No repository name has a `.` or `..` component, so
 * a raw /v2/ path that has one is a malformed name: 400 NAME_INVALID, in the spec's envelope.
 */
export function hasDotSegment(rawUrl: string): boolean {
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (!path.startsWith('/v2/')) return false;
  // Every request passes here: a path with neither a dot nor a percent sign has no dot segment.
  if (!path.includes('.') && !path.includes('%')) return false;
  // Backslashes count as separators to WHATWG URL parsing of special schemes, so they do here.
  return path.split(/[/\\]/).some((segment) => {
    const s = segment.toLowerCase().replaceAll('%2e', '.');
    return s === '.' || s === '..';
  });
}

/** A refused request's body up to this size is read before the refusal is sent (see drainBody). */
const DRAIN_LIMIT_BYTES = 4 * 1024 * 1024;
const DRAIN_TIMEOUT_MS = 5_000;

/**
 * Reads and discards what is left of a request body, up to `limit` bytes and `ms`. A client
 * that streams a body (containerd's `ctr push` sends manifests through a pipe) and gets a 401
 * before it finished writing sees its own write fail ("read/write on closed pipe") instead of
 * the refusal; reading a small body first lets the answer arrive as the authorization error it
 * is. Larger bodies are not read: the answer goes at once and the connection is closed.
 */
export function drainBody(incoming: IncomingMessage, limit = DRAIN_LIMIT_BYTES, ms = DRAIN_TIMEOUT_MS): Promise<boolean> {
  if (incoming.readableEnded || incoming.destroyed) return Promise.resolve(true);
  const declared = Number(incoming.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(false);
  return new Promise((resolve) => {
    let read = 0;
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onFail);
      incoming.off('close', onFail);
      resolve(ok);
    };
    const onData = (chunk: Buffer): void => {
      read += chunk.length;
      if (read > limit) finish(false);
    };
    const onEnd = (): void => finish(true);
    const onFail = (): void => finish(incoming.readableEnded);
    const timer = setTimeout(() => finish(false), ms);
    incoming.on('data', onData);
    incoming.once('end', onEnd);
    incoming.once('error', onFail);
    incoming.once('close', onFail);
    incoming.resume();
  });
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * The request's logger, made on first use: pino's child() serialises (and redacts) its bindings,
 * which the common request (nothing to log but the access line) never needs.
 */
function lazyChild(log: Logger, requestId: string): Logger {
  let child: Logger | undefined;
  return new Proxy(log, {
    get(_target, prop) {
      child ??= log.child({ requestId });
      const value = Reflect.get(child, prop, child) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(child) : value;
    },
  });
}

/**
 * Request ids, the API version header, dot segments, the access log. On the request path of
 * every call, so it allocates little: the headers go on the Node response once (the Response's
 * own headers stay untouched, keeping @hono/node-server on its plain-object fast path), and one
 * 'close' listener writes the access line.
 */
export function requestContext(log: Logger): MiddlewareHandler<AppEnv> {
  // The access line has flat fields only, none of them a redacted path (`*.token` …, one level
  // down): walking the redaction paths for it would change nothing and double its cost.
  const access = log.child({}, { redact: { paths: [] } });
  return async (c, next) => {
    const started = performance.now();
    const req = c.env?.incoming;
    const outgoing = c.env?.outgoing;
    const given = req ? req.headers['x-request-id'] : c.req.header('x-request-id');
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    c.set('log', lazyChild(log, requestId));
    c.set('actor', 'anonymous');
    const socket = req?.socket;
    const writtenBefore = socket?.bytesWritten ?? 0;
    // Set on the Node response up front so streamed (already-sent) responses carry them too;
    // writeHead merges these with the Response's headers.
    outgoing?.setHeader('X-Request-Id', requestId);
    outgoing?.setHeader('Docker-Distribution-API-Version', 'registry/2.0');

    const rawUrl = req?.url;
    if (rawUrl !== undefined && hasDotSegment(rawUrl)) {
      c.res = errorResponse(c, ociError('NAME_INVALID', 'a repository name has no "." or ".." path segments'));
    } else {
      await next();
    }
    const method = c.req.method;
    if (req && outgoing && !outgoing.headersSent && c.res.status >= 400 && !req.readableEnded && method !== 'GET' && method !== 'HEAD') {
      if (!(await drainBody(req))) c.res.headers.set('Connection', 'close');
    }
    if (!outgoing) {
      // app.request (tests): no Node response to carry them.
      c.res.headers.set('X-Request-Id', requestId);
      c.res.headers.set('Docker-Distribution-API-Version', 'registry/2.0');
    }

    // One access-log line per request, when the response has really ended (streamed bodies
    // finish after this handler returns). Never headers, never query strings (they can carry
    // tokens in `last=`-style cursors or signed URLs): method, route template, path.
    const write = (aborted: boolean): void => {
      const status = outgoing?.headersSent ? outgoing.statusCode : c.res.status;
      // Failed logins (401), refusals (403) and rate limiting (429) are visible at info too.
      const level = status >= 500 ? 'error' : 'info';
      if (!access.isLevelEnabled(level)) return;
      const declaredIn = Number(req ? req.headers['content-length'] : c.req.header('content-length'));
      const line = {
        requestId,
        method,
        route: routeLabel(c),
        path: c.req.path,
        status,
        bytesIn: Number.isFinite(declaredIn) ? declaredIn : undefined,
        bytesOut: socket ? Math.max(0, socket.bytesWritten - writtenBefore) : Number(c.res.headers.get('content-length') ?? 0),
        ms: Math.round(performance.now() - started),
        subject: c.get('actor') ?? 'anonymous',
        client: c.get('clientAddress') ?? socket?.remoteAddress,
        ...(aborted ? { aborted: true } : {}),
      };
      access[level](line, 'request');
    };
    if (!outgoing) return write(false);
    // The status is final here (written, or about to be written from c.res): below info only a
    // 5xx is logged, so a request that cannot log needs no listener.
    if (!access.isLevelEnabled('info') && (outgoing.headersSent ? outgoing.statusCode : c.res.status) < 500) return;
    // 'close' follows 'finish' on a response that ended, and comes alone when it was cut short.
    outgoing.once('close', () => write(!outgoing.writableFinished));
  };
}
