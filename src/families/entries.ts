/**
 * What a family entry may contain: the common fields, each family's own fields, and the JSON
 * Schemas an artifact type may carry (checked and compiled here, once per entry version).
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsImport from 'ajv-formats';
import { RE2 } from 're2-wasm';
import { z } from 'zod';
import { ociError } from '../errors/catalogue.js';
import { FAMILIES, type Family } from '../governance/contracts.js';

/** Entry ids follow the OCI tag grammar in lower case (they are the artifact's tag). */
export const ENTRY_ID_RE = /^[a-z0-9_][a-z0-9._-]{0,127}$/;
export const isEntryId = (s: string): boolean => ENTRY_ID_RE.test(s);
export const isFamily = (s: string): s is Family => (FAMILIES as readonly string[]).includes(s);

/** A whole entry as deterministic CBOR: schemas included, still a small document. */
export const MAX_ENTRY_BYTES = 64 * 1024;

const MEDIA_TYPE_RE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

const entryId = z.string().regex(ENTRY_ID_RE, 'must be lower case, [a-z0-9_] then up to 127 of [a-z0-9._-]');
const jsonSchema = z.union([z.boolean(), z.record(z.string(), z.unknown())]);

const common = z
  .object({
    id: entryId,
    owner: entryId.describe('the owner product id'),
    description: z.string().max(4096).optional(),
  })
  .passthrough();

const FAMILY_FIELDS: Record<Family, z.ZodTypeAny> = {
  product: common,
  scope: common,
  'usage-unit': common,
  'sdk-contract': common,
  'audit-action': common.extend({ description: z.string().min(1).max(4096) }),
  'evidence-type': common.extend({ retentionDays: z.number().int().min(0).max(36500) }),
  'artifact-type': common.extend({
    artifactTypes: z.array(z.string().regex(MEDIA_TYPE_RE, 'must be a lower-case media type')).min(1).max(64),
    annotationsSchema: jsonSchema.optional(),
    configSchema: jsonSchema.optional(),
    signatureRequired: z.boolean().default(false),
    promotable: z.boolean().default(false),
  }),
};

export type EntryDoc = Record<string, unknown> & { id: string; owner: string };

export const entrySchema = (family: Family): z.ZodType<EntryDoc> => FAMILY_FIELDS[family] as z.ZodType<EntryDoc>;

// ---- JSON Schemas -------------------------------------------------------------------------

const addFormats = addFormatsImport as unknown as (ajv: Ajv2020) => Ajv2020;
// addUsedSchema: false — entries may reuse `$id`s; each version is compiled on its own.
/**
 * `pattern` and `patternProperties` come from admins' schemas and run against every pushed
 * manifest: with JavaScript's backtracking engine one `^(a+)+$` could pin the process for
 * minutes (ReDoS). RE2 matches in linear time; it refuses backreferences and lookarounds, which
 * then fail the schema's compilation with a clear 400 instead of running.
 */
const re2Engine = Object.assign((pattern: string, flags: string) => new RE2(pattern, flags.includes('u') ? flags : `${flags}u`), { code: 'new RE2' });
const ajv = addFormats(new Ajv2020({ allErrors: true, strict: false, addUsedSchema: false, validateSchema: true, code: { regExp: re2Engine } }));

const REF_KEYWORDS = new Set(['$ref', '$dynamicRef', '$recursiveRef']);
const META_2020 = 'https://json-schema.org/draft/2020-12/schema';

/** Paths of references that leave the document (remote or relative): never fetched, refused. */
function nonLocalRefs(v: unknown, path: string, out: string[]): string[] {
  if (Array.isArray(v)) v.forEach((x, i) => nonLocalRefs(x, `${path}[${i}]`, out));
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      const p = jsonPath(path, k);
      if (REF_KEYWORDS.has(k) && (typeof x !== 'string' || !x.startsWith('#'))) out.push(p);
      else nonLocalRefs(x, p, out);
    }
  }
  return out;
}

export function jsonPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

/** Compiles an entry's schema; a non-local `$ref`, another meta-schema or an invalid schema is a 400. */
export function compileSchema(schema: unknown, field: string): ValidateFunction {
  const remote = nonLocalRefs(schema, `$.${field}`, []);
  if (remote.length > 0) {
    throw ociError('INVALID_PAYLOAD', `${field} may only use local references ("#…"): ${remote.join(', ')}`, { detail: remote.map((path) => ({ path, message: 'non-local $ref is not allowed' })) });
  }
  const declared = typeof schema === 'object' && schema !== null ? (schema as Record<string, unknown>).$schema : undefined;
  if (declared !== undefined && declared !== META_2020 && declared !== `${META_2020}#`) {
    throw ociError('INVALID_PAYLOAD', `${field} must be JSON Schema 2020-12 ($schema ${META_2020})`, { detail: [{ path: `$.${field}.$schema`, message: 'unsupported meta-schema' }] });
  }
  try {
    return ajv.compile(schema as object | boolean);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw ociError('INVALID_PAYLOAD', `${field} is not a valid JSON Schema 2020-12: ${message}`, { detail: [{ path: `$.${field}`, message }] });
  }
}

export interface SchemaFailure {
  document: 'annotations' | 'config';
  path: string;
  message: string;
}

/** Ajv errors as JSON paths ($.a.b, $["dotted.key"], $.list[1]), naming the missing or extra property. */
export function schemaFailures(document: SchemaFailure['document'], errors: ErrorObject[] | null | undefined, data: unknown): SchemaFailure[] {
  return (errors ?? []).map((e) => {
    let path = '$';
    let node = data;
    for (const raw of e.instancePath.split('/').slice(1)) {
      const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      // Walk the document so array indexes print as [n] and object keys as names.
      const index = Array.isArray(node) ? Number(seg) : NaN;
      path = Number.isInteger(index) ? jsonPath(path, index) : jsonPath(path, seg);
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[seg] : undefined;
    }
    const params = e.params as { missingProperty?: string; additionalProperty?: string };
    if (e.keyword === 'required' && params.missingProperty) path = jsonPath(path, params.missingProperty);
    if (e.keyword === 'additionalProperties' && params.additionalProperty) path = jsonPath(path, params.additionalProperty);
    return { document, path, message: e.message ?? e.keyword };
  });
}
