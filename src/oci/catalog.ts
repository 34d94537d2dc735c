/** Listing repositories (`/v2/_catalog`), paginated like tags. */
import type { Context } from 'hono';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import { linkHeader, pageSize, paginate } from './listing.js';

export function catalogRoutes({ store, config }: OciDeps) {
  return {
    list(c: Context<AppEnv>): Response {
      const size = pageSize(c.req.query('n'), Math.max(config.pageSize, 1));
      const last = c.req.query('last');
      const page = paginate((limit) => store.listRepositories(limit, last), size, (r) => r);
      if (page.nextLast !== undefined) c.header('Link', linkHeader('/v2/_catalog', { n: String(size), last: page.nextLast }));
      return c.json({ repositories: page.items });
    },
  };
}
