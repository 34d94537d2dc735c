/** Listing tags. Spec: "Listing Tags" (end-8a/8b). */
import type { Context } from 'hono';
import { ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import { linkHeader, pageSize, paginate } from './listing.js';
import type { RouteParams } from './routes.js';

/** Without `n` the spec asks for every tag; this bounds one response, and Link gives the rest. */
const MAX_TAGS_UNPAGED = 100_000;

export function tagRoutes({ store, config }: OciDeps) {
  return {
    list(c: Context<AppEnv>, { name }: RouteParams): Response {
      const repoId = store.repositoryId(name);
      if (repoId === undefined) throw ociError('NAME_UNKNOWN', undefined, { detail: { name } });
      const n = c.req.query('n');
      const size = pageSize(n, n === undefined ? MAX_TAGS_UNPAGED : Math.max(config.pageSize, 1));
      const last = c.req.query('last');
      const page = paginate((limit) => store.listTags(repoId, limit, last), size, (t) => t);
      if (page.nextLast !== undefined) c.header('Link', linkHeader(`/v2/${name}/tags/list`, { n: String(size), last: page.nextLast }));
      return c.json({ name, tags: page.items });
    },
  };
}
