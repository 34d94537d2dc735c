/**
 * The event log over HTTP: a page API and a Server-Sent Events changefeed, both resumable from a
 * sequence number and readable by administrators only (when auth is on).
 *
 *   GET /api/v1/events?after=<seq>&limit=<n>      → { events, next }
 *   GET /api/v1/events/stream?after=<seq>         → text/event-stream, `id:` = seq, resumable
 *                                                   with Last-Event-ID; at-least-once delivery
 *
 * Both end at the durable watermark (events whose WAL sync completed; a few ms behind the head).
 */
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { AccessControl } from '../auth/access.js';
import { ociError } from '../errors/catalogue.js';
import type { AppEnv } from '../http/env.js';
import { errorResponse } from '../http/errors.js';
import type { Db } from '../meta/db.js';
import { listEvents, type EventRow } from '../meta/events.js';
import { writeBatcher } from '../meta/write-batcher.js';
import { parseRedacted } from './replay/redact.js';

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;
const BATCH = 500;

function present(e: EventRow): Record<string, unknown> {
  // Password/key hashes are in the log for rebuilds, never shown (replay/redact.ts).
  return { ...e, before: parseRedacted(e.before), after: parseRedacted(e.after) };
}

function cursor(value: string | undefined): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw ociError('UNSUPPORTED', 'after must be a non-negative integer', { status: 400 });
  return n;
}

export function registerEventRoutes(app: Hono<AppEnv>, deps: { db: Db; access: AccessControl; isLive: () => boolean }): void {
  // Like webhooks and checkpoints, the API shows the log only up to what is on disk: a consumer
  // never sees an event a power loss could erase and then reuse its seq for another.
  const durable = () => writeBatcher(deps.db).durableSeq();
  const guarded = (handler: (c: Context<AppEnv>) => Response | Promise<Response>) => async (c: Context<AppEnv>) => {
    try {
      deps.access.authorizeAdmin(c);
      return await handler(c);
    } catch (err) {
      return errorResponse(c, err);
    }
  };

  app.get(
    '/api/v1/events',
    guarded(async (c) => {
      const after = cursor(c.req.query('after'));
      const limit = Number(c.req.query('limit') ?? 100);
      if (!Number.isSafeInteger(limit) || limit < 1) throw ociError('UNSUPPORTED', 'limit must be a positive integer', { status: 400 });
      const events = listEvents(deps.db, after, Math.min(limit, 1000), await durable()).map(present);
      return c.json({ events, next: events.length > 0 ? (events[events.length - 1]!.seq as number) : after });
    }),
  );

  app.get(
    '/api/v1/events/stream',
    guarded((c) => {
      // A reconnecting EventSource sends the last id it saw; it wins over ?after=.
      let seq = cursor(c.req.header('last-event-id') ?? c.req.query('after'));
      return streamSSE(c, async (stream) => {
        let aborted = false;
        stream.onAbort(() => {
          aborted = true;
        });
        let quietSince = Date.now();
        // Ends when the client goes away or the server shuts down; the client resumes from its last id.
        while (!aborted && deps.isLive()) {
          const batch = listEvents(deps.db, seq, BATCH, await durable());
          for (const e of batch) {
            await stream.writeSSE({ id: String(e.seq), event: 'event', data: JSON.stringify(present(e)) });
            seq = e.seq;
          }
          if (batch.length > 0) quietSince = Date.now();
          else if (Date.now() - quietSince >= HEARTBEAT_MS) {
            await stream.write(': keep-alive\n\n');
            quietSince = Date.now();
          }
          if (batch.length < BATCH) await stream.sleep(POLL_MS);
        }
      });
    }),
  );
}
