// Shared state of one conformance run: the client, deterministic test content, fixtures
// pushed on demand (memoized), and the bookkeeping needed to clean up afterwards.

import { createHash } from 'node:crypto';
import { RegistryClient, type HttpResponse } from './client.js';
import type { ConformanceConfig, Workflow } from './config.js';
import { describeError, expectStatus, fail, sha256 } from './assert.js';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  empty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const ACCEPT_MANIFESTS = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList].join(', ');

/** One named check. Optional checks (SHOULD/MAY features) skip instead of failing when absent. */
export interface Check {
  name: string;
  workflow: Workflow;
  optional?: boolean;
  /** Resolves with an optional detail on success; throws CheckFailure or Skip otherwise. */
  run(ctx: Context): Promise<string | void>;
}

export interface Blob {
  digest: string;
  data: Uint8Array;
  mediaType: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface Image {
  repo: string;
  config: Blob;
  layers: Blob[];
  manifest: Uint8Array;
  digest: string;
  tags: string[];
  /** Response to the first manifest PUT (by tags[0]). */
  putRes: HttpResponse;
}

export function descriptorOf(b: { data: Uint8Array; mediaType: string }, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType: b.mediaType, digest: sha256(b.data), size: b.data.length, ...extra };
}

/** Serializes a manifest with unusual (but valid) formatting, so re-serialization is detectable. */
export function encodeManifest(obj: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(obj, null, 3)}\n`);
}

export function blobPath(repo: string, digest: string): string {
  return `/v2/${repo}/blobs/${digest}`;
}

export function manifestPath(repo: string, ref: string): string {
  return `/v2/${repo}/manifests/${ref}`;
}

/** Appends query parameters to a (possibly absolute, possibly already queried) location. */
export function withQuery(location: string, params: Record<string, string>): string {
  const u = new URL(location, 'http://placeholder.invalid');
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return /^https?:\/\//i.test(location) ? u.toString() : `${u.pathname}${u.search}`;
}

/** Parses an RFC 8288 Link header and returns the rel="next" target, resolved against `base`. */
export function nextLink(header: string | null, base: string): URL | null {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /(^|;)\s*rel\s*=\s*"?next"?\s*(;|$)/i.test(m[2] ?? '')) return new URL(m[1]!, base);
  }
  return null;
}

export class Context {
  readonly client: RegistryClient;
  /** Short id of this run, used in tags. */
  readonly run: string;
  readonly repo: string;
  readonly mountRepo: string;
  private readonly images = new Map<string, Promise<Image>>();
  private readonly memo = new Map<string, Promise<unknown>>();
  private readonly created: { repo: string; kind: 'manifest' | 'blob'; digest: string }[] = [];
  private readonly uploads = new Set<string>();
  private counter = 0;

  constructor(readonly cfg: ConformanceConfig, readonly log: (line: string) => void) {
    this.client = new RegistryClient(
      { rootUrl: cfg.rootUrl, username: cfg.username, password: cfg.password, timeoutMs: cfg.timeoutMs, debug: cfg.debug },
      log,
    );
    this.run = cfg.seed.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12) || 'run';
    this.repo = cfg.namespace;
    this.mountRepo = cfg.crossmountNamespace;
  }

  /** Deterministic pseudo-random bytes for (seed, label). Each label should be used once. */
  bytes(label: string, size: number): Uint8Array {
    const out = new Uint8Array(size);
    let off = 0;
    for (let i = 0; off < size; i++) {
      const block = createHash('sha256').update(`${this.cfg.seed}|${label}|${i}`).digest();
      out.set(block.subarray(0, Math.min(block.length, size - off)), off);
      off += block.length;
    }
    return out;
  }

  /** A fresh blob (unique content) with a deterministic label. */
  freshBlob(label: string, size = 1024, mediaType: string = MT.ociLayer): Blob {
    const data = this.bytes(`${label}#${this.counter++}`, size);
    return { data, digest: sha256(data), mediaType };
  }

  tag(label: string): string {
    return `ct-${this.run}-${label}`;
  }

  /** Memoizes a fixture so several checks can share it; a failed fixture fails them all. */
  once<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = make().catch((e: unknown) => fail(`setup "${key}" failed: ${describeError(e)}`));
      this.memo.set(key, p);
    }
    return p;
  }

  request(method: string, target: string, opts: Parameters<RegistryClient['request']>[2] = {}): Promise<HttpResponse> {
    return this.client.request(method, target, opts);
  }

  getManifest(repo: string, ref: string, method: 'GET' | 'HEAD' = 'GET'): Promise<HttpResponse> {
    return this.request(method, manifestPath(repo, ref), { headers: { accept: ACCEPT_MANIFESTS } });
  }

  getBlob(repo: string, digest: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}) {
    return this.request(method, blobPath(repo, digest), { headers, follow: true });
  }

  /** POST /v2/<repo>/blobs/uploads/ (optionally with query), remembering sessions to cancel. */
  async startUpload(repo: string, query = ''): Promise<{ res: HttpResponse; location: string | null }> {
    const res = await this.request('POST', `/v2/${repo}/blobs/uploads/${query}`, { body: new Uint8Array(0) });
    const location = res.headers.get('location');
    if (res.status === 202 && location) this.uploads.add(this.client.resolve(location).toString());
    return { res, location };
  }

  /** Upload finished or cancelled: no need to cancel it at cleanup. */
  forgetUpload(location: string | null): void {
    if (location) this.uploads.delete(this.client.resolve(location).toString());
  }

  noteManifest(repo: string, digest: string): void {
    this.created.push({ repo, kind: 'manifest', digest });
  }

  noteBlob(repo: string, digest: string): void {
    this.created.push({ repo, kind: 'blob', digest });
  }

  /** Pushes a blob with POST then PUT ?digest= (the most widely supported method). */
  async pushBlob(repo: string, blob: Blob): Promise<void> {
    const { res, location } = await this.startUpload(repo);
    expectStatus(res, 202, `POST /v2/${repo}/blobs/uploads/`);
    if (!location) fail(`POST /v2/${repo}/blobs/uploads/: missing Location header`);
    const put = await this.request('PUT', withQuery(location, { digest: blob.digest }), {
      body: blob.data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    this.forgetUpload(location);
    expectStatus(put, 201, `PUT upload ?digest=${blob.digest}`);
    this.noteBlob(repo, blob.digest);
  }

  async putManifest(repo: string, ref: string, bytes: Uint8Array, mediaType: string): Promise<HttpResponse> {
    const res = await this.request('PUT', manifestPath(repo, ref), { body: bytes, headers: { 'content-type': mediaType } });
    if (res.status === 201) this.noteManifest(repo, sha256(bytes));
    return res;
  }

  /**
   * An OCI image (config + two layers) pushed to `repo` under `tags` (first tag by PUT, others
   * by re-PUT of the same bytes). Memoized per label.
   */
  image(label = 'base', tags: string[] = [this.tag(label)], repo: string = this.repo): Promise<Image> {
    let p = this.images.get(label);
    if (!p) {
      p = this.once(`image ${label}`, () => this.pushImage(label, tags, repo));
      this.images.set(label, p);
    }
    return p;
  }

  private async pushImage(label: string, tags: string[], repo: string): Promise<Image> {
    const layers = [this.freshBlob(`${label}-layer`, 1500), this.freshBlob(`${label}-layer`, 777)];
    const cfgJson = {
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    };
    const cfgData = new TextEncoder().encode(JSON.stringify(cfgJson));
    const config: Blob = { data: cfgData, digest: sha256(cfgData), mediaType: MT.ociConfig };
    for (const b of [config, ...layers]) await this.pushBlob(repo, b);
    const manifest = encodeManifest({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: descriptorOf(config),
      layers: layers.map((l) => descriptorOf(l)),
      annotations: { 'org.opencontainers.image.title': `conformance ${label}` },
    });
    let putRes: HttpResponse | undefined;
    for (const tag of tags) {
      const res = await this.putManifest(repo, tag, manifest, MT.ociManifest);
      expectStatus(res, 201, `PUT manifest ${repo}:${tag}`);
      putRes ??= res;
    }
    if (!putRes) fail('image fixture needs at least one tag');
    return { repo, config, layers, manifest, digest: sha256(manifest), tags, putRes };
  }

  /** Best-effort removal of what the run created (manifests first, newest first, then blobs). */
  async cleanup(): Promise<void> {
    for (const loc of this.uploads) await this.request('DELETE', loc).catch(() => undefined);
    this.uploads.clear();
    if (!this.cfg.cleanup) return;
    const seen = new Set<string>();
    const ordered = [...this.created].reverse().sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'manifest' ? -1 : 1));
    for (const item of ordered) {
      const key = `${item.repo}|${item.kind}|${item.digest}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const path = item.kind === 'manifest' ? manifestPath(item.repo, item.digest) : blobPath(item.repo, item.digest);
      await this.request('DELETE', path).catch(() => undefined);
    }
  }
}
