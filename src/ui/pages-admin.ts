/** Bundles, families, event log and keys pages. Data from other modules arrives as their API's JSON. */
import { html, qs, type Html } from './html.js';
import { repoHref } from './pages-browse.js';
import type { ActivationRow, BundleListRow } from './store.js';

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

export function apiError(a: ApiAnswer): Html {
  const msg = (a.body.errors as { message?: string }[] | undefined)?.[0]?.message ?? `HTTP ${a.status}`;
  return html`<p class="bad" role="alert">${msg}</p>`;
}

const iso = (v: unknown): string => (typeof v === 'number' ? new Date(v).toISOString() : String(v ?? ''));

export function bundlesPage(list: BundleListRow[], activations: ActivationRow[], detail: ApiAnswer | null, nextBefore: number | null): Html {
  const stateClass = (s: string) => (s === 'ACTIVE' ? 'ok' : s === 'REJECTED' ? 'bad' : s === 'RETIRED' ? 'muted' : 'warn');
  const link = (b: { bundle_id: string; bundle_version: string }) => `/ui/bundles${qs({ id: b.bundle_id, version: b.bundle_version })}`;
  let detailHtml = html``;
  if (detail) {
    if (detail.status !== 200) detailHtml = apiError(detail);
    else {
      const b = detail.body as { bundle_id?: string; bundle_version?: string; state?: string; repository?: string; digest?: string; history?: Record<string, unknown>[] };
      detailHtml = html`<h2>History of ${b.bundle_id ?? ''}@${b.bundle_version ?? ''}</h2><p>State <span class="${stateClass(b.state ?? '')}">${b.state ?? ''}</span> ·
<a href="${repoHref(b.repository ?? '', { digest: b.digest })}">${b.repository ?? ''}</a></p><ol class="timeline">${(b.history ?? []).map(
        (h) => html`<li><strong>${String(h.action ?? '')}</strong> ${h.from ? html`${String(h.from)} → ` : ''}${String(h.to ?? '')}
${h.scope ? html` <span class="muted">scope ${JSON.stringify(h.scope)}</span>` : ''} by <em>${String(h.actor ?? '')}</em> <span class="muted">${iso(h.time)} · event #${String(h.event_seq ?? '')}</span>${h.reason ? html` — ${String(h.reason)}` : ''}</li>`,
      )}</ol>`;
    }
  }
  return html`${detailHtml}<h2>Active per scope</h2>${
    activations.length === 0
      ? html`<p class="muted">No activations.</p>`
      : html`<table><thead><tr><th>Model family</th><th>Tenant</th><th>Environment</th><th>Bundle</th><th>Event</th></tr></thead><tbody>${activations.map(
          (a) => html`<tr><td>${a.model_family}</td><td>${a.tenant || html`<span class="muted">(any)</span>`}</td><td>${a.environment}</td><td><a href="${link(a)}">${a.bundle_id}@${a.bundle_version}</a></td><td>#${a.event_seq}</td></tr>`,
        )}</tbody></table>`
  }
<h2>Bundles</h2><table><thead><tr><th>Bundle</th><th>Kind</th><th>Model family</th><th>State</th><th>Repository</th><th>Submitted by</th></tr></thead><tbody>${list.map(
    (b) => html`<tr><td><a href="${link(b)}">${b.bundle_id}@${b.bundle_version}</a></td><td>${b.kind}</td><td>${b.model_family}</td><td><span class="${stateClass(b.state)}">${b.state}</span></td>
<td><a href="${repoHref(b.repository, { digest: b.digest })}">${b.repository}</a></td><td>${b.submitted_by}</td></tr>`,
  )}</tbody></table>${nextBefore !== null ? html`<div class="pager"><a href="/ui/bundles${qs({ before: nextBefore })}" rel="next">older →</a></div>` : ''}`;
}

export function familiesPage(list: ApiAnswer, family: string | null, entries: ApiAnswer | null): Html {
  if (list.status !== 200) return apiError(list);
  const fams = (list.body.families as { family: string; entries: number; delegatedTo: string | null }[]) ?? [];
  const table = html`<table><thead><tr><th>Family</th><th>Entries</th><th>Delegated to</th></tr></thead><tbody>${fams.map(
    (f) => html`<tr><td><a href="/ui/families${qs({ family: f.family })}">${f.family}</a></td><td>${f.entries}</td><td>${f.delegatedTo ?? ''}</td></tr>`,
  )}</tbody></table>`;
  if (!family || !entries) return table;
  if (entries.status !== 200) return html`${table}${apiError(entries)}`;
  const list2 = (entries.body.entries as Record<string, unknown>[]) ?? [];
  return html`${table}<h2>${family}</h2><table><thead><tr><th>Id</th><th>Version</th><th>Status</th><th>Owner</th><th>Description</th></tr></thead><tbody>${list2.map((e) => {
    const entry = (e.entry ?? e) as Record<string, unknown>;
    return html`<tr><td><code>${String(e.id ?? entry.id ?? '')}</code></td><td>${String(e.version ?? '')}</td><td>${String(e.status ?? '')}</td><td>${String(entry.owner ?? '')}</td><td>${String(entry.description ?? '')}</td></tr>`;
  })}</tbody></table>`;
}

export function eventsPage(a: ApiAnswer, after: number): Html {
  if (a.status !== 200) return apiError(a);
  const events = (a.body.events as Record<string, unknown>[]) ?? [];
  const newest = events.length > 0 ? Number(events[events.length - 1]!.seq) : after;
  return html`<p id="live" class="muted" aria-live="polite">live: connecting</p><table><thead><tr><th>Seq</th><th>Time</th><th>Actor</th><th>Action</th><th>Repository</th><th>Tag</th><th>Digest</th></tr></thead>
<tbody id="events-body" data-after="${newest}">${[...events].reverse().map(
    (e) => html`<tr><td>${String(e.seq)}</td><td>${iso(e.time)}</td><td>${String(e.actor ?? '')}</td><td>${String(e.action ?? '')}</td><td>${String(e.repository ?? '')}</td><td>${String(e.tag ?? '')}</td><td class="digest">${String(e.digest ?? '')}</td></tr>`,
  )}</tbody></table><div class="pager">${after > 0 ? html`<a href="/ui/events${qs({ after: Math.max(0, after - 50) })}">← older</a>` : ''}</div>`;
}

export interface KeyRow {
  id: string;
  name: string;
  scopes: string;
  repositories: string | null;
  expiresAt: number | null;
  revokedAt: number | null;
  createdAt?: number;
}

export function keysPage(keys: KeyRow[], csrf: string, created: { id: string; token: string } | null, error: string | null): Html {
  return html`${created ? html`<div class="secret" role="status"><p><strong>New key ${created.id}</strong> — copy it now, it is shown only once:</p><p><input type="text" class="pull" readonly aria-label="New API key" id="new-key" value="${created.token}"></p></div>` : ''}
${error ? html`<p class="bad" role="alert">${error}</p>` : ''}
<h2>Create a key</h2><form method="post" action="/ui/keys"><input type="hidden" name="csrf" value="${csrf}">
<label for="key-name">Name</label><input type="text" id="key-name" name="name" required maxlength="100">
<fieldset><legend>Scopes</legend><label><input type="checkbox" name="scope" value="read" checked> read</label><label><input type="checkbox" name="scope" value="publish"> publish</label><label><input type="checkbox" name="scope" value="admin"> admin</label></fieldset>
<label for="key-days">Expires after (days, empty: never)</label><input type="number" id="key-days" name="days" min="1" max="3650">
<p><button type="submit">Create key</button></p></form>
<h2>Your keys</h2><table><thead><tr><th>Id</th><th>Name</th><th>Scopes</th><th>Repositories</th><th>Expires</th><th>Status</th><th></th></tr></thead><tbody>${keys.map(
    (k) => html`<tr><td><code>${k.id}</code></td><td>${k.name}</td><td>${k.scopes}</td><td>${k.repositories ?? 'all'}</td><td>${k.expiresAt ? iso(k.expiresAt) : 'never'}</td>
<td>${k.revokedAt ? html`<span class="muted">revoked</span>` : html`<span class="ok">active</span>`}</td>
<td>${k.revokedAt ? '' : html`<form method="post" action="/ui/keys/revoke" class="inline"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="id" value="${k.id}"><button type="submit" aria-label="${`Revoke key ${k.name}`}">Revoke</button></form>`}</td></tr>`,
  )}</tbody></table>`;
}
