/** Cross-cutting request handling: request ids, the API version header, dot segments, access logs. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
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

/** Whatever the auth module found out about the caller, for the access log (anonymous until then). */
function subjectOf(c: Context<AppEnv>): string {
  return c.get('actor') ?? 'anonymous';
}

export function requestContext(log: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    const started = performance.now();
    const reqLog = log.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', reqLog);
    c.set('actor', 'anonymous');
    const outgoing = c.env?.outgoing;
    const socket = c.env?.incoming?.socket;
    const writtenBefore = socket?.bytesWritten ?? 0;
    // Set on the Node response up front so streamed (already-sent) responses carry them too.
    outgoing?.setHeader('X-Request-Id', requestId);
    outgoing?.setHeader('Docker-Distribution-API-Version', 'registry/2.0');

    const rawUrl = c.env?.incoming?.url;
    if (rawUrl !== undefined && hasDotSegment(rawUrl)) {
      c.res = errorResponse(c, ociError('NAME_INVALID', 'a repository name has no "." or ".." path segments'));
    } else {
      await next();
    }
    const req = c.env?.incoming;
    if (req && outgoing && !outgoing.headersSent && c.res.status >= 400 && !req.readableEnded && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      if (!(await drainBody(req))) c.res.headers.set('Connection', 'close');
    }
    c.res.headers.set('X-Request-Id', requestId);
    c.res.headers.set('Docker-Distribution-API-Version', 'registry/2.0');

    // One access-log line per request, when the response has really ended (streamed bodies
    // finish after this handler returns). Never headers, never query strings (they can carry
    // tokens in `last=`-style cursors or signed URLs): method, route template, path.
    const write = (aborted: boolean): void => {
      const status = outgoing?.headersSent ? outgoing.statusCode : c.res.status;
      const declaredIn = Number(c.req.header('content-length'));
      const line = {
        method: c.req.method,
        route: routeLabel(c),
        path: c.req.path,
        status,
        bytesIn: Number.isFinite(declaredIn) ? declaredIn : undefined,
        bytesOut: socket ? Math.max(0, socket.bytesWritten - writtenBefore) : Number(c.res.headers.get('content-length') ?? 0),
        ms: Math.round(performance.now() - started),
        subject: subjectOf(c),
        client: c.get('clientAddress') ?? socket?.remoteAddress,
        ...(aborted ? { aborted: true } : {}),
      };
      // Failed logins (401), refusals (403) and rate limiting (429) are visible at info too.
      if (status >= 500) reqLog.error(line, 'request');
      else reqLog.info(line, 'request');
    };
    if (outgoing) {
      let logged = false;
      const once = (aborted: boolean) => () => {
        if (logged) return;
        logged = true;
        write(aborted);
      };
      outgoing.once('finish', once(false));
      outgoing.once('close', once(true));
    } else {
      write(false);
    }
  };
}
