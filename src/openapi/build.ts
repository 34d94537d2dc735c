/**
 * The OpenAPI 3.1 document of /api/v1 (issue #19), assembled from per-area operation tables
 * (identity, families, trust and evidence, bundles, operations). Request bodies are the zod
 * schemas the routes validate with wherever a route module exports them; responses are zod
 * schemas of the main fields (loose: extra fields allowed). test/e2e/operator-openapi*.test.ts
 * checks that every route the app registers under /api/v1 is described and validates real
 * answers against the document, so it cannot drift unnoticed.
 */
import { z } from 'zod';
import { VERSION } from '../version.js';

/** Who may call: a password or API key only; those or a bearer token; also anonymously (public content); anyone. */
export type Access = 'basic' | 'credentials' | 'optional' | 'public';

export interface Op {
  summary: string;
  body?: z.ZodType;
  /** The body may be left out (e.g. a release reason). */
  bodyOptional?: boolean;
  /** Query parameters: name → description (required when it ends in '!'). */
  query?: Record<string, string>;
  ok: { status: number; schema?: z.ZodType; contentType?: string };
  access?: Access;
}

/** path template (`{param}`) → method → operation. */
export type Operations = Record<string, Record<string, Op>>;

/** Every error, /v2/ and /api/v1 alike; under /api/ each error also says whether retrying can help. */
export const errorEnvelope = z.looseObject({
  errors: z.array(z.looseObject({ code: z.string(), message: z.string(), detail: z.unknown().optional(), retryable: z.boolean().optional() })).min(1),
});

export const schemaOf = (s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const SECURITY: Record<Access, unknown[]> = {
  basic: [{ basic: [] }],
  credentials: [{ basic: [] }, { bearer: [] }],
  optional: [{ basic: [] }, { bearer: [] }, {}],
  public: [{}],
};

function operation(path: string, op: Op, error: unknown): Record<string, unknown> {
  const params: Record<string, unknown>[] = [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  for (const [name, description] of Object.entries(op.query ?? {})) {
    const required = name.endsWith('!');
    params.push({ name: required ? name.slice(0, -1) : name, in: 'query', required, description, schema: { type: 'string' } });
  }
  const type = op.ok.contentType ?? 'application/json';
  return {
    summary: op.summary,
    ...(params.length ? { parameters: params } : {}),
    ...(op.body ? { requestBody: { required: !op.bodyOptional, content: { 'application/json': { schema: schemaOf(op.body, 'input') } } } } : {}),
    responses: {
      [op.ok.status]: op.ok.schema ? { description: 'success', content: { [type]: { schema: schemaOf(op.ok.schema, 'output') } } } : { description: 'success, no body' },
      '4XX': error,
      '5XX': error,
    },
    security: SECURITY[op.access ?? 'credentials'],
  };
}

export function buildDocument(areas: Operations[]): Record<string, unknown> {
  const error = { description: 'error envelope', content: { 'application/json': { schema: schemaOf(errorEnvelope, 'output') } } };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const ops of areas) {
    for (const [path, methods] of Object.entries(ops)) {
      paths[path] ??= {};
      for (const [method, op] of Object.entries(methods)) paths[path][method] = operation(path, op, error);
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'artifact-store API',
      version: VERSION,
      description:
        'The JSON API beside /v2/: identities, families, trust, evidence and holds, bundles, garbage collection and policies, webhooks, the event log, search. Identity management takes a password or an API key (Basic); governance routes also take a bearer token from /token for the repository actions it grants.',
    },
    components: {
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic', description: 'a password, or an API key as the password' },
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a token from /token: only the repository actions it grants' },
      },
    },
    paths,
  };
}
