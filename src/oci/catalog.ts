/** Listing repositories (`/v2/_catalog`), paginated like tags. */
import type { Context } from 'hono';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import { linkHeader, pageSize, paginate } from './listing.js';

export function catalogRoutes({ store, config, access }: OciDeps) {
  // The access layer filters in SQL (one bounded index read per part of what the caller may
  // see), so a page costs the same however many repositories exist: no per-row checks here.
  const listAll = (limit: number, last?: string): string[] => store.listRepositories(limit, last);

  return {
    list(c: Context<AppEnv>): Response {
      const size = pageSize(c.req.query('n'), Math.max(config.pageSize, 1));
      const last = c.req.query('last');
      // Asked even for n=0, so an anonymous caller without a token is challenged either way.
      const page = size === 0 ? { items: access.catalogPage(c, 0, last, listAll) } : paginate((limit) => access.catalogPage(c, limit, last, listAll), size, (r) => r);
      if (page.nextLast !== undefined) c.header('Link', linkHeader('/v2/_catalog', { n: String(size), last: page.nextLast }));
      return c.json({ repositories: page.items });
    },
  };
}
