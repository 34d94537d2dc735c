/** Hono app environment: the Node bindings (absent under app.request in tests) and per-request variables. */
import type { HttpBindings } from '@hono/node-server';
import type { Logger } from 'pino';
import type { Caller } from '../auth/authenticate.js';

export interface AppEnv {
  Bindings: Partial<HttpBindings>;
  Variables: {
    requestId: string;
    log: Logger;
    /** Who is acting, for the event log. Auth sets it; until then every caller is anonymous. */
    actor: string;
    /** Set by the auth module on every request. */
    caller: Caller;
    clientAddress: string;
    /** The /v2/ route template the request matched (set by the OCI dispatcher, read by metrics and the access log). */
    route: string;
  };
}
