/**
 * The web UI at /ui/ (issue #16), plus search, usage signals and badges: one register call.
 *
 * Server-rendered HTML from template functions that escape every value (html.ts), no script
 * except one same-origin file for the live event log, a CSP without 'unsafe-inline', and every
 * decision made by the access evaluator: in-process for OCI content (RegistryStore reads), and
 * through the other modules' own HTTP APIs (sub-requests carrying the session's key) for trust,
 * bundle history, families and the event log, so the UI never sees more than the API allows.
 */
import type { Context } from 'hono';
import { createApiKey } from '../auth/accounts.js';
import { isPlainHost } from '../auth/access.js';
import { IdentityStore } from '../auth/identity-store.js';
import { safeEqual } from '../auth/secrets.js';
import type { KeyScope } from '../auth/permissions.js';
import { registerBadges } from '../badges/index.js';
import { isValidName } from '../core/names.js';
import { AppError } from '../errors/catalogue.js';
import { readSmallBlob } from '../governance/content.js';
import type { ModuleDeps } from '../governance/module.js';
import { readBodyCapped } from '../http/body.js';
import type { AppEnv } from '../http/env.js';
import { registerSearch, type SearchModule } from '../search/index.js';
import { registerAdminPages } from './admin-routes.js';
import { html } from './html.js';
import { EVENTS_SCRIPT, page, SECURITY_HEADERS, STYLESHEET, type PageContext } from './layout.js';
import { bundlesPage, eventsPage, familiesPage, keysPage, type ApiAnswer } from './pages-admin.js';
import { repoHref, repositoryPage, searchPage, type ReferrerTree } from './pages-browse.js';
import { SessionStore, type Session } from './session.js';
import { UiStore } from './store.js';

const FORM_MAX_BYTES = 16 * 1024;
/** Referrers per page, and how many of each one's own referrers are shown beneath it. */
const REFERRERS_PER_PAGE = 25;
const CHILD_REFERRERS = 5;
const TAGS_PER_PAGE = 50;
const CONFIG_MAX_BYTES = 64 * 1024;

type C = Context<AppEnv>;

export function registerWebUi(deps: ModuleDeps): SearchModule {
  const { app, access, store } = deps;
  const search = registerSearch(deps);
  const ui = new UiStore(deps.db);
  const authEnabled = deps.config.auth === 'token';
  const identities = authEnabled ? new IdentityStore(deps.db) : null;
  const sessions = identities ? new SessionStore(deps.db, identities) : null;
  const sessionOf = new WeakMap<Request, Session>();

  // The session cookie stands in for credentials on UI pages and badges only (SameSite=Strict:
  // never sent cross-site); an Authorization header, when present, wins.
  const useSession = async (c: C, next: () => Promise<void>) => {
    if (sessions && !c.req.header('authorization')) {
      const s = sessions.lookup(c);
      if (s) {
        sessionOf.set(c.req.raw, s);
        c.set('caller', s.caller);
        c.set('actor', s.caller.actor);
      }
    }
    await next();
  };
  app.use('/ui/*', useSession);
  app.use('/badges/*', useSession);
  registerBadges(deps, search);

  const ctxOf = (c: C): PageContext => {
    const s = sessionOf.get(c.req.raw);
    return { user: s?.user ?? null, csrf: s?.csrf ?? null, authEnabled };
  };

  /**
   * The env of an in-process sub-request, shaped as the middleware reads Node's request: the
   * client's address (login budget, logs) and the sub-request's headers (lower-case names).
   */
  const subEnv = (c: C, headers: Record<string, string>) => ({ incoming: { socket: { remoteAddress: c.get('clientAddress') }, headers } }) as never;

  /** A GET to this app's own API as the signed-in user (or anonymous). */
  const api = async (c: C, path: string, init: { method?: string; json?: unknown } = {}): Promise<ApiAnswer> => {
    const s = sessionOf.get(c.req.raw);
    const headers: Record<string, string> = {};
    if (s) headers.authorization = `Basic ${Buffer.from(`${s.user}:${s.token}`).toString('base64')}`;
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    const reqInit = { method: init.method ?? 'GET', headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) };
    const res = await app.request(path, reqInit, subEnv(c, headers));
    let body: Record<string, unknown> = {};
    try {
      body = (await res.json()) as Record<string, unknown>;
    } catch {
      /* not JSON: the status says enough */
    }
    return { status: res.status, body };
  };

  /** UI errors are pages, not JSON; a missing login leads to the sign-in form. */
  const guarded = (fn: (c: C) => Promise<Response> | Response) => async (c: C) => {
    try {
      return await fn(c);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      if (err.code === 'UNAUTHORIZED' && authEnabled && !sessionOf.get(c.req.raw)) return c.redirect('/ui/login', 303);
      return page(c, ctxOf(c), 'Error', html`<p class="bad" role="alert">${err.message}</p>`, err.status);
    }
  };

  /** A page of referrers (by digest, after `rlast`), each with its first few referrers. */
  const referrerTree = (repoId: number, subject: string, rlast: string): ReferrerTree => {
    const after = /^[a-z0-9]+:[a-f0-9]{32,128}$/.test(rlast) ? rlast : '';
    const rows = store.referrers(repoId, subject, REFERRERS_PER_PAGE + 1, after || undefined);
    const page = rows.slice(0, REFERRERS_PER_PAGE);
    return {
      total: ui.referrerCount(repoId, subject),
      last: after,
      nextLast: rows.length > REFERRERS_PER_PAGE ? page[page.length - 1]!.digest : null,
      items: page.map((row) => {
        const children = store.referrers(repoId, row.digest, CHILD_REFERRERS + 1);
        return { row, children: children.slice(0, CHILD_REFERRERS), childCount: children.length > CHILD_REFERRERS ? ui.referrerCount(repoId, row.digest) : children.length };
      }),
    };
  };

  const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2b5797"/><path d="M4 4h8v8H4z" fill="#fff"/></svg>';
  const notFound = (c: C) => page(c, ctxOf(c), 'Not found', html`<p>No such repository, or you may not see it.</p>`, 404);

  /** Form posts: same origin (when the browser says), and the session's CSRF token. */
  const readForm = async (c: C, needsCsrf: boolean): Promise<URLSearchParams | null> => {
    const origin = c.req.header('origin');
    const host = c.req.header('host');
    if (origin !== undefined && (origin === 'null' || !host || new URL(origin).host !== host)) return null;
    const bytes = await readBodyCapped(c, FORM_MAX_BYTES);
    if (bytes === null) return null;
    const form = new URLSearchParams(bytes.toString('utf8'));
    if (needsCsrf && authEnabled) {
      const s = sessionOf.get(c.req.raw);
      if (!s || !safeEqual(form.get('csrf') ?? '', s.csrf)) return null;
    }
    return form;
  };
  const refused = (c: C) => page(c, ctxOf(c), 'Refused', html`<p class="bad" role="alert">The form could not be verified (expired session or cross-site request). Reload the page and try again.</p>`, 403);

  app.get('/ui', (c) => c.redirect('/ui/', 301));
  app.get('/ui/static/app.css', (c) => c.body(STYLESHEET, 200, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'max-age=300', 'X-Content-Type-Options': 'nosniff' }));
  // Browsers ask for an icon on every page; without one each page logs a 404.
  app.get('/ui/static/icon.svg', (c) => c.body(ICON, 200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'max-age=86400', 'X-Content-Type-Options': 'nosniff' }));
  app.get('/ui/static/events.js', (c) => c.body(EVENTS_SCRIPT, 200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'max-age=300', 'X-Content-Type-Options': 'nosniff' }));

  const loginForm = (c: C, error: string | null, status = 200) =>
    page(
      c,
      ctxOf(c),
      'Sign in',
      html`${error ? html`<p class="bad" role="alert">${error}</p>` : ''}<form method="post" action="/ui/login"><label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required><p><button type="submit">Sign in</button></p></form>`,
      status,
    );
  app.get('/ui/login', (c) => (authEnabled ? loginForm(c, null) : c.redirect('/ui/', 303)));
  app.post(
    '/ui/login',
    guarded(async (c) => {
      if (!sessions) return c.redirect('/ui/', 303);
      const form = await readForm(c, false);
      if (!form) return refused(c);
      const user = form.get('username') ?? '';
      const password = form.get('password') ?? '';
      if (!user || !password || user.includes(':')) return loginForm(c, 'Enter your user name and password.', 400);
      const whoHeaders = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
      const who = await app.request('/api/v1/whoami', { headers: whoHeaders }, subEnv(c, whoHeaders));
      if (who.status === 429) return loginForm(c, 'Too many failed sign-ins from this address; wait a minute.', 429);
      const body = who.status === 200 ? ((await who.json()) as { name?: string; key?: unknown }) : null;
      if (!body?.name) return loginForm(c, 'Wrong user name or password.', 401);
      if (body.key) return loginForm(c, 'Sign in with your password, not an API key.', 401);
      const cookie = sessions.create(c, body.name);
      if (!cookie) return loginForm(c, 'Wrong user name or password.', 401);
      return c.body(null, 303, { Location: '/ui/', 'Set-Cookie': cookie, ...SECURITY_HEADERS });
    }),
  );
  app.post('/ui/logout', async (c) => {
    const form = await readForm(c, true);
    if (!form) return refused(c);
    const s = sessionOf.get(c.req.raw);
    if (s && sessions) sessions.end(s);
    return c.body(null, 303, { Location: '/ui/', ...(sessions ? { 'Set-Cookie': sessions.clearCookie(c) } : {}) });
  });

  app.get(
    '/ui/',
    guarded((c) => {
      const params = new URL(c.req.url).searchParams;
      let result;
      try {
        result = search.searchAs(c, params);
      } catch (err) {
        if (!(err instanceof AppError) || err.status !== 400) throw err;
        result = { error: err.message };
      }
      return page(c, ctxOf(c), 'Search', searchPage(params, result), 'error' in result ? 400 : 200);
    }),
  );

  app.get(
    '/ui/r/*',
    guarded(async (c) => {
      let repository: string;
      try {
        repository = decodeURIComponent(c.req.path.slice('/ui/r/'.length));
      } catch {
        return notFound(c);
      }
      if (!isValidName(repository) || !access.can(c, { kind: 'repository', repository, action: 'pull' })) return notFound(c);
      const repoId = store.repositoryId(repository);
      if (repoId === undefined) return notFound(c);
      const last = c.req.query('last') ?? '';
      const tags = ui.tagPage(repoId, last, TAGS_PER_PAGE + 1);
      const nextLast = tags.length > TAGS_PER_PAGE ? tags[TAGS_PER_PAGE - 1]!.name : null;
      const digest = c.req.query('digest');
      let selectedTag = c.req.query('tag') ?? null;
      if (!digest && !selectedTag) selectedTag = store.tagDigest(repoId, 'latest') ? 'latest' : (tags[0]?.name ?? null);
      const selected = (digest ? store.manifestByDigest(repository, digest) : selectedTag ? store.manifestByTag(repository, selectedTag) : undefined) ?? null;
      let config: string | null = null;
      if (selected) {
        try {
          const doc = JSON.parse(selected.payload.toString('utf8')) as { config?: { digest?: unknown; size?: unknown } };
          if (typeof doc.config?.digest === 'string' && typeof doc.config.size === 'number' && doc.config.size <= CONFIG_MAX_BYTES && store.repositoryBlobSize(repository, doc.config.digest) !== undefined) {
            const raw = (await readSmallBlob(deps.driver, doc.config.digest, CONFIG_MAX_BYTES)).toString('utf8');
            try {
              config = JSON.stringify(JSON.parse(raw), null, 2);
            } catch {
              config = raw;
            }
          }
        } catch {
          config = null; // not JSON, or the blob is unreadable: the page shows the manifest alone
        }
      }
      const host = c.req.header('host') ?? 'localhost';
      const s = sessionOf.get(c.req.raw);
      const user = s?.user ?? (authEnabled ? null : 'anonymous');
      return page(
        c,
        ctxOf(c),
        repository,
        repositoryPage({
          repository,
          host: isPlainHost(host) ? host : 'localhost',
          tags: tags.slice(0, TAGS_PER_PAGE),
          tagCount: ui.tagCount(repoId),
          last,
          nextLast,
          selected,
          selectedTag: digest ? null : selectedTag,
          config,
          referrers: selected ? referrerTree(repoId, selected.digest, c.req.query('rlast') ?? '') : { total: 0, last: '', nextLast: null, items: [] },
          trust: selected ? await api(c, `/api/v1/trust?repository=${encodeURIComponent(repository)}&digest=${encodeURIComponent(selected.digest)}`) : null,
          downloads: search.downloads.count(repository),
          tagDownloads: search.downloads.countTags(repository, tags.slice(0, TAGS_PER_PAGE).map((t) => t.name)),
          stars: search.stars.count(repository),
          starred: user !== null && search.stars.starredBy(repository, user),
          csrf: s?.csrf ?? null,
          canStar: user !== null,
        }),
      );
    }),
  );

  app.post(
    '/ui/star',
    guarded(async (c) => {
      const form = await readForm(c, true);
      if (!form) return refused(c);
      const repository = form.get('repository') ?? '';
      if (!isValidName(repository)) return notFound(c);
      access.require(c, { kind: 'account.read' });
      if (!access.can(c, { kind: 'repository', repository, action: 'pull' }) || store.repositoryId(repository) === undefined) return notFound(c);
      const caller = c.get('caller');
      search.stars.set(repository, caller.principal?.name ?? caller.actor, form.get('star') === 'true', c.get('actor'));
      return c.redirect(repoHref(repository), 303);
    }),
  );

  app.get(
    '/ui/bundles',
    guarded(async (c) => {
      const id = c.req.query('id');
      const version = c.req.query('version');
      const detail = id && version ? await api(c, `/api/v1/bundles/${encodeURIComponent(id)}/${encodeURIComponent(version)}`) : null;
      const before = Number(c.req.query('before') ?? Number.MAX_SAFE_INTEGER);
      const visible = (repository: string) => access.can(c, { kind: 'repository', repository, action: 'pull' });
      const rows = ui.bundles(Number.isSafeInteger(before) ? before : Number.MAX_SAFE_INTEGER, 51);
      const more = rows.length > 50 ? rows[49]!.id : null;
      return page(c, ctxOf(c), 'Bundles', bundlesPage(rows.slice(0, 50).filter((b) => visible(b.repository)), ui.activations(500).filter((a) => visible(a.repository)), detail, more));
    }),
  );

  app.get(
    '/ui/families',
    guarded(async (c) => {
      const family = c.req.query('family') ?? null;
      const list = await api(c, '/api/v1/families');
      const entries = family && /^[a-z0-9-]{1,64}$/.test(family) ? await api(c, `/api/v1/families/${family}/entries?n=500`) : null;
      return page(c, ctxOf(c), 'Families', familiesPage(list, family, entries));
    }),
  );

  const afterParam = (c: C): number => {
    const n = Number(c.req.query('after') ?? '');
    return Number.isSafeInteger(n) && n >= 0 ? n : -1;
  };
  app.get(
    '/ui/events',
    guarded(async (c) => {
      let after = afterParam(c);
      if (after < 0) {
        // Newest page first: start 50 before the head.
        const head = deps.db.$client.prepare('SELECT max(seq) FROM events').pluck().get() as number | null;
        after = Math.max(0, (head ?? 0) - 50);
      }
      return page(c, ctxOf(c), 'Event log', eventsPage(await api(c, `/api/v1/events?after=${after}&limit=50`), after), 200, '/ui/static/events.js');
    }),
  );
  app.get('/ui/events/stream', async (c) => {
    const s = sessionOf.get(c.req.raw);
    const headers: Record<string, string> = {};
    if (s) headers.authorization = `Basic ${Buffer.from(`${s.user}:${s.token}`).toString('base64')}`;
    const after = Math.max(0, afterParam(c));
    return app.request(`/api/v1/events/stream?after=${after}`, { headers, signal: c.req.raw.signal }, subEnv(c, headers));
  });

  const keys = (c: C, created: { id: string; token: string } | null, error: string | null, status = 200) => {
    const s = sessionOf.get(c.req.raw)!;
    const list = identities!.keysOf(s.userId).map((k) => ({ ...k, scopes: (JSON.parse(k.scopes) as string[]).join(', '), repositories: k.repositories ? (JSON.parse(k.repositories) as string[]).join(', ') : null }));
    return page(c, ctxOf(c), 'API keys', keysPage(list, s.csrf, created, error), status);
  };
  const needsSession = (c: C): Response | null => {
    if (!authEnabled) return page(c, ctxOf(c), 'API keys', html`<p>Authentication is disabled (auth: none): there are no keys.</p>`);
    return sessionOf.get(c.req.raw) ? null : c.redirect('/ui/login', 303);
  };
  app.get('/ui/keys', guarded((c) => needsSession(c) ?? keys(c, null, null)));
  app.post(
    '/ui/keys',
    guarded(async (c) => {
      const early = needsSession(c);
      if (early) return early;
      const form = await readForm(c, true);
      if (!form) return refused(c);
      const s = sessionOf.get(c.req.raw)!;
      const name = (form.get('name') ?? '').trim();
      const scopes = form.getAll('scope').filter((x): x is KeyScope => x === 'read' || x === 'publish' || x === 'admin');
      const daysRaw = form.get('days') ?? '';
      const days = daysRaw === '' ? null : Number(daysRaw);
      if (!name || name.length > 100 || scopes.length === 0 || (days !== null && (!Number.isInteger(days) || days < 1 || days > 3650))) {
        return keys(c, null, 'A key needs a name (up to 100 characters), at least one scope, and an expiry of 1 to 3650 days or none.', 400);
      }
      const expiresAt = days === null ? null : Date.now() + days * 86_400_000;
      access.require(c, { kind: 'key.create', scopes, repositories: null, expiresAt });
      const created = createApiKey(identities!, s.userId, { name, scopes, expiresAt }, c.get('actor'));
      return keys(c, { id: created.id, token: created.token }, null, 201);
    }),
  );
  app.post(
    '/ui/keys/revoke',
    guarded(async (c) => {
      const early = needsSession(c);
      if (early) return early;
      const form = await readForm(c, true);
      if (!form) return refused(c);
      const key = identities!.keyById(form.get('id') ?? '');
      if (!key) return keys(c, null, 'No such key.', 404);
      access.require(c, { kind: 'key.revoke', ownerId: key.userId });
      identities!.revokeKey(key.id, c.get('actor'));
      return c.redirect('/ui/keys', 303);
    }),
  );

  registerAdminPages({
    app,
    access,
    ui,
    identities,
    csrfOf: (c) => sessionOf.get(c.req.raw)?.csrf ?? null,
    page: (c, title, body, status) => page(c, ctxOf(c), title, body, status),
    guarded,
    readForm: (c) => readForm(c, true),
    refused,
  });

  return search;
}
