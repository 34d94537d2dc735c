/** Manifest pull, push and delete. Spec: "Pulling manifests", "Pushing Manifests", "Deleting". */
import type { Context } from 'hono';
import { isDigest, parseDigest } from '../core/digest.js';
import { assertTag, isValidTag } from '../core/names.js';
import { parseManifest, type ParsedManifest } from '../core/manifest.js';
import { createHasher, type HashAlgorithm } from '../data/hashing.js';
import { ociError } from '../errors/catalogue.js';
import { bytesResponse, readBodyCapped } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import type { NewManifest } from '../meta/registry-store.js';
import type { OciDeps } from './deps.js';
import type { RouteParams } from './routes.js';

export function manifestRoutes({ store, config, governance }: OciDeps) {
  function notFound(name: string, ref: string): never {
    if (store.repositoryId(name) === undefined) throw ociError('NAME_UNKNOWN', undefined, { detail: { name } });
    throw ociError('MANIFEST_UNKNOWN', undefined, { detail: { reference: ref } });
  }

  /**
   * Every blob must be linked to the repository with the declared size; every child manifest
   * stored there. Checked before the governance hooks for precise errors, and again inside the
   * write transaction (write-path.ts requireReferences).
   */
  async function checkReferences(repoId: number | undefined, m: ParsedManifest): Promise<NewManifest['references']> {
    const blobDigests = [...new Set(m.blobs.map((b) => b.digest))];
    const childDigests = [...new Set(m.children.map((d) => d.digest))];
    const [sizes, children] =
      repoId === undefined ? [new Map<string, number>(), new Map<string, number>()] : await Promise.all([store.pull.linkedBlobSizes(repoId, blobDigests), store.pull.manifestSizes(repoId, childDigests)]);
    for (const b of m.blobs) {
      const size = sizes.get(b.digest);
      if (size === undefined) throw ociError('MANIFEST_BLOB_UNKNOWN', undefined, { detail: { digest: b.digest } });
      if (size !== b.size) throw ociError('MANIFEST_INVALID', 'descriptor size does not match the stored blob', { detail: { digest: b.digest, declared: b.size, stored: size } });
    }
    for (const d of m.children) {
      const size = children.get(d.digest);
      if (size === undefined) throw ociError('MANIFEST_BLOB_UNKNOWN', 'index references an unknown manifest', { detail: { digest: d.digest } });
      if (size !== d.size) throw ociError('MANIFEST_INVALID', 'descriptor size does not match the stored manifest', { detail: { digest: d.digest, declared: d.size, stored: size } });
    }
    return [...blobDigests.map((digest) => ({ digest, kind: 'blob' as const })), ...childDigests.map((digest) => ({ digest, kind: 'manifest' as const }))];
  }

  return {
    async get(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      let m;
      if (isDigest(ref)) m = await store.pull.manifestByDigest(name, parseDigest(ref).value);
      else if (isValidTag(ref)) m = await store.pull.manifestByTag(name, ref);
      if (!m) notFound(name, ref);
      await governance.checkPull({ repository: name, digest: m.digest, ...(isDigest(ref) ? {} : { tag: ref }), artifactType: m.artifactType, subject: m.subject, caller: c.get('caller') });
      const headers = {
        'Content-Type': m.mediaType,
        'Content-Length': String(m.size),
        'Docker-Content-Digest': m.digest,
        ETag: `"${m.digest}"`,
      };
      return bytesResponse(c, 200, headers, m.payload);
    },

    async put(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      const byDigest = isDigest(ref);
      const refDigest = byDigest ? parseDigest(ref) : undefined;
      const tagNames = [...new Set([...(byDigest ? [] : [assertTag(ref)]), ...(c.req.queries('tag') ?? []).map(assertTag)])];

      const payload = await readBodyCapped(c, config.maxManifestSize);
      if (payload === null) throw ociError('SIZE_INVALID', `manifest exceeds ${config.maxManifestSize} bytes`, { status: 413 });
      const parsed = parseManifest(payload, c.req.header('content-type'));

      const hasher = await createHasher((refDigest?.algorithm ?? 'sha256') as HashAlgorithm);
      hasher.update(payload);
      const digest = hasher.digest();
      if (refDigest && refDigest.value !== digest) throw ociError('DIGEST_INVALID', 'manifest digest does not match its content', { detail: { expected: refDigest.value, actual: digest } });

      const references = await checkReferences(await store.pull.repositoryId(name), parsed);
      const push = { repository: name, digest, parsed, payload, tags: tagNames, caller: c.get('caller'), actor: c.get('actor') };
      await governance.checkPush(push);
      // Group-committed with the other writes of this event-loop turn; resolves after COMMIT.
      await store.commitManifest(
        name,
        {
          digest,
          mediaType: parsed.mediaType,
          payload,
          size: payload.length,
          artifactType: parsed.artifactType,
          subject: parsed.subject?.digest ?? null,
          annotations: parsed.annotations,
          references,
        },
        tagNames,
        c.get('actor'),
        { guard: (tx) => governance.guardPush(push, tx), after: (tx, inserted) => governance.afterPush(push, tx, inserted) },
      );

      const headers = new Headers({ Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': '0' });
      // oras and friends detect referrers support from this header.
      if (parsed.subject) headers.set('OCI-Subject', parsed.subject.digest);
      for (const t of tagNames) headers.append('OCI-Tag', t);
      return new Response(null, { status: 201, headers });
    },

    async delete(c: Context<AppEnv>, { name, ref }: RouteParams): Promise<Response> {
      const repoId = store.repositoryId(name);
      if (repoId === undefined) throw ociError('NAME_UNKNOWN', undefined, { detail: { name } });
      const actor = c.get('actor');
      let deleted = false;
      if (isDigest(ref)) {
        const digest = parseDigest(ref).value;
        deleted = await store.commitManifestDelete(name, repoId, digest, actor, { guard: (tx) => governance.guardDelete({ repository: name, kind: 'manifest', digest, actor, origin: 'api' }, tx) });
      } else if (isValidTag(ref)) {
        const digest = store.tagDigest(repoId, ref);
        const target = { repository: name, kind: 'tag' as const, tag: ref, actor, origin: 'api' as const, ...(digest ? { digest } : {}) };
        deleted = await store.commitTagDelete(name, repoId, ref, actor, { guard: (tx) => governance.guardDelete(target, tx) });
      }
      if (!deleted) throw ociError('MANIFEST_UNKNOWN', undefined, { detail: { reference: ref } });
      return c.body(null, 202, { 'Content-Length': '0' });
    },
  };
}
