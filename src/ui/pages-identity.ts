/** Admin pages for users and organisations: plain forms (labels, buttons, no script) over the management API. */
import { html, qs, type Html } from './html.js';
import { apiError, type ApiAnswer } from './pages-admin.js';

export interface UserRow {
  name: string;
  admin: boolean;
  disabled: boolean;
}

export interface OrgRow {
  name: string;
}

export interface Notice {
  ok: boolean;
  text: string;
}

const notice = (n: Notice | null): Html => (n ? html`<p class="${n.ok ? 'ok' : 'bad'}" role="${n.ok ? 'status' : 'alert'}">${n.text}</p>` : html``);

const pager = (base: string, last: string, nextLast: string | null): Html =>
  html`<div class="pager">${last ? html`<a href="${base}">first page</a>` : ''}${nextLast ? html`<a href="${`${base}${qs({ last: nextLast })}`}" rel="next">next →</a>` : ''}</div>`;

export function usersPage(users: UserRow[], csrf: string, last: string, nextLast: string | null, n: Notice | null): Html {
  return html`${notice(n)}<h2>Create a user</h2><form method="post" action="/ui/admin/users"><input type="hidden" name="csrf" value="${csrf}">
<label for="user-name">User name</label><input type="text" id="user-name" name="name" required maxlength="64" autocomplete="off">
<label for="user-password">Initial password (at least 12 characters)</label><input type="password" id="user-password" name="password" required minlength="12" autocomplete="new-password">
<label><input type="checkbox" name="admin" value="true"> administrator</label>
<p><button type="submit">Create user</button></p></form>
<h2>Users</h2><table><thead><tr><th>Name</th><th>Role</th><th>Status</th><th></th></tr></thead><tbody>${users.map(
    (u) => html`<tr><td>${u.name}</td><td>${u.admin ? 'administrator' : 'user'}</td><td>${u.disabled ? html`<span class="bad">disabled</span>` : html`<span class="ok">active</span>`}</td>
<td><form method="post" action="/ui/admin/users/disabled" class="inline"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="name" value="${u.name}"><input type="hidden" name="disabled" value="${u.disabled ? 'false' : 'true'}"><button type="submit" aria-label="${`${u.disabled ? 'Enable' : 'Disable'} user ${u.name}`}">${u.disabled ? 'Enable' : 'Disable'}</button></form>
<a href="${`/ui/admin/users/delete${qs({ name: u.name })}`}" aria-label="${`Delete user ${u.name}`}">Delete…</a></td></tr>`,
  )}</tbody></table>${pager('/ui/admin/users', last, nextLast)}`;
}

export function orgsPage(orgs: OrgRow[], csrf: string, last: string, nextLast: string | null, selected: string | null, members: ApiAnswer | null, n: Notice | null, canDelete = false): Html {
  let membersHtml = html``;
  if (selected && members) {
    const list = members.status === 200 ? ((members.body.members as { user: string; role: string }[] | undefined) ?? []) : [];
    membersHtml = html`<h2>Members of ${selected}</h2>${
      members.status !== 200
        ? apiError(members)
        : html`<table><thead><tr><th>User</th><th>Role</th><th></th></tr></thead><tbody>${list.map(
            (m) => html`<tr><td>${m.user}</td><td>${m.role}</td><td><form method="post" action="/ui/admin/orgs/member" class="inline"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="org" value="${selected}"><input type="hidden" name="user" value="${m.user}"><input type="hidden" name="role" value=""><button type="submit" aria-label="${`Remove ${m.user} from ${selected}`}">Remove</button></form></td></tr>`,
          )}</tbody></table>`
    }
<h3>Add or change a member</h3><form method="post" action="/ui/admin/orgs/member"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="org" value="${selected}">
<label for="member-user">User name</label><input type="text" id="member-user" name="user" required maxlength="64">
<label for="member-role">Role</label><select id="member-role" name="role"><option value="reader">reader</option><option value="maintainer">maintainer</option><option value="owner">owner</option></select>
<p><button type="submit">Set role</button></p></form>${
      canDelete && members.status === 200 ? html`<p><a href="${`/ui/admin/orgs/delete${qs({ org: selected })}`}" aria-label="${`Delete organisation ${selected}`}">Delete this organisation…</a></p>` : ''
    }`;
  }
  return html`${notice(n)}${membersHtml}<h2>Create an organisation</h2><form method="post" action="/ui/admin/orgs"><input type="hidden" name="csrf" value="${csrf}">
<label for="org-name">Organisation name</label><input type="text" id="org-name" name="name" required maxlength="64" autocomplete="off">
<p><button type="submit">Create organisation</button></p></form>
<h2>Organisations</h2>${
    orgs.length === 0
      ? html`<p class="muted">None visible to you.</p>`
      : html`<ul>${orgs.map((o) => html`<li><a href="${`/ui/admin/orgs${qs({ org: o.name })}`}">${o.name}</a></li>`)}</ul>`
  }${pager('/ui/admin/orgs', last, nextLast)}`;
}

export interface DeleteTarget {
  kind: 'user' | 'organisation';
  name: string;
  /** Where the form posts and where "cancel" leads. */
  action: string;
  back: string;
}

const CONSEQUENCES: Record<DeleteTarget['kind'], string> = {
  user: 'Their API keys, web sessions, memberships and stars go with them; the name becomes free again. Refused while their namespace has repositories with content, while they are the only owner of an organisation, while a legal hold or a webhook covers their namespace, and for your own account.',
  organisation:
    'Its memberships go with it; the name becomes free again. Refused while its namespace has repositories with content, while families are delegated to it, or while a legal hold or a webhook covers its namespace.',
};

/** The confirmation step of a deletion: the name must be typed again (no script: the CSP forbids inline JS). */
export function deleteConfirmPage(t: DeleteTarget, csrf: string, n: Notice | null): Html {
  const field = t.kind === 'user' ? 'name' : 'org';
  return html`${notice(n)}<p>Delete ${t.kind} <strong>${t.name}</strong>? This cannot be undone.</p><p class="muted">${CONSEQUENCES[t.kind]}</p>
<form method="post" action="${t.action}"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="${field}" value="${t.name}">
<label for="confirm-name">Type <code>${t.name}</code> to confirm</label><input type="text" id="confirm-name" name="confirm" required maxlength="64" autocomplete="off">
<p><button type="submit">${`Delete ${t.kind} ${t.name}`}</button> <a href="${t.back}">Cancel</a></p></form>`;
}
