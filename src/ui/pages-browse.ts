/** Search and repository pages. */
import type { ManifestRecord } from '../meta/registry-store.js';
import type { ReferrerRow } from '../meta/registry-store.js';
import type { SearchResult } from '../search/store.js';
import { formatBytes, html, qs, type Html } from './html.js';
import type { TagRow } from './store.js';

const SIGNATURE_TYPES = ['application/vnd.dev.cosign.artifact.sig.v1+json'];

export function repoHref(repository: string, params: Record<string, string | undefined> = {}): string {
  return `/ui/r/${repository.split('/').map(encodeURIComponent).join('/')}${qs(params)}`;
}

export function searchPage(params: URLSearchParams, result: SearchResult | { error: string }): Html {
  const cur = Object.fromEntries(params) as Record<string, string>;
  const link = (changes: Record<string, string | undefined>) => `/ui/${qs({ ...cur, page: undefined, ...changes })}`;
  const form = html`<form method="get" action="/ui/" role="search"><label for="q">Search repositories, tags, annotations and types</label>
<input type="search" id="q" name="q" value="${params.get('q') ?? ''}" autofocus> <button type="submit">Search</button>
${['type', 'namespace', 'signed'].map((k) => (params.get(k) ? html`<input type="hidden" name="${k}" value="${params.get(k)!}">` : ''))}</form>`;
  if ('error' in result) return html`${form}<p class="bad" role="alert">${result.error}</p>`;
  const facet = (name: 'type' | 'namespace' | 'signed', label: string) => html`<h2>${label}</h2><ul>
${params.get(name) ? html`<li><a href="${link({ [name]: undefined })}">× any ${label.toLowerCase()}</a></li>` : ''}
${result.facets[name].map((f) => html`<li><a href="${link({ [name]: f.value })}">${name === 'signed' ? (f.value === 'true' ? 'signed' : 'unsigned') : f.value}</a> <span class="muted">(${f.count})</span></li>`)}</ul>`;
  const pages = Math.max(1, Math.ceil(result.total / result.perPage));
  return html`${form}<div class="layout"><aside class="facets" aria-label="Filters">${facet('type', 'Type')}${facet('namespace', 'Namespace')}${facet('signed', 'Signed')}</aside>
<section aria-label="Results"><p class="muted">${result.total}${result.totalExact ? '' : '+'} result${result.total === 1 ? '' : 's'} · page ${result.page} of ${pages}${result.totalExact ? '' : '+'}${result.sort === 'newest' ? ' · too many matches to rank: newest first' : ''}</p>
${result.results.map(
  (h) => html`<div class="hit"><a href="${repoHref(h.repository, { digest: h.digest })}"><strong>${h.repository}</strong></a>
${h.tags.length > 0 ? html` <span>${h.tags.slice(0, 8).join(', ')}</span>` : ''} ${h.signed ? html`<span class="ok">signed</span>` : html`<span class="muted">unsigned</span>`}
${h.annotations['org.opencontainers.image.title'] ? html`<div>${h.annotations['org.opencontainers.image.title']}</div>` : ''}
${h.annotations['org.opencontainers.image.description'] ? html`<div class="muted">${h.annotations['org.opencontainers.image.description']}</div>` : ''}
<div class="muted"><span class="digest">${h.digest}</span> · ${h.type} · ${formatBytes(h.size)} · updated ${h.updatedAt}</div></div>`,
)}
<div class="pager">${result.page > 1 ? html`<a href="${link({ page: String(result.page - 1) })}" rel="prev">← previous</a>` : ''}
${result.page < pages || (!result.totalExact && result.results.length === result.perPage) ? html`<a href="${link({ page: String(result.page + 1) })}" rel="next">next →</a>` : ''}</div></section></div>`;
}

export interface TrustView {
  status: number;
  body: Record<string, unknown>;
}

function trustPanel(t: TrustView | null): Html {
  if (!t) return html``;
  if (t.status !== 200) return html`<p class="muted">Trust not evaluated: ${String((t.body.errors as { message?: string }[] | undefined)?.[0]?.message ?? t.status)}</p>`;
  const b = t.body as { decision?: string; trusted?: boolean; quarantined?: boolean; signatures?: Sig[]; attestations?: Sig[]; policy?: { namespace?: string; mode?: string; version?: number }; inheritedFrom?: string; note?: string };
  type Sig = { kind: string; digest: string; verified: boolean; keyId?: string; identity?: { issuer: string; subject: string }; predicateType?: string; reason: string };
  const rows = (list: Sig[] | undefined) =>
    (list ?? []).map(
      (s) => html`<tr><td>${s.verified ? html`<span class="ok">verified</span>` : html`<span class="bad">not verified</span>`}</td><td>${s.kind}</td>
<td>${s.keyId ? html`key <code>${s.keyId}</code>` : ''}${s.identity ? html`${s.identity.subject} <span class="muted">(${s.identity.issuer})</span>` : ''}${s.predicateType ? html` <span class="muted">${s.predicateType}</span>` : ''}</td><td>${s.reason}</td></tr>`,
    );
  const cls = b.trusted ? 'ok' : b.decision === 'unsigned' ? 'warn' : 'bad';
  return html`<section aria-label="Trust"><h2>Trust</h2><p>Decision: <span class="${cls}">${b.decision ?? 'unknown'}</span>${b.quarantined ? html` <span class="bad">(quarantined)</span>` : ''}
${b.policy ? html` <span class="muted">policy of ${b.policy.namespace ?? ''}: mode ${b.policy.mode ?? ''}, version ${String(b.policy.version ?? '')}</span>` : ''}
${b.inheritedFrom ? html` · trusted through index <code>${b.inheritedFrom}</code>` : ''}</p>${b.note ? html`<p class="muted">${b.note}</p>` : ''}
${(b.signatures?.length ?? 0) + (b.attestations?.length ?? 0) > 0 ? html`<table><thead><tr><th>Result</th><th>Found as</th><th>Key / identity</th><th>Why</th></tr></thead><tbody>${rows(b.signatures)}${rows(b.attestations)}</tbody></table>` : html`<p class="muted">No signatures found.</p>`}</section>`;
}

export interface RepoView {
  repository: string;
  host: string;
  tags: TagRow[];
  tagCount: number;
  last: string;
  nextLast: string | null;
  selected: ManifestRecord | null;
  selectedTag: string | null;
  config: string | null;
  referrers: ReferrerTree;
  trust: TrustView | null;
  downloads: number;
  /** Downloads by tag name, for the tags on this page. */
  tagDownloads: Map<string, number>;
  stars: number;
  starred: boolean;
  csrf: string | null;
  canStar: boolean;
}

function pretty(payload: Buffer): string {
  try {
    return JSON.stringify(JSON.parse(payload.toString('utf8')), null, 2);
  } catch {
    return payload.toString('utf8');
  }
}

function platforms(m: ManifestRecord, repository: string): Html {
  let doc: { manifests?: { digest?: string; size?: number; platform?: { os?: string; architecture?: string; variant?: string } }[] };
  try {
    doc = JSON.parse(m.payload.toString('utf8')) as typeof doc;
  } catch {
    return html``;
  }
  if (!Array.isArray(doc.manifests)) return html``;
  return html`<h2>Platforms</h2><table><thead><tr><th>Platform</th><th>Digest</th><th>Size</th></tr></thead><tbody>${doc.manifests.map(
    (d) => html`<tr><td>${d.platform ? [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join('/') : 'unknown'}</td>
<td>${typeof d.digest === 'string' ? html`<a class="digest" href="${repoHref(repository, { digest: d.digest })}">${d.digest}</a>` : ''}</td><td>${typeof d.size === 'number' ? formatBytes(d.size) : ''}</td></tr>`,
  )}</tbody></table>`;
}

/** One page of a manifest's referrers, each with the first few of its own referrers (one level down). */
export interface ReferrerTree {
  total: number;
  /** The `rlast` this page starts after ('' for the first page). */
  last: string;
  nextLast: string | null;
  items: { row: ReferrerRow; children: ReferrerRow[]; childCount: number }[];
}

const EVIDENCE_TYPE_ANNOTATION = 'dev.artifact-store.evidence.type';

function evidenceType(r: ReferrerRow): string | null {
  if (!r.annotations) return null;
  try {
    const v = (JSON.parse(r.annotations) as Record<string, unknown>)[EVIDENCE_TYPE_ANNOTATION];
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

function referrerLine(repository: string, r: ReferrerRow): Html {
  const et = evidenceType(r);
  return html`<span class="kind">${referrerKind(r)}</span>${et ? html` <span class="muted">(${et})</span>` : ''} <a class="digest" href="${repoHref(repository, { digest: r.digest })}">${r.digest}</a>
<span class="muted">${r.artifactType ?? r.mediaType} · ${formatBytes(r.size)}</span>`;
}

function referrersTree(v: RepoView): Html {
  const t = v.referrers;
  if (t.total === 0) return html`<p class="muted">None.</p>`;
  const here = (rlast: string | undefined) => repoHref(v.repository, { digest: v.selected!.digest, rlast });
  const shown = t.items.length;
  return html`<p class="muted">${t.total} referrer${t.total === 1 ? '' : 's'}${t.total > shown ? ` · ${shown} on this page` : ''}</p>
<ul class="tree" aria-label="Referrers">${t.items.map(
    (i) => html`<li>${referrerLine(v.repository, i.row)}${
      i.childCount > 0
        ? html`<ul>${i.children.map((ch) => html`<li>${referrerLine(v.repository, ch)}</li>`)}${
            i.childCount > i.children.length ? html`<li><a href="${repoHref(v.repository, { digest: i.row.digest })}">all ${i.childCount} referrers of this ${referrerKind(i.row)} →</a></li>` : ''
          }</ul>`
        : ''
    }</li>`,
  )}</ul>
<div class="pager">${t.last ? html`<a href="${here(undefined)}">first referrers</a>` : ''}${t.nextLast ? html`<a href="${here(t.nextLast)}" rel="next">next referrers →</a>` : ''}</div>`;
}

function referrerKind(r: ReferrerRow): string {
  const t = r.artifactType ?? '';
  if (SIGNATURE_TYPES.includes(t) || t.startsWith('application/vnd.dev.sigstore.bundle')) return 'signature';
  if (/spdx|cyclonedx|sbom/i.test(t)) return 'SBOM';
  if (/in-toto|attestation|att\.v1/i.test(t)) return 'attestation';
  return 'evidence';
}

export function repositoryPage(v: RepoView): Html {
  const ref = v.selectedTag ? `:${v.selectedTag}` : v.selected ? `@${v.selected.digest}` : '';
  return html`<p><label for="pull">Pull command</label><input id="pull" class="pull" type="text" readonly value="${`docker pull ${v.host}/${v.repository}${ref}`}"></p>
<p>${v.downloads} downloads · ${v.stars} star${v.stars === 1 ? '' : 's'}
${v.canStar ? html`<form method="post" action="/ui/star" class="inline"><input type="hidden" name="csrf" value="${v.csrf ?? ''}"><input type="hidden" name="repository" value="${v.repository}"><input type="hidden" name="star" value="${v.starred ? 'false' : 'true'}"><button type="submit">${v.starred ? 'Unstar' : 'Star'}</button></form>` : ''}
<img src="${`/badges/${v.repository}/health.svg`}" alt="health badge"> <img src="${`/badges/${v.repository}/signed.svg`}" alt="signed badge"></p>
<h2>Tags <span class="muted">(${v.tagCount})</span></h2>
<table><thead><tr><th>Tag</th><th>Digest</th><th>Type</th><th>Size</th><th>Downloads</th><th>Updated</th></tr></thead><tbody>${v.tags.map(
    (t) => html`<tr><td><a href="${repoHref(v.repository, { tag: t.name })}">${t.name}</a></td><td class="digest">${t.digest}</td><td>${t.artifact_type ?? t.media_type}</td><td>${formatBytes(t.size)}</td><td>${String(v.tagDownloads.get(t.name) ?? 0)}</td><td>${new Date(t.updated_at).toISOString()}</td></tr>`,
  )}</tbody></table>
<div class="pager">${v.last ? html`<a href="${repoHref(v.repository)}">first page</a>` : ''}${v.nextLast ? html`<a href="${repoHref(v.repository, { last: v.nextLast })}" rel="next">next tags →</a>` : ''}</div>
${
  v.selected
    ? html`<h2>Manifest ${v.selectedTag ? html`<code>${v.selectedTag}</code>` : ''}</h2><p class="digest">${v.selected.digest}</p>
<p class="muted">${v.selected.mediaType}${v.selected.artifactType ? html` · artifact type ${v.selected.artifactType}` : ''} · ${formatBytes(v.selected.size)}${v.selected.subject ? html` · refers to <a href="${repoHref(v.repository, { digest: v.selected.subject })}">${v.selected.subject}</a>` : ''}</p>
${platforms(v.selected, v.repository)}${trustPanel(v.trust)}
<h2>Referrers</h2>${referrersTree(v)}
<div class="sbs"><div><h2>Manifest JSON</h2><pre>${pretty(v.selected.payload).slice(0, 256 * 1024)}</pre></div>
${v.config !== null ? html`<div><h2>Config JSON</h2><pre>${v.config}</pre></div>` : ''}</div>`
    : html`<p class="muted">No manifest selected.</p>`
}`;
}
