/** Cross-cutting request handling: request ids, the API version header, access logs. */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { AppEnv } from './env.js';

export function requestContext(log: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    const started = performance.now();
    c.set('requestId', requestId);
    c.set('log', log.child({ requestId }));
    c.set('actor', 'anonymous');
    // Set on the Node response up front so streamed (already-sent) responses carry them too.
    c.env?.outgoing?.setHeader('X-Request-Id', requestId);
    c.env?.outgoing?.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    await next();
    c.res.headers.set('X-Request-Id', requestId);
    c.res.headers.set('Docker-Distribution-API-Version', 'registry/2.0');
    const status = c.env?.outgoing?.headersSent ? c.env.outgoing.statusCode : c.res.status;
    const line = { method: c.req.method, path: c.req.path, status, ms: Math.round(performance.now() - started) };
    if (status >= 500) c.get('log').error(line, 'request');
    else c.get('log').debug(line, 'request');
  };
}
