/**
 * The whole /v2/ route table, in one place, with the spec section each row implements
 * (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#endpoints).
 *
 * Paths are matched against the raw request target, never a normalised URL: `..`, `//` and
 * percent-escapes stay in the name and fail its grammar (NAME_INVALID) instead of silently
 * naming another repository.
 */
import type { Context, Hono } from 'hono';
import type { Action } from '../auth/permissions.js';
import { ociError } from '../errors/catalogue.js';
import { assertName } from '../core/names.js';
import type { AppEnv } from '../http/env.js';
import { errorResponse } from '../http/errors.js';
import { blobRoutes } from './blobs.js';
import { catalogRoutes } from './catalog.js';
import type { OciDeps } from './deps.js';
import { manifestRoutes } from './manifests.js';
import { referrerRoutes } from './referrers.js';
import { tagRoutes } from './tags.js';
import { uploadRoutes } from './uploads.js';

export interface RouteParams {
  name: string;
  /** digest, tag or upload id, depending on the route */
  ref: string;
}

export type Handler = (c: Context<AppEnv>, p: RouteParams) => Promise<Response> | Response;

type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

interface Route {
  pattern: RegExp;
  /** The route template for metrics and the access log (src/metrics routeLabel). */
  label: string;
  methods: Partial<Record<Method, Handler>>;
  /** Exceptions to ACTION_OF_METHOD. */
  actions?: Partial<Record<Method, Action>>;
}

const ACTION_OF_METHOD: Record<Method, Action> = { GET: 'pull', HEAD: 'pull', POST: 'push', PATCH: 'push', PUT: 'push', DELETE: 'delete' };

export function registerOci(app: Hono<AppEnv>, deps: OciDeps): void {
  const blobs = blobRoutes(deps);
  const uploads = uploadRoutes(deps);
  const manifests = manifestRoutes(deps);
  const tags = tagRoutes(deps);
  const referrers = referrerRoutes(deps);
  const catalog = catalogRoutes(deps);

  // Order matters where a name could end in a keyword: uploads before blobs. Names are greedy,
  // so `a/blobs/blobs/<d>` is the blob <d> of repository `a/blobs`.
  const routes: Route[] = [
    { pattern: /^$/, label: '/v2/', methods: { GET: base, HEAD: base } }, // end-1
    { pattern: /^_catalog$/, label: '/v2/_catalog', methods: { GET: catalog.list } }, // listing repositories
    { pattern: /^(.+)\/blobs\/uploads\/?()$/, label: '/v2/{name}/blobs/uploads/', methods: { POST: uploads.start } }, // end-4a/4b/11
    // Cancelling one's own upload is part of pushing, not a delete of content.
    { pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/, label: '/v2/{name}/blobs/uploads/{id}', methods: { GET: uploads.status, PATCH: uploads.patch, PUT: uploads.finish, DELETE: uploads.cancel }, actions: { GET: 'push', DELETE: 'push' } }, // end-5/6/13/14
    { pattern: /^(.+)\/blobs\/([^/]+)$/, label: '/v2/{name}/blobs/{digest}', methods: { GET: blobs.get, HEAD: blobs.get, DELETE: blobs.delete } }, // end-2/10
    { pattern: /^(.+)\/manifests\/([^/]+)$/, label: '/v2/{name}/manifests/{reference}', methods: { GET: manifests.get, HEAD: manifests.get, PUT: manifests.put, DELETE: manifests.delete } }, // end-3/7/9
    { pattern: /^(.+)\/tags\/list()$/, label: '/v2/{name}/tags/list', methods: { GET: tags.list } }, // end-8a/8b
    { pattern: /^(.+)\/referrers\/([^/]+)$/, label: '/v2/{name}/referrers/{digest}', methods: { GET: referrers.list } }, // end-12a/12b
  ];

  const dispatch = async (c: Context<AppEnv>): Promise<Response> => {
    try {
      const path = rawPath(c);
      // Only a literal /v2/ prefix: a percent-encoded one (/%762/) is not the API.
      if (!path.startsWith('/v2/')) throw ociError('UNSUPPORTED', 'no such endpoint', { status: 404 });
      const rest = path.slice('/v2/'.length);
      for (const route of routes) {
        const m = route.pattern.exec(rest);
        if (!m) continue;
        c.set('route', route.label);
        const handler = route.methods[c.req.method as Method];
        if (!handler) throw ociError('UNSUPPORTED', `method ${c.req.method} not allowed here`, { headers: { Allow: Object.keys(route.methods).join(', ') } });
        const params = { name: m[1] === undefined ? '' : assertName(m[1]), ref: m[2] ?? '' };
        // Every repository route needs the action its method implies; _catalog filters instead.
        const method = c.req.method as Method;
        if (params.name) deps.access.authorize(c, params.name, route.actions?.[method] ?? ACTION_OF_METHOD[method]);
        return await handler(c, params);
      }
      throw ociError('UNSUPPORTED', 'no such endpoint', { status: 404 });
    } catch (err) {
      return errorResponse(c, err);
    }
  };

  app.all('/v2', (c) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? base(c) : errorResponse(c, ociError('UNSUPPORTED'))));
  app.all('/v2/*', dispatch);
}

function base(c: Context<AppEnv>): Response {
  return c.json({});
}

/** The request target's path exactly as the client sent it (no dot-segment or %-normalisation). */
function rawPath(c: Context<AppEnv>): string {
  let target = c.env?.incoming?.url ?? new URL(c.req.url).pathname;
  // absolute-form (`GET http://host/v2/…`): drop scheme and authority by hand, not via URL().
  if (!target.startsWith('/')) {
    const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(target);
    if (absolute) target = target.slice(absolute[0].length) || '/';
  }
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}
