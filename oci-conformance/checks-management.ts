// Content management: delete tags, manifests and blobs. Registries MAY disable deletion
// (400 or 405, typically UNSUPPORTED): such answers are reported as skipped, not failed.

import { expectDigestHeader, expectError, expectStatus, skip } from './assert.js';
import type { HttpResponse } from './client.js';
import type { ConformanceConfig } from './config.js';
import { blobPath, manifestPath, type Check, type Context, type Image } from './context.js';

const DISABLED = [400, 405];

function mgmtImage(ctx: Context): Promise<Image> {
  return ctx.image('mgmt', [ctx.tag('m1'), ctx.tag('m2')]);
}

function skipIfDisabled(res: HttpResponse, what: string): void {
  if (DISABLED.includes(res.status)) {
    const code = (res.json() as { errors?: { code?: string }[] } | undefined)?.errors?.[0]?.code;
    skip(`${what} refused with ${res.status}${code ? ` ${code}` : ''} (allowed when the registry disables it)`);
  }
}

const deleteTag: Check = {
  name: 'DELETE tag: 202; the tag then 404 MANIFEST_UNKNOWN while the digest and other tags still resolve',
  workflow: 'content-management',
  optional: true,
  async run(ctx) {
    const img = await mgmtImage(ctx);
    const [t1, t2] = [img.tags[0]!, img.tags[1]!];
    const res = await ctx.request('DELETE', manifestPath(img.repo, t1));
    skipIfDisabled(res, 'DELETE by tag');
    expectStatus(res, 202, `DELETE ${manifestPath(img.repo, t1)}`);
    expectError(await ctx.getManifest(img.repo, t1), 404, ['MANIFEST_UNKNOWN'], 'GET deleted tag');
    const byDigest = await ctx.getManifest(img.repo, img.digest, 'HEAD');
    expectStatus(byDigest, 200, 'HEAD manifest by digest after tag deletion');
    expectDigestHeader(await ctx.getManifest(img.repo, t2, 'HEAD'), img.digest, `HEAD other tag ${t2}`);
  },
};

const deleteManifest: Check = {
  name: 'DELETE manifest by digest: 202; then 404 MANIFEST_UNKNOWN by digest and by its tags',
  workflow: 'content-management',
  async run(ctx) {
    const img = await mgmtImage(ctx);
    const res = await ctx.request('DELETE', manifestPath(img.repo, img.digest));
    if (res.status === 404 && ctx.cfg.deleteManifestBeforeBlobs === false) {
      // The blob check may already have removed it to unblock a refused blob deletion.
      const head = await ctx.getManifest(img.repo, img.digest, 'HEAD');
      if (head.status === 404) skip('manifest already deleted while unblocking the blob deletion check');
    }
    skipIfDisabled(res, 'DELETE manifest');
    expectStatus(res, 202, `DELETE ${manifestPath(img.repo, img.digest)}`);
    expectError(await ctx.getManifest(img.repo, img.digest), 404, ['MANIFEST_UNKNOWN'], 'GET deleted manifest');
    expectError(await ctx.getManifest(img.repo, img.digest, 'HEAD'), 404, undefined, 'HEAD deleted manifest', 'HEAD');
    expectError(await ctx.getManifest(img.repo, img.tags[1]!), 404, ['MANIFEST_UNKNOWN'], 'GET tag of deleted manifest');
  },
};

const deleteBlob: Check = {
  name: 'DELETE blob: 202; then GET 404 BLOB_UNKNOWN and HEAD 404',
  workflow: 'content-management',
  async run(ctx) {
    const img = await mgmtImage(ctx);
    const b = img.layers[0]!;
    let res = await ctx.request('DELETE', blobPath(img.repo, b.digest));
    let note: string | undefined;
    if (res.status !== 202 && res.status !== 405) {
      const head = await ctx.getManifest(img.repo, img.digest, 'HEAD');
      if (head.status === 200) {
        // Some registries refuse to delete a blob a manifest still references: remove it first.
        const del = await ctx.request('DELETE', manifestPath(img.repo, img.digest));
        if (del.status === 202) {
          note = `first attempt answered ${res.status}; succeeded after deleting the manifest`;
          res = await ctx.request('DELETE', blobPath(img.repo, b.digest));
        }
      }
    }
    skipIfDisabled(res, 'DELETE blob');
    expectStatus(res, 202, `DELETE ${blobPath(img.repo, b.digest)}`);
    expectError(await ctx.getBlob(img.repo, b.digest), 404, ['BLOB_UNKNOWN'], 'GET deleted blob');
    expectError(await ctx.getBlob(img.repo, b.digest, 'HEAD'), 404, undefined, 'HEAD deleted blob', 'HEAD');
    return note;
  },
};

const deleteUnknown: Check = {
  name: 'DELETE unknown manifest / blob / repository: 404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN)',
  workflow: 'content-management',
  async run(ctx) {
    await ctx.image();
    const d = ctx.freshBlob('delete-unknown', 32).digest;
    const m = await ctx.request('DELETE', manifestPath(ctx.repo, d));
    skipIfDisabled(m, 'DELETE manifest');
    expectError(m, 404, ['MANIFEST_UNKNOWN'], 'DELETE unknown manifest');
    const b = await ctx.request('DELETE', blobPath(ctx.repo, d));
    skipIfDisabled(b, 'DELETE blob');
    expectError(b, 404, ['BLOB_UNKNOWN'], 'DELETE unknown blob');
    const r = await ctx.request('DELETE', manifestPath(`${ctx.repo}/absent-${ctx.run}`, d));
    expectError(r, 404, undefined, 'DELETE manifest in unknown repository');
  },
};

/** Ordered according to OCI_DELETE_MANIFEST_BEFORE_BLOBS. */
export function managementChecks(cfg: ConformanceConfig): Check[] {
  return cfg.deleteManifestBeforeBlobs
    ? [deleteTag, deleteManifest, deleteBlob, deleteUnknown]
    : [deleteTag, deleteBlob, deleteManifest, deleteUnknown];
}
