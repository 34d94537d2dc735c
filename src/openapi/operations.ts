/**
 * OpenAPI operations of garbage collection, namespace policies and usage, webhooks, the event
 * log and its checkpoints, search (PRODUCT.md §11). The gc and webhook request bodies are
 * written here (their route modules keep them private); the test sends real bodies through both.
 */
import { z } from 'zod';
import { policySchema } from '../operations/policy.js';
import type { Operations } from './build.js';

const gcBody = z.object({ dryRun: z.boolean().describe('required: an empty body never deletes') }).strict();
const webhookBody = z.object({
  url: z.string().min(1).max(2048).describe('http(s); private and loopback targets only when webhookAllowPrivateTargets'),
  events: z.array(z.string().min(1).max(200)).min(1).max(50).describe('action globs such as `oci.*`'),
  namespaces: z.array(z.string().max(255)).min(1).max(100).optional(),
  secret: z.string().min(16).max(512).describe('HMAC key of X-Artifact-Store-Signature; never shown again'),
});
const policy = z.looseObject({ namespace: z.string(), version: z.number().int(), immutableTags: z.array(z.string()), retention: z.array(z.looseObject({})), quotaBytes: z.number().nullable().optional() });
const webhook = z.looseObject({
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  namespaces: z.array(z.string()).nullable(),
  cursor: z.number().int(),
  delivered: z.number().int(),
  state: z.string(),
  lastError: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.string(),
});
const event = z.looseObject({
  seq: z.number().int(),
  time: z.number().int().describe('ms since the epoch'),
  actor: z.string(),
  action: z.string(),
  repository: z.string().nullable(),
  digest: z.string().nullable(),
  tag: z.string().nullable(),
  before: z.unknown(),
  after: z.unknown(),
  reason: z.string().nullable(),
  prevHash: z.string(),
  hash: z.string(),
});
const checkpoint = z.looseObject({ seq: z.number().int(), head: z.string(), time: z.string(), keyId: z.string(), signature: z.string() });
const repoUsage = z.looseObject({ repository: z.string(), downloads: z.number().int(), stars: z.number().int(), starred: z.boolean() });
/** GET /api/v1/usage also counts one digest's and one tag's pulls when asked (`digest=`, `tag=`). */
const usageAnswer = repoUsage.extend({
  digestDownloads: z.number().int().optional().describe('pulls of that manifest; only with `digest=`'),
  tagDownloads: z.number().int().optional().describe('pulls by that tag; only with `tag=`'),
});
const repoQuery = { 'repository!': 'repository name' };

export const operationsOperations: Operations = {
  '/api/v1/gc': {
    post: {
      summary: 'One garbage collection (administrators; one at a time, else 409)',
      body: gcBody,
      ok: {
        status: 200,
        schema: z.looseObject({ dryRun: z.boolean(), blobs: z.number().int(), bytes: z.number().int(), manifests: z.number().int(), tags: z.number().int(), items: z.array(z.looseObject({ kind: z.string(), action: z.enum(['delete', 'keep']), reason: z.string() })), itemsTruncated: z.boolean(), durationMs: z.number() }),
      },
    },
  },
  '/api/v1/namespaces/{ns}/policies': {
    get: { summary: "The namespace's immutable tags, retention rules and quota", ok: { status: 200, schema: policy } },
    put: { summary: 'Replace the namespace policy (versioned, an event); namespace managers', body: policySchema, ok: { status: 200, schema: policy } },
  },
  '/api/v1/namespaces/{ns}/usage': {
    get: { summary: 'Bytes stored under the namespace (a shared blob counted once) and its quota', ok: { status: 200, schema: z.looseObject({ namespace: z.string(), bytes: z.number().int(), quotaBytes: z.number().nullable() }) } },
  },
  '/api/v1/webhooks': {
    get: { summary: 'The subscriptions the caller may manage', ok: { status: 200, schema: z.object({ webhooks: z.array(webhook) }) } },
    post: { summary: 'Subscribe a URL to events (CloudEvents, HMAC-signed, retried); every namespace: administrators; listed ones: their managers', body: webhookBody, ok: { status: 201, schema: webhook } },
  },
  '/api/v1/webhooks/{id}': {
    get: { summary: 'One subscription with its dead letters', ok: { status: 200, schema: webhook.extend({ deadLetters: z.array(z.unknown()) }) } },
    delete: { summary: 'Delete a subscription', ok: { status: 204 } },
  },
  '/api/v1/events': {
    get: {
      summary: 'The event log, oldest first; administrators. Page with `after` = the previous `next` (a sequence number)',
      query: { after: 'sequence number to start after (default 0)', limit: 'page size, 1-1000 (default 100)' },
      ok: { status: 200, schema: z.object({ events: z.array(event), next: z.number().int() }) },
    },
  },
  '/api/v1/events/stream': {
    get: {
      summary: 'The changefeed: Server-Sent Events (`id:` = seq, `data:` = an event as JSON), resumable with Last-Event-ID',
      query: { after: 'sequence number to start after' },
      ok: { status: 200, contentType: 'text/event-stream', schema: z.string() },
    },
  },
  '/api/v1/events/checkpoints': {
    get: { summary: 'Signed checkpoints of the log (Ed25519) and the public key', ok: { status: 200, schema: z.looseObject({ algorithm: z.literal('Ed25519'), keyId: z.string(), publicKey: z.string(), checkpoints: z.array(checkpoint) }) } },
    post: { summary: 'Sign the current head now (201; 200 with the latest when the log has not moved)', ok: { status: 201, schema: checkpoint } },
  },
  '/api/v1/search': {
    get: {
      summary: 'Full-text search over what the caller may pull, with facets',
      query: { q: 'words', type: 'artifact type', namespace: 'namespace', signed: 'true or false', sort: 'relevance, updated or name', page: 'page number', per_page: 'results per page', include: '`referrers`' },
      ok: {
        status: 200,
        schema: z.looseObject({
          total: z.number().int().describe('exact up to the facet scan limit; beyond it, that limit (see totalExact)'),
          totalExact: z.boolean(),
          facetsExact: z.boolean().describe('false: the facet counts describe only the first matches up to the scan limit'),
          sort: z.enum(['relevance', 'newest', 'name', 'updated']).describe('the order used (relevance over too many matches falls back to newest)'),
          page: z.number().int(),
          perPage: z.number().int(),
          results: z.array(z.looseObject({ repository: z.string(), digest: z.string(), tags: z.array(z.string()), signed: z.boolean(), size: z.number().int(), pull: z.string() })),
          facets: z.record(z.string(), z.array(z.looseObject({ value: z.string(), count: z.number().int() }))),
        }),
      },
      access: 'optional',
    },
  },
  '/api/v1/stars': {
    put: { summary: 'Star a repository (signed-in users)', query: repoQuery, ok: { status: 200, schema: repoUsage } },
    delete: { summary: 'Remove the star', query: repoQuery, ok: { status: 200, schema: repoUsage } },
  },
  '/api/v1/usage': {
    get: { summary: "A repository's downloads and stars", query: { ...repoQuery, digest: 'one manifest (adds digestDownloads)', tag: 'one tag (adds tagDownloads)' }, ok: { status: 200, schema: usageAnswer }, access: 'optional' },
  },
};
