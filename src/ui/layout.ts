/** The page frame, the stylesheet and the security headers every UI response carries. */
import type { Context } from 'hono';
import type { AppEnv } from '../http/env.js';
import { html, type Html } from './html.js';

/** No inline script or style anywhere: the CSP allows only this origin's files. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts, which the CSRF check must refuse.
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

export interface PageContext {
  user: string | null;
  csrf: string | null;
  authEnabled: boolean;
}

export function page(c: Context<AppEnv>, ctx: PageContext, title: string, body: Html, status = 200, extraScript?: string): Response {
  const nav = html`<nav aria-label="Main"><a href="/ui/" class="brand">artifact-store</a>
<a href="/ui/">Search</a><a href="/ui/bundles">Bundles</a><a href="/ui/families">Families</a><a href="/ui/events">Events</a><a href="/ui/keys">Keys</a><a href="/ui/admin/users">Users</a><a href="/ui/admin/orgs">Organisations</a>
<span class="who">${
    ctx.user
      ? html`${ctx.user} <form method="post" action="/ui/logout" class="inline"><input type="hidden" name="csrf" value="${ctx.csrf ?? ''}"><button type="submit">Sign out</button></form>`
      : ctx.authEnabled
        ? html`<a href="/ui/login">Sign in</a>`
        : html`auth disabled`
  }</span></nav>`;
  const doc = html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · artifact-store</title><link rel="stylesheet" href="/ui/static/app.css"><link rel="icon" href="/ui/static/icon.svg" type="image/svg+xml">${extraScript ? html`<script src="${extraScript}" defer></script>` : ''}</head>
<body>${nav}<main id="main"><h1>${title}</h1>${body}</main></body></html>`;
  return c.html(doc.value, status as 200, SECURITY_HEADERS);
}

export const STYLESHEET = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#5b636d;--line:#d0d7de;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--link:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#30363d;--link:#4493f8}}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
nav{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line)}
nav .brand{font-weight:700}nav .who{margin-left:auto}a{color:var(--link)}a:focus,button:focus,input:focus,select:focus{outline:2px solid var(--link);outline-offset:2px}
main{max-width:72rem;margin:0 auto;padding:1rem}h1{font-size:1.4rem;word-break:break-all}h2{font-size:1.1rem;margin-top:1.6rem}
.layout{display:grid;grid-template-columns:14rem 1fr;gap:1.5rem}@media (max-width:700px){.layout{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%;display:block;overflow-x:auto}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
code,pre,.digest{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}pre{overflow:auto;max-height:30rem;padding:.6rem;border:1px solid var(--line)}
.muted{color:var(--muted)}.ok{color:var(--ok);font-weight:600}.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn);font-weight:600}
.facets ul{list-style:none;padding:0;margin:0 0 1rem}.facets li{margin:.15rem 0}.hit{padding:.6rem 0;border-bottom:1px solid var(--line)}
.pager{display:flex;gap:1rem;margin:1rem 0}label{display:block;margin:.4rem 0 .1rem}input[type=text],input[type=password],input[type=search],input[type=number]{width:100%;max-width:28rem;padding:.35rem}
.inline{display:inline}button{padding:.3rem .8rem;cursor:pointer}.secret{padding:.6rem;border:2px solid var(--warn)}.pull{width:100%;max-width:40rem}
.tree{padding-left:1.2rem}.tree li{margin:.25rem 0}.tree .kind{font-weight:600}
.sbs{display:grid;grid-template-columns:1fr 1fr;gap:1rem}@media (max-width:700px){.sbs{grid-template-columns:1fr}}
`;

/** Follows the event log live (served as a file: the CSP forbids inline scripts). Builds rows with textContent only. */
export const EVENTS_SCRIPT = `
(function(){var body=document.getElementById('events-body');if(!body||!window.EventSource)return;
var after=body.getAttribute('data-after')||'0';var src=new EventSource('/ui/events/stream?after='+encodeURIComponent(after));
src.addEventListener('event',function(m){var e;try{e=JSON.parse(m.data)}catch(x){return}var tr=document.createElement('tr');
[e.seq,e.time,e.actor,e.action,e.repository||'',e.tag||'',e.digest||''].forEach(function(v){var td=document.createElement('td');td.textContent=String(v);tr.appendChild(td)});
body.insertBefore(tr,body.firstChild);var s=document.getElementById('live');if(s)s.textContent='live: following new events';});
src.onerror=function(){var s=document.getElementById('live');if(s)s.textContent='live: reconnecting';};})();
`;
