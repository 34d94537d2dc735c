/**
 * /api/v1/openapi.json describes the identity management API, and every management response
 * this test provokes (each operation's success, and refusals) validates against the document:
 * a field renamed in a handler, or a schema that drifts, fails here.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> };
let reg: TestRegistry;
let doc: Doc;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const exercised = new Set<string>();
const root = basic('root', PASSWORD);

beforeAll(async () => {
  reg = await startTestRegistry({ auth: 'token' });
  await withIdentities(reg.dataDir, async (_ids, s) => {
    await s.user('root', true);
    await s.user('olive');
  });
  const res = await fetch(`${reg.url}/api/v1/openapi.json`); // public: no credentials
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
});
afterAll(async () => reg.stop());

/** Calls the API and validates the answer against the document's operation `template`. */
async function call(method: string, template: string, path: string, auth: string | undefined, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${reg.url}${path}`, { method, headers: { ...(auth ? { Authorization: auth } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const op = doc.paths[template]?.[method.toLowerCase()];
  expect(op, `${method} ${template} is described`).toBeDefined();
  const described = op!.responses[String(res.status)] ?? (res.status >= 400 && res.status < 500 ? op!.responses['4XX'] : undefined);
  expect(described, `${method} ${template} → ${res.status} is described`).toBeDefined();
  const text = await res.text();
  const schema = described!.content?.['application/json']?.schema;
  if (!schema) {
    expect(text).toBe('');
    if (res.status < 400) exercised.add(`${method.toLowerCase()} ${template}`);
    return { status: res.status, json: null };
  }
  const json = JSON.parse(text) as unknown;
  const validate = ajv.compile(schema);
  expect(validate(json), `${method} ${path} → ${res.status}: ${JSON.stringify(validate.errors)} for ${text}`).toBe(true);
  if (res.status < 400) exercised.add(`${method.toLowerCase()} ${template}`);
  return { status: res.status, json };
}

it('is an OpenAPI 3.1 document whose request schemas come from the route validators', () => {
  expect(doc.openapi).toBe('3.1.0');
  const post = doc.paths['/api/v1/users']!.post as unknown as { requestBody: { content: { 'application/json': { schema: { required: string[]; properties: Record<string, { minLength?: number }> } } } } };
  const schema = post.requestBody.content['application/json'].schema;
  expect(schema.required).toEqual(expect.arrayContaining(['name', 'password']));
  expect(schema.properties.password!.minLength).toBe(12); // the same rule the handler enforces
});

it('every management operation answers as described (successes and refusals)', async () => {
  const olive = basic('olive', PASSWORD);
  expect((await call('GET', '/api/v1/whoami', '/api/v1/whoami', root)).status).toBe(200);
  expect((await call('POST', '/api/v1/users', '/api/v1/users', root, { name: 'mary', password: PASSWORD })).status).toBe(201);
  expect((await call('POST', '/api/v1/users', '/api/v1/users', root, { name: 'x', password: 'short' })).status).toBe(400);
  expect((await call('GET', '/api/v1/users', '/api/v1/users', root)).status).toBe(200);
  expect((await call('GET', '/api/v1/users', '/api/v1/users', olive)).status).toBe(403);
  expect((await call('GET', '/api/v1/users', '/api/v1/users', undefined)).status).toBe(401);
  expect((await call('PUT', '/api/v1/users/{user}/password', '/api/v1/users/mary/password', root, { password: 'another long passphrase' })).status).toBe(204);
  expect((await call('PUT', '/api/v1/users/{user}/disabled', '/api/v1/users/mary/disabled', root, { disabled: true })).status).toBe(200);
  expect((await call('PUT', '/api/v1/users/{user}/disabled', '/api/v1/users/nobody/disabled', root, { disabled: true })).status).toBe(404);
  expect((await call('PUT', '/api/v1/users/{user}/disabled', '/api/v1/users/mary/disabled', root, { disabled: false })).status).toBe(200);
  expect((await call('POST', '/api/v1/orgs', '/api/v1/orgs', olive, { name: 'acme' })).status).toBe(201);
  expect((await call('GET', '/api/v1/orgs', '/api/v1/orgs', olive)).status).toBe(200);
  expect((await call('PUT', '/api/v1/orgs/{org}/members/{user}', '/api/v1/orgs/acme/members/mary', olive, { role: 'reader' })).status).toBe(200);
  expect((await call('GET', '/api/v1/orgs/{org}/members', '/api/v1/orgs/acme/members', olive)).status).toBe(200);
  expect((await call('DELETE', '/api/v1/orgs/{org}/members/{user}', '/api/v1/orgs/acme/members/mary', olive)).status).toBe(200);
  const key = await call('POST', '/api/v1/keys', '/api/v1/keys', olive, { name: 'ci', scopes: ['publish'], expiresInSeconds: 3600 });
  expect(key.status).toBe(201);
  expect((await call('GET', '/api/v1/keys', '/api/v1/keys', olive)).status).toBe(200);
  expect((await call('DELETE', '/api/v1/keys/{id}', `/api/v1/keys/${(key.json as { id: string }).id}`, olive)).status).toBe(204);
  expect((await call('PUT', '/api/v1/repositories/visibility', '/api/v1/repositories/visibility', olive, { repository: 'acme/app', visibility: 'public' })).status).toBe(200);
  expect((await call('DELETE', '/api/v1/orgs/{org}', '/api/v1/orgs/acme', olive)).status).toBe(403);
  expect((await call('DELETE', '/api/v1/orgs/{org}', '/api/v1/orgs/acme', root)).status).toBe(200);
  expect((await call('DELETE', '/api/v1/users/{user}', '/api/v1/users/root', root)).status).toBe(409);
  expect((await call('DELETE', '/api/v1/users/{user}', '/api/v1/users/mary', root)).status).toBe(200);

  // Every described operation was exercised with a success above.
  const described = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
  expect([...exercised].sort()).toEqual(described.sort());
});
