/**
 * Request and response bodies as Node streams. Under @hono/node-server we read the
 * IncomingMessage and write the ServerResponse directly: web-stream adapters cost throughput on
 * multi-GiB blobs. Under app.request (no Node bindings) the web-standard objects are used.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { AppEnv } from './env.js';

export function requestBody(c: Context<AppEnv>): Readable {
  const incoming = c.env?.incoming;
  if (incoming) return incoming as unknown as Readable;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>) : Readable.from([]);
}

/** Reads a small body (manifests) with a hard cap; returns null when it exceeds the cap. */
export async function readBodyCapped(c: Context<AppEnv>, max: number): Promise<Buffer | null> {
  const declared = Number(c.req.header('content-length'));
  if (Number.isFinite(declared) && declared > max) return null;
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of requestBody(c) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Sends a streamed body with the given status and headers. */
export async function sendStream(c: Context<AppEnv>, status: number, headers: Record<string, string>, body: Readable): Promise<Response> {
  const outgoing = c.env?.outgoing;
  if (!outgoing) return new Response(Readable.toWeb(body) as ReadableStream, { status, headers });
  outgoing.writeHead(status, headers);
  // A client that disconnects mid-download is normal; the pipeline error just ends the stream.
  await pipeline(body, outgoing).catch(() => undefined);
  return RESPONSE_ALREADY_SENT;
}

/** A small in-memory body (manifests); HEAD gets the same headers and no body. */
export function bytesResponse(c: Context<AppEnv>, status: number, headers: Record<string, string>, payload: Buffer): Response {
  const body = c.req.method === 'HEAD' ? null : new Uint8Array(payload.buffer as ArrayBuffer, payload.byteOffset, payload.byteLength);
  return new Response(body, { status, headers });
}
