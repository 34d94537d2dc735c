/** A webhook receiver on loopback for tests: records what it accepted, answers per request. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: Record<string, string | string[] | undefined>;
  raw: string;
  body: { specversion: string; id: string; type: string; source: string; time: string; data: { seq: number; repository: string | null; digest: string | null } };
}

export interface Receiver {
  url: string;
  got: Received[];
  attempts: () => number;
  close(): Promise<void>;
}

/** A receiver whose answer per request is decided by `answer` (status code), perhaps after a while. */
export async function receiver(answer: (n: number) => number | Promise<number>): Promise<Receiver> {
  const got: Received[] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (raw += d));
    req.on('end', () => {
      void Promise.resolve(answer(n++)).then((status) => {
        if (status < 300) got.push({ headers: req.headers, raw, body: JSON.parse(raw) as Received['body'] });
        res.writeHead(status).end();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    got,
    attempts: () => n,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
