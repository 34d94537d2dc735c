/** Speaking to the web UI as a browser would: form sign-in, the session cookie, CSRF tokens, form posts. */
import { PASSWORD } from './identities.js';

export const cookieOf = (res: Response): string => (res.headers.get('set-cookie') ?? '').split(';')[0]!;
export const csrfOf = (html: string): string => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

/** `url()` is read at call time: registries start in beforeAll, after the client is made. */
export function uiClient(url: () => string) {
  const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
  return {
    login: (user: string, password = PASSWORD) => fetch(`${url()}/ui/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: user, password }), headers: form }),
    get: (path: string, cookie: string) => fetch(`${url()}${path}`, { headers: { Cookie: cookie }, redirect: 'manual' }),
    post: (path: string, cookie: string, fields: Record<string, string | string[]>) => {
      const body = new URLSearchParams();
      for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
      return fetch(`${url()}${path}`, { method: 'POST', redirect: 'manual', body, headers: { Cookie: cookie, ...form } });
    },
  };
}
