// Referrers (distribution-spec 1.1): subject handling on push (OCI-Subject), the referrers
// API with artifactType filtering, and the referrers tag schema used by older clients.

import { ensure, equal, expectBody, expectDigestHeader, expectError, expectHeader, expectStatus, fail, sha256, show, skip } from './assert.js';
import type { HttpResponse } from './client.js';
import { MT, descriptorOf, encodeManifest, nextLink, type Blob, type Check, type Context, type Descriptor } from './context.js';

const AT_SBOM = 'application/vnd.artifact-store.conformance.sbom.v1+json';
const AT_INDEX = 'application/vnd.artifact-store.conformance.bundle.v1';
const CFG_B = 'application/vnd.artifact-store.conformance.config.v1+json';

interface Pushed {
  bytes: Uint8Array;
  digest: string;
  mediaType: string;
  annotations: Record<string, string>;
  res: HttpResponse;
}

interface Referrers {
  subject: Descriptor;
  sbom: Pushed;
  plain: Pushed;
}

function emptyBlob(): Blob {
  const data = new TextEncoder().encode('{}');
  return { data, digest: sha256(data), mediaType: MT.empty };
}

/** PUT by digest of a manifest/index document; 201 is checked by the callers. */
async function pushDoc(ctx: Context, doc: Record<string, unknown>, mediaType: string): Promise<Pushed> {
  const bytes = encodeManifest(doc);
  const digest = sha256(bytes);
  const res = await ctx.putManifest(ctx.repo, digest, bytes, mediaType);
  return { bytes, digest, mediaType, annotations: (doc.annotations ?? {}) as Record<string, string>, res };
}

function artifactDoc(ctx: Context, subject: Descriptor, label: string, config: Descriptor, layers: Descriptor[], artifactType?: string) {
  return {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    ...(artifactType ? { artifactType } : {}),
    config,
    layers,
    subject,
    annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.conformance.label': `${label}-${ctx.run}` },
  };
}

/** Two referrers of the base image: one with artifactType, one with only a config media type. */
function referrers(ctx: Context): Promise<Referrers> {
  return ctx.once('referrers', async () => {
    const img = await ctx.image();
    const subject: Descriptor = { mediaType: MT.ociManifest, digest: img.digest, size: img.manifest.length };
    const empty = emptyBlob();
    const layer = ctx.freshBlob('sbom-layer', 200, 'application/vnd.example.sbom+json');
    const cfgB: Blob = { data: new TextEncoder().encode(`{"run":"${ctx.run}"}`), digest: '', mediaType: CFG_B };
    cfgB.digest = sha256(cfgB.data);
    for (const b of [empty, layer, cfgB]) await ctx.pushBlob(ctx.repo, b);
    const sbom = await pushDoc(ctx, artifactDoc(ctx, subject, 'sbom', descriptorOf(empty), [descriptorOf(layer)], AT_SBOM), MT.ociManifest);
    expectStatus(sbom.res, 201, 'PUT referrer with artifactType');
    const plain = await pushDoc(ctx, artifactDoc(ctx, subject, 'plain', descriptorOf(cfgB), [descriptorOf(empty)]), MT.ociManifest);
    expectStatus(plain.res, 201, 'PUT referrer without artifactType');
    return { subject, sbom, plain };
  });
}

/** GET /v2/<name>/referrers/<digest>[query], all pages; checks status, Content-Type and shape. */
async function listReferrers(ctx: Context, digest: string, query = ''): Promise<{ first: HttpResponse; manifests: Descriptor[] }> {
  let res = await ctx.request('GET', `/v2/${ctx.repo}/referrers/${digest}${query}`);
  const first = res;
  const manifests: Descriptor[] = [];
  for (let page = 0; page < 100; page++) {
    const what = `GET referrers/${digest.slice(0, 19)}…${query}`;
    expectStatus(res, 200, what);
    expectHeader(res, 'Content-Type', what, MT.ociIndex);
    const body = res.json() as { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown } | undefined;
    if (!body || typeof body !== 'object') fail(`${what}: body is not a JSON object`);
    equal(body.schemaVersion, 2, `${what}: schemaVersion`);
    if (body.mediaType !== undefined) equal(body.mediaType, MT.ociIndex, `${what}: mediaType`);
    if (!Array.isArray(body.manifests)) fail(`${what}: "manifests" must be an array, got ${show(body.manifests)}`);
    manifests.push(...(body.manifests as Descriptor[]));
    const next = nextLink(res.headers.get('link'), res.url);
    if (!next) break;
    res = await ctx.request('GET', next.toString());
  }
  return { first, manifests };
}

/** The listed descriptor for `p` must carry mediaType, size, artifactType and all annotations. */
function expectListed(list: Descriptor[], p: Pushed, artifactType: string | undefined, what: string): void {
  const d = list.find((m) => m.digest === p.digest);
  if (!d) fail(`${what}: ${p.digest} not listed (got ${show(list.map((m) => m.digest))})`);
  equal(d.mediaType, p.mediaType, `${what}: descriptor mediaType`);
  equal(d.size, p.bytes.length, `${what}: descriptor size`);
  equal(d.artifactType, artifactType, `${what}: descriptor artifactType`);
  for (const [k, v] of Object.entries(p.annotations)) equal(d.annotations?.[k], v, `${what}: annotation ${k}`);
}

function expectSubjectHeader(res: HttpResponse, subject: string, what: string): void {
  expectStatus(res, 201, what);
  expectHeader(res, 'OCI-Subject', what, subject);
}

export const referrersChecks: Check[] = [
  {
    name: 'PUT manifest with subject and artifactType: 201 with OCI-Subject = subject digest',
    workflow: 'referrers',
    async run(ctx) {
      const r = await referrers(ctx);
      expectHeader(r.sbom.res, 'Location', 'PUT referrer');
      expectDigestHeader(r.sbom.res, r.sbom.digest, 'PUT referrer');
      expectSubjectHeader(r.sbom.res, r.subject.digest, 'PUT referrer');
    },
  },
  {
    name: 'GET referrers: 200 image index listing the referrer (mediaType, digest, size, artifactType, annotations)',
    workflow: 'referrers',
    async run(ctx) {
      const r = await referrers(ctx);
      const { manifests } = await listReferrers(ctx, r.subject.digest);
      expectListed(manifests, r.sbom, AT_SBOM, 'referrers list');
      return `${manifests.length} referrers listed`;
    },
  },
  {
    name: 'referrer without artifactType is listed with artifactType = its config mediaType',
    workflow: 'referrers',
    async run(ctx) {
      const r = await referrers(ctx);
      expectSubjectHeader(r.plain.res, r.subject.digest, 'PUT referrer without artifactType');
      const { manifests } = await listReferrers(ctx, r.subject.digest);
      expectListed(manifests, r.plain, CFG_B, 'referrers list');
    },
  },
  {
    name: 'GET referrers ?artifactType= filters and answers OCI-Filters-Applied: artifactType',
    workflow: 'referrers',
    optional: true,
    async run(ctx) {
      const r = await referrers(ctx);
      const { first, manifests } = await listReferrers(ctx, r.subject.digest, `?artifactType=${encodeURIComponent(AT_SBOM)}`);
      expectListed(manifests, r.sbom, AT_SBOM, 'filtered referrers');
      const applied = first.headers.get('oci-filters-applied');
      if (applied === null) skip('filter not applied by the registry (no OCI-Filters-Applied; clients filter themselves)');
      ensure(applied.split(',').map((s) => s.trim()).includes('artifactType'), `OCI-Filters-Applied is ${show(applied)}`);
      const other = manifests.filter((m) => m.artifactType !== AT_SBOM);
      ensure(other.length === 0, `filtered list still holds other artifact types: ${show(other)}`);
    },
  },
  {
    name: 'GET referrers of a digest nobody refers to: 200 with an empty image index',
    workflow: 'referrers',
    async run(ctx) {
      await ctx.image();
      const { manifests } = await listReferrers(ctx, sha256(ctx.bytes('no-referrers', 40)));
      equal(manifests.length, 0, 'number of referrers');
    },
  },
  {
    name: 'manifest whose subject does not exist yet: 201 with OCI-Subject, listed for that digest',
    workflow: 'referrers',
    async run(ctx) {
      await ctx.image();
      const empty = emptyBlob();
      await ctx.pushBlob(ctx.repo, empty);
      const subject: Descriptor = { mediaType: MT.ociManifest, digest: sha256(ctx.bytes('future-subject', 64)), size: 64 };
      const p = await pushDoc(ctx, artifactDoc(ctx, subject, 'early', descriptorOf(empty), [descriptorOf(empty)], AT_SBOM), MT.ociManifest);
      expectSubjectHeader(p.res, subject.digest, 'PUT referrer of an absent subject');
      expectListed((await listReferrers(ctx, subject.digest)).manifests, p, AT_SBOM, 'referrers of the absent subject');
    },
  },
  {
    name: 'image index with subject and artifactType is listed as a referrer',
    workflow: 'referrers',
    async run(ctx) {
      const r = await referrers(ctx);
      const doc = {
        schemaVersion: 2,
        mediaType: MT.ociIndex,
        artifactType: AT_INDEX,
        manifests: [{ mediaType: MT.ociManifest, digest: r.sbom.digest, size: r.sbom.bytes.length }],
        subject: r.subject,
        annotations: { 'org.example.conformance.label': `index-${ctx.run}` },
      };
      const p = await pushDoc(ctx, doc, MT.ociIndex);
      expectSubjectHeader(p.res, r.subject.digest, 'PUT index with subject');
      expectListed((await listReferrers(ctx, r.subject.digest)).manifests, p, AT_INDEX, 'referrers list');
    },
  },
  {
    name: 'GET referrers with a malformed digest: 400',
    workflow: 'referrers',
    async run(ctx) {
      await ctx.image();
      const res = await ctx.request('GET', `/v2/${ctx.repo}/referrers/sha256:not-a-digest`);
      expectError(res, 400, undefined, 'GET referrers/sha256:not-a-digest');
    },
  },
  {
    name: 'referrers tag schema: an index pushed under the sha256-<hex> tag is stored and served back',
    workflow: 'referrers',
    async run(ctx) {
      const r = await referrers(ctx);
      const subject = sha256(ctx.bytes('tag-schema-subject', 64));
      const tag = subject.replace(':', '-');
      const bytes = encodeManifest({
        schemaVersion: 2,
        mediaType: MT.ociIndex,
        manifests: [{ mediaType: MT.ociManifest, digest: r.sbom.digest, size: r.sbom.bytes.length, artifactType: AT_SBOM }],
      });
      const put = await ctx.putManifest(ctx.repo, tag, bytes, MT.ociIndex);
      expectStatus(put, 201, `PUT index under tag ${tag}`);
      const get = await ctx.getManifest(ctx.repo, tag);
      expectStatus(get, 200, `GET ${tag}`);
      equal(get.headers.get('content-type'), MT.ociIndex, `GET ${tag}: Content-Type`);
      expectBody(get, bytes, `GET ${tag}`);
    },
  },
];
