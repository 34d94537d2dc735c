/** /api/v1/openapi.json: every area's operations in one OpenAPI 3.1 document (built once). */
import { identityOperations } from '../auth/management-openapi.js';
import { bundleOperations } from './bundles.js';
import { buildDocument, type Operations } from './build.js';
import { familyOperations } from './families.js';
import { operationsOperations } from './operations.js';
import { trustEvidenceOperations } from './trust-evidence.js';

/** Identity management takes a password or an API key only (bearer tokens carry OCI grants, nothing more). */
const basicOnly = (ops: Operations): Operations =>
  Object.fromEntries(Object.entries(ops).map(([path, methods]) => [path, Object.fromEntries(Object.entries(methods).map(([m, op]) => [m, { ...op, access: op.access ?? 'basic' }]))]));

let cached: Record<string, unknown> | undefined;

export function openApiDocument(): Record<string, unknown> {
  cached ??= buildDocument([basicOnly(identityOperations), familyOperations, trustEvidenceOperations, bundleOperations, operationsOperations]);
  return cached;
}
