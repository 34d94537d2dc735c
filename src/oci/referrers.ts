/** Listing referrers (end-12a/12b): manifests in the repository whose `subject` is the digest. */
import type { Context } from 'hono';
import { parseDigest } from '../core/digest.js';
import { MEDIA_TYPES } from '../core/media-types.js';
import type { AppEnv } from '../http/env.js';
import type { OciDeps } from './deps.js';
import { linkHeader, paginate } from './listing.js';
import type { RouteParams } from './routes.js';

export function referrerRoutes({ store, config }: OciDeps) {
  return {
    list(c: Context<AppEnv>, { name, ref }: RouteParams): Response {
      const subject = parseDigest(ref).value;
      const artifactType = c.req.query('artifactType');
      const last = c.req.query('last');
      const repoId = store.repositoryId(name);
      const size = Math.max(config.pageSize, 1);
      // A registry with the referrers API never answers 404 here: no repository means no referrers.
      const page = paginate((limit) => (repoId === undefined ? [] : store.referrers(repoId, subject, limit, last, artifactType)), size, (r) => r.digest);
      if (artifactType !== undefined) c.header('OCI-Filters-Applied', 'artifactType');
      if (page.nextLast !== undefined) {
        c.header('Link', linkHeader(`/v2/${name}/referrers/${subject}`, { ...(artifactType !== undefined ? { artifactType } : {}), last: page.nextLast }));
      }
      const manifests = page.items.map((r) => ({
        mediaType: r.mediaType,
        digest: r.digest,
        size: r.size,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
        ...(r.annotations ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
      }));
      const body = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests });
      return c.body(body, 200, { 'Content-Type': MEDIA_TYPES.ociIndex });
    },
  };
}
