/**
 * Request and response bodies as Node streams. Under @hono/node-server we read the
 * IncomingMessage and write the ServerResponse directly: web-stream adapters cost throughput on
 * multi-GiB blobs. Under app.request (no Node bindings) the web-standard objects are used.
 */
import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { BlobSource } from '../data/driver.js';
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

/** Sends a blob's bytes with the given status and headers, straight into Node's response. */
export async function sendBlob(c: Context<AppEnv>, status: number, headers: Record<string, string>, body: BlobSource): Promise<Response> {
  const outgoing = c.env?.outgoing;
  if (!outgoing) return new Response(Readable.toWeb(Readable.from(body)) as ReadableStream, { status, headers });
  outgoing.writeHead(status, headers);
  // A client that disconnects mid-download is normal: the copy stops and the response ends.
  await body.pipeTo(outgoing).catch(() => outgoing.destroy());
  return RESPONSE_ALREADY_SENT;
}

/** A small in-memory body (manifests); HEAD gets the same headers and no body. */
export function bytesResponse(c: Context<AppEnv>, status: number, headers: Record<string, string>, payload: Buffer): Response {
  const body = c.req.method === 'HEAD' ? null : new Uint8Array(payload.buffer as ArrayBuffer, payload.byteOffset, payload.byteLength);
  return new Response(body, { status, headers });
}
