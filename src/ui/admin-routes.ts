/**
 * /ui/admin/users and /ui/admin/orgs. They act in-process with the session's caller and ask the
 * same capabilities as the management API (user.manage, org.create, org.read, namespace.manage,
 * registry.admin to delete an organisation) through the one evaluator, then call the same
 * IdentityStore/accounts/account-deletion functions (which write the events). Not through API
 * sub-requests as the session's key: decide() refuses user management to any API key by
 * design, and the session is a password login in effect.
 * Lists are name-ordered pages of the principals table (the management API has no list yet).
 */
import type { Context } from 'hono';
import type { AccessControl } from '../auth/access.js';
import type { Hono } from 'hono';
import type { AppEnv } from '../http/env.js';
import { html, type Html } from './html.js';
import { createUserAccount, validatePrincipalName } from '../auth/accounts.js';
import type { IdentityStore } from '../auth/identity-store.js';
import type { Role } from '../auth/permissions.js';
import { AppError, ociError } from '../errors/catalogue.js';
import { deleteConfirmPage, orgsPage, usersPage, type DeleteTarget, type Notice, type OrgRow, type UserRow } from './pages-identity.js';
import { deleteOrg, deleteUser } from '../auth/account-deletion.js';
import type { UiStore } from './store.js';

type C = Context<AppEnv>;
const PER_PAGE = 50;
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MIN_PASSWORD = 12;

export interface AdminKit {
  app: Hono<AppEnv>;
  access: AccessControl;
  ui: UiStore;
  identities: IdentityStore | null;
  csrfOf: (c: C) => string | null;
  page: (c: C, title: string, body: Html, status?: number) => Response;
  guarded: (fn: (c: C) => Promise<Response> | Response) => (c: C) => Promise<Response>;
  readForm: (c: C) => Promise<URLSearchParams | null>;
  refused: (c: C) => Response;
}

/** A refused or invalid change becomes a notice on the page, with the error's status. */
async function attempt(fn: () => Promise<string> | string): Promise<{ notice: Notice; status: number }> {
  try {
    return { notice: { ok: true, text: await fn() }, status: 200 };
  } catch (err) {
    if (!(err instanceof AppError) || err.code === 'UNAUTHORIZED') throw err;
    return { notice: { ok: false, text: err.message }, status: err.status };
  }
}

export function registerAdminPages(k: AdminKit): void {
  const { app, access, ui } = k;
  const lastOf = (c: C) => {
    const last = c.req.query('last') ?? '';
    return NAME.test(last) ? last : '';
  };
  const actor = (c: C) => c.get('actor');
  /** Auth disabled: no identities. No session: sign in. Else null and the handler proceeds. */
  const early = (c: C, title: string): Response | null => {
    if (!k.identities) return k.page(c, title, html`<p>Authentication is disabled (auth: none): there are no users or organisations.</p>`);
    return k.csrfOf(c) ? null : c.redirect('/ui/login', 303);
  };
  const form = async (c: C, title: string): Promise<Response | URLSearchParams> => {
    const stop = early(c, title);
    if (stop) return stop;
    return (await k.readForm(c)) ?? k.refused(c);
  };

  const renderUsers = (c: C, n: Notice | null, status = 200) => {
    access.require(c, { kind: 'user.manage' });
    const last = lastOf(c);
    const rows: UserRow[] = ui.principals('user', last, PER_PAGE + 1);
    const shown = rows.slice(0, PER_PAGE);
    return k.page(c, 'Users', usersPage(shown, k.csrfOf(c)!, last, rows.length > PER_PAGE ? shown[shown.length - 1]!.name : null, n), status);
  };
  app.get('/ui/admin/users', k.guarded((c) => early(c, 'Users') ?? renderUsers(c, null)));
  app.post(
    '/ui/admin/users',
    k.guarded(async (c) => {
      const f = await form(c, 'Users');
      if (f instanceof Response) return f;
      const r = await attempt(async () => {
        access.require(c, { kind: 'user.manage' });
        const name = f.get('name') ?? '';
        const password = f.get('password') ?? '';
        if (password.length < MIN_PASSWORD) throw ociError('UNSUPPORTED', `password must have at least ${MIN_PASSWORD} characters`, { status: 400 });
        await createUserAccount(k.identities!, name, password, f.get('admin') === 'true', actor(c), true);
        return `User ${name} created.`;
      });
      return renderUsers(c, r.notice, r.notice.ok ? 201 : r.status);
    }),
  );
  app.post(
    '/ui/admin/users/disabled',
    k.guarded(async (c) => {
      const f = await form(c, 'Users');
      if (f instanceof Response) return f;
      const r = await attempt(() => {
        access.require(c, { kind: 'user.manage' });
        const user = k.identities!.principalByName(f.get('name') ?? '');
        if (!user || user.kind !== 'user') throw ociError('NOT_FOUND', 'no such user', { status: 404 });
        const disabled = f.get('disabled') === 'true';
        if (disabled && user.name === c.get('caller').principal?.name) throw ociError('CONFLICT', 'administrators cannot disable themselves', { status: 409 });
        k.identities!.setDisabled(user, disabled, actor(c));
        return '';
      });
      return r.notice.ok ? c.redirect('/ui/admin/users', 303) : renderUsers(c, r.notice, r.status);
    }),
  );

  const renderOrgs = (c: C, selected: string | null, n: Notice | null, status = 200) => {
    const last = lastOf(c);
    // A page of the organisations the caller may read (org.read: administrators all of them,
    // others those they belong to), chosen in SQL so pages are full; the capability still
    // decides each row shown.
    const only = access.can(c, { kind: 'registry.admin' }) ? undefined : [...(c.get('caller').principal?.roles.keys() ?? [])];
    const scanned = ui.principals('org', last, PER_PAGE + 1, only);
    const more = scanned.length > PER_PAGE;
    const page = scanned.slice(0, PER_PAGE);
    const rows: OrgRow[] = page.filter((o) => access.can(c, { kind: 'org.read', org: o.name }));
    let members: { status: number; body: Record<string, unknown> } | null = null;
    if (selected) {
      const org = k.identities!.principalByName(selected);
      // A missing organisation and one the caller may not read look alike.
      members =
        org?.kind === 'org' && access.can(c, { kind: 'org.read', org: org.name })
          ? { status: 200, body: { members: k.identities!.members(org.id) } }
          : { status: 404, body: { errors: [{ message: 'No such organisation, or you are not a member.' }] } };
    }
    const canDelete = access.can(c, { kind: 'registry.admin' });
    return k.page(c, 'Organisations', orgsPage(rows, k.csrfOf(c)!, last, more ? page[page.length - 1]!.name : null, selected, members, n, canDelete), status);
  };
  app.get(
    '/ui/admin/orgs',
    k.guarded((c) => {
      const org = c.req.query('org') ?? '';
      return early(c, 'Organisations') ?? renderOrgs(c, NAME.test(org) ? org : null, null);
    }),
  );
  app.post(
    '/ui/admin/orgs',
    k.guarded(async (c) => {
      const f = await form(c, 'Organisations');
      if (f instanceof Response) return f;
      const name = f.get('name') ?? '';
      const r = await attempt(() => {
        access.require(c, { kind: 'org.create' });
        validatePrincipalName(k.identities!, name, access.can(c, { kind: 'registry.admin' }));
        k.identities!.createOrg(name, c.get('caller').principal!.id, actor(c));
        return `Organisation ${name} created.`;
      });
      return renderOrgs(c, r.notice.ok ? name : null, r.notice, r.notice.ok ? 201 : r.status);
    }),
  );
  app.post(
    '/ui/admin/orgs/member',
    k.guarded(async (c) => {
      const f = await form(c, 'Organisations');
      if (f instanceof Response) return f;
      const orgName = f.get('org') ?? '';
      const role = f.get('role') ?? '';
      const r = await attempt(() => {
        const org = k.identities!.principalByName(orgName);
        if (!org || org.kind !== 'org') throw ociError('NOT_FOUND', 'no such organisation', { status: 404 });
        access.require(c, { kind: 'namespace.manage', namespace: org.name });
        const user = k.identities!.principalByName(f.get('user') ?? '');
        if (!user || user.kind !== 'user') throw ociError('NOT_FOUND', 'no such user', { status: 404 });
        if (role !== '' && role !== 'owner' && role !== 'maintainer' && role !== 'reader') throw ociError('UNSUPPORTED', 'role must be owner, maintainer or reader', { status: 400 });
        k.identities!.setMember(org, user, role === '' ? null : (role as Role), actor(c));
        return '';
      });
      if (r.notice.ok) return c.redirect(`/ui/admin/orgs?org=${encodeURIComponent(orgName)}`, 303);
      return renderOrgs(c, NAME.test(orgName) ? orgName : null, r.notice, r.status);
    }),
  );

  // Deletion: a confirmation page (GET) whose form repeats the name, then the POST. The same
  // capabilities as DELETE /api/v1/users|orgs (user.manage; registry.admin) are asked before any
  // lookup; account-deletion.ts refuses (409, saying what to do first) and writes the event.
  const confirmPage = (c: C, t: DeleteTarget, n: Notice | null, status = 200) => k.page(c, `Delete ${t.kind} ${t.name}`, deleteConfirmPage(t, k.csrfOf(c)!, n), status);
  const userTarget = (name: string): DeleteTarget => ({ kind: 'user', name, action: '/ui/admin/users/delete', back: '/ui/admin/users' });
  const orgTarget = (name: string): DeleteTarget => ({ kind: 'organisation', name, action: '/ui/admin/orgs/delete', back: `/ui/admin/orgs?org=${encodeURIComponent(name)}` });
  const named = (name: string, kind: 'user' | 'org') => {
    const row = NAME.test(name) ? k.identities!.principalByName(name) : undefined;
    if (!row || row.kind !== kind) throw ociError('NOT_FOUND', kind === 'user' ? 'no such user' : 'no such organisation', { status: 404 });
    return row;
  };
  const confirmed = (f: URLSearchParams, name: string) => {
    if ((f.get('confirm') ?? '').trim() !== name) throw ociError('UNSUPPORTED', `type the name '${name}' to confirm the deletion`, { status: 400 });
  };

  app.get(
    '/ui/admin/users/delete',
    k.guarded((c) => {
      const stop = early(c, 'Delete user');
      if (stop) return stop;
      access.require(c, { kind: 'user.manage' });
      return confirmPage(c, userTarget(named(c.req.query('name') ?? '', 'user').name), null);
    }),
  );
  app.post(
    '/ui/admin/users/delete',
    k.guarded(async (c) => {
      const f = await form(c, 'Delete user');
      if (f instanceof Response) return f;
      access.require(c, { kind: 'user.manage' });
      const user = named(f.get('name') ?? '', 'user');
      const r = await attempt(() => {
        confirmed(f, user.name);
        const d = deleteUser(k.identities!, user, actor(c), c.get('caller').principal?.id ?? null);
        return `User ${d.user} deleted (${d.keysRevoked} API keys revoked, ${d.memberships} memberships removed).`;
      });
      return r.notice.ok ? renderUsers(c, r.notice) : confirmPage(c, userTarget(user.name), r.notice, r.status);
    }),
  );
  app.get(
    '/ui/admin/orgs/delete',
    k.guarded((c) => {
      const stop = early(c, 'Delete organisation');
      if (stop) return stop;
      access.require(c, { kind: 'registry.admin' });
      return confirmPage(c, orgTarget(named(c.req.query('org') ?? '', 'org').name), null);
    }),
  );
  app.post(
    '/ui/admin/orgs/delete',
    k.guarded(async (c) => {
      const f = await form(c, 'Delete organisation');
      if (f instanceof Response) return f;
      access.require(c, { kind: 'registry.admin' });
      const org = named(f.get('org') ?? '', 'org');
      const r = await attempt(() => {
        confirmed(f, org.name);
        const d = deleteOrg(k.identities!, org, actor(c));
        return `Organisation ${d.org} deleted (${d.members} memberships removed).`;
      });
      return r.notice.ok ? renderOrgs(c, null, r.notice) : confirmPage(c, orgTarget(org.name), r.notice, r.status);
    }),
  );
}
