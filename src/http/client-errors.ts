/**
 * Requests Node's HTTP parser rejects (bad method token, malformed or oversized headers, a
 * request that never finished its headers) never reach Hono: Node answers them itself with an
 * empty body. Here they get a complete response with the registry's JSON error envelope and the
 * status that says what went wrong, then the connection closes (the stream cannot be re-synced).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

interface ParserError extends Error {
  code?: string;
}

export function clientErrorResponse(err: ParserError): { status: number; code: string; message: string } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'SIZE_INVALID', message: 'request headers are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'UNSUPPORTED', message: 'the request headers did not arrive in time' };
    case 'HPE_INVALID_METHOD':
      return { status: 400, code: 'UNSUPPORTED', message: 'malformed request: invalid method' };
    default:
      // Parser error codes name the defect (HPE_INVALID_HEADER_TOKEN …) and carry no request data.
      return { status: 400, code: 'UNSUPPORTED', message: `malformed request${err.code ? ` (${err.code})` : ''}` };
  }
}

/**
 * Host headers already found valid. Every request is checked and clients send the same few
 * hosts, so parsing one as a URL each time would be wasted work; bounded against a client that
 * sends a new (valid) Host on every request.
 */
const validHosts = new Set<string>();
const VALID_HOSTS_MAX = 1024;

function hostProblem(host: string): boolean {
  if (validHosts.has(host)) return false;
  try {
    const parsed = new URL(`http://${host}/`);
    const bare = host.replace(/:\d+$/, '').toLowerCase();
    if (parsed.hostname !== bare && !(bare.startsWith('[') && parsed.hostname === bare)) return true;
  } catch {
    return true;
  }
  if (validHosts.size >= VALID_HOSTS_MAX) validHosts.clear();
  validHosts.add(host);
  return false;
}

/**
 * Request targets and Host headers that @hono/node-server refuses while building its Request
 * (a backslash in the path, a Host that is no host name, a target that is neither a path nor an
 * absolute URL) would get its bare, empty 400. Checked here first, they get the envelope: under
 * /v2/ as NAME_INVALID (no repository name contains such a thing), elsewhere UNSUPPORTED.
 */
export function malformedTarget(req: IncomingMessage): { code: string; message: string } | undefined {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path.includes('\\')) return path.startsWith('/v2/') ? { code: 'NAME_INVALID', message: 'a repository name has no backslashes' } : { code: 'UNSUPPORTED', message: 'malformed request target' };
  if (!url.startsWith('/') && !/^https?:\/\//i.test(url)) return { code: 'UNSUPPORTED', message: 'malformed request target' };
  const host = req.headers.host;
  if (host !== undefined && hostProblem(host)) return { code: 'UNSUPPORTED', message: 'invalid Host header' };
  return undefined;
}

function answer(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ code, message }] });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Docker-Distribution-API-Version': 'registry/2.0', Connection: 'close' });
  res.end(body);
}

export function answerClientErrors(server: Server, log: Logger): void {
  // A gate in front of the adapter's request listener (installed by serve()).
  const adapters = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const bad = malformedTarget(req);
    if (bad) {
      req.resume();
      answer(res, 400, bad.code, bad.message);
      return;
    }
    for (const listener of adapters) listener.call(server, req, res);
  });

  server.on('clientError', (err: ParserError, socket: Socket) => {
    // A reset or closed socket has nobody to answer; a response already under way on this
    // keep-alive connection must not get raw bytes spliced into it.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const { status, code, message } = clientErrorResponse(err);
    const body = JSON.stringify({ errors: [{ code, message }] });
    log.debug({ status, parserError: err.code, client: socket.remoteAddress }, 'request rejected by the HTTP parser');
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Docker-Distribution-API-Version: registry/2.0\r\n' +
        'Connection: close\r\n\r\n' +
        body,
    );
  });
}
