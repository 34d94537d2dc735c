/** OpenAPI operations of the families API and namespace governance (PRODUCT.md §11). */
import { z } from 'zod';
import { entrySchema } from '../families/entries.js';
import { delegationBody, governanceBody, statusBody } from '../families/routes.js';
import { FAMILIES } from '../governance/contracts.js';
import type { Operations } from './build.js';

const status = z.enum(['active', 'deprecated', 'disabled']);
/** One version of an entry, as every entries route answers it. */
const entryVersion = z.looseObject({
  family: z.enum(FAMILIES),
  id: z.string(),
  version: z.number().int().min(1),
  latestVersion: z.number().int().min(1),
  status,
  digest: z.string().describe('the OCI artifact of this version in repository `_registry/{family}`'),
  repository: z.string(),
  entry: z.looseObject({ id: z.string(), owner: z.string() }),
  createdAt: z.string(),
});
/** The request body of an entry: each family's own schema (the one the route validates with). */
const anyEntry = z.union(FAMILIES.map((f) => entrySchema(f).describe(`a ${f} entry`)) as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]]);
const delegation = z.object({ family: z.enum(FAMILIES), org: z.string().nullable() });
const governance = z.object({ namespace: z.string(), governed: z.boolean() });

export const familyOperations: Operations = {
  '/api/v1/families': {
    get: {
      summary: 'The families with their entry counts, OCI repositories and delegations',
      ok: { status: 200, schema: z.object({ families: z.array(z.looseObject({ family: z.enum(FAMILIES), entries: z.number().int(), repository: z.string(), delegatedTo: z.string().nullable() })) }) },
      access: 'optional',
    },
  },
  '/api/v1/families/{family}/entries': {
    get: {
      summary: 'Entries of a family in id order, paged (`next` is the last id of a full page)',
      query: { n: 'page size, at most 1000', last: 'the previous page\'s `next`', status: 'active, deprecated or disabled' },
      ok: { status: 200, schema: z.looseObject({ family: z.enum(FAMILIES), entries: z.array(entryVersion), next: z.string().optional() }) },
      access: 'optional',
    },
    post: { summary: 'Create an entry (version 1); administrators, or the organisation the family is delegated to', body: anyEntry, ok: { status: 201, schema: entryVersion } },
  },
  '/api/v1/families/{family}/entries/{id}': {
    get: { summary: 'An entry: the latest version, or `?version=N`', query: { version: 'a version number' }, ok: { status: 200, schema: entryVersion }, access: 'optional' },
    put: { summary: 'A new version of the entry (entries are never edited in place)', body: anyEntry, ok: { status: 200, schema: entryVersion } },
  },
  '/api/v1/families/{family}/entries/{id}/status': {
    put: { summary: 'Move an entry between active, deprecated and disabled, with a reason', body: statusBody, ok: { status: 200, schema: entryVersion } },
  },
  '/api/v1/families/{family}/delegation': {
    get: { summary: 'The organisation that maintains the family, if any', ok: { status: 200, schema: delegation }, access: 'optional' },
    put: { summary: 'Delegate the family to an organisation (`null` withdraws it); administrators', body: delegationBody, ok: { status: 200, schema: delegation } },
  },
  '/api/v1/namespaces/{ns}/governance': {
    get: { summary: 'Whether pushes to the namespace must match an active artifact-type entry', ok: { status: 200, schema: governance }, access: 'optional' },
    put: { summary: 'Govern a namespace (fail closed) or stop; namespace managers', body: governanceBody, ok: { status: 200, schema: governance } },
  },
};
