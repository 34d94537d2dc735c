/** Listing repositories (`/v2/_catalog`), paginated like tags. */
import type { Context } from 'hono';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import { linkHeader, pageSize, paginate } from './listing.js';

export function catalogRoutes({ store, config, access }: OciDeps) {
  /** Repositories after `last` that the caller may pull, reading on until `limit` are found. */
  function visible(c: Context<AppEnv>, limit: number, last: string | undefined): string[] {
    const out: string[] = [];
    let cursor = last;
    for (;;) {
      const batch = store.listRepositories(Math.max(limit, 100), cursor);
      for (const name of batch) {
        if (access.canList(c, name)) out.push(name);
        if (out.length === limit) return out;
      }
      if (batch.length < Math.max(limit, 100)) return out;
      cursor = batch[batch.length - 1];
    }
  }

  return {
    list(c: Context<AppEnv>): Response {
      access.authorizeCatalog(c);
      const size = pageSize(c.req.query('n'), Math.max(config.pageSize, 1));
      const last = c.req.query('last');
      const page = paginate((limit) => visible(c, limit, last), size, (r) => r);
      if (page.nextLast !== undefined) c.header('Link', linkHeader('/v2/_catalog', { n: String(size), last: page.nextLast }));
      return c.json({ repositories: page.items });
    },
  };
}
