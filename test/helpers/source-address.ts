/**
 * HTTP requests from a chosen loopback source address (127.0.0.2, 127.0.0.3, …): Linux routes
 * all of 127/8 to lo, so a test can be "many clients" whose per-address budgets are separate.
 */
import { request } from 'node:http';

export interface SimpleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A fresh source address for every call within this process: 127.0.<n>.<m>. */
let next = 2;
export function freshLoopbackAddress(): string {
  const n = next++;
  return `127.0.${Math.floor(n / 250) + 1}.${(n % 250) + 2}`;
}

export function requestFrom(localAddress: string, url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<SimpleResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: init.method ?? 'GET', headers: init.headers, localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
