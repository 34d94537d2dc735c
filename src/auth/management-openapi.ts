/**
 * OpenAPI operations of the identity management API (/api/v1 users, orgs, keys, visibility),
 * built from the zod schemas the routes validate request bodies with, plus zod schemas of what
 * they answer. The whole document (this and the governance areas) is assembled in
 * src/openapi/index.ts and served at /api/v1/openapi.json.
 */
import { z } from 'zod';
import type { Operations } from '../openapi/build.js';
import { disabledBody, keyBody, memberBody, orgBody, passwordBody, userBody, visibilityBody } from './management-routes.js';

const role = z.enum(['owner', 'maintainer', 'reader']);
const keyInfo = z.looseObject({ id: z.string(), name: z.string(), scopes: z.array(z.string()), repositories: z.array(z.string()).nullable(), expiresAt: z.number().nullable(), revokedAt: z.number().nullable(), createdAt: z.number() });

export const responses = {
  whoami: z.object({ name: z.string(), admin: z.boolean(), organisations: z.record(z.string(), role), key: z.looseObject({ id: z.string() }).nullable() }),
  users: z.object({ users: z.array(z.object({ name: z.string(), admin: z.boolean(), disabled: z.boolean(), createdAt: z.number() })) }),
  userCreated: z.object({ name: z.string(), admin: z.boolean() }),
  disabled: z.object({ user: z.string(), disabled: z.boolean() }),
  userDeleted: z.object({ user: z.string(), keysRevoked: z.number().int(), memberships: z.number().int() }),
  orgDeleted: z.object({ org: z.string(), members: z.number().int() }),
  orgs: z.object({ orgs: z.array(z.object({ name: z.string(), createdAt: z.number(), role: role.nullable() })) }),
  orgCreated: z.object({ name: z.string(), owner: z.string() }),
  members: z.object({ members: z.array(z.object({ user: z.string(), role })) }),
  member: z.object({ org: z.string(), user: z.string(), role: role.nullable() }),
  keyCreated: z.object({ id: z.string(), token: z.string(), expiresAt: z.number().nullable() }),
  keys: z.object({ keys: z.array(keyInfo) }),
  visibility: visibilityBody,
};

export const identityOperations: Operations = {
  '/api/v1/openapi.json': { get: { summary: 'This document (no credentials needed)', ok: { status: 200, schema: z.looseObject({ openapi: z.literal('3.1.0'), paths: z.record(z.string(), z.unknown()) }) }, access: 'public' } },
  '/api/v1/whoami': { get: { summary: 'The caller: name, administrator, organisations, the key used', ok: { status: 200, schema: responses.whoami } } },
  '/api/v1/users': {
    get: { summary: 'Every user (administrators)', ok: { status: 200, schema: responses.users } },
    post: { summary: 'Create a user (administrators, password login)', body: userBody, ok: { status: 201, schema: responses.userCreated } },
  },
  '/api/v1/users/{user}': { delete: { summary: 'Delete a user with their API keys and memberships (administrators, password login); 409 while their namespace has content or they alone own an organisation', ok: { status: 200, schema: responses.userDeleted } } },
  '/api/v1/users/{user}/password': { put: { summary: 'Change a password: the user, or an administrator (reset); voids earlier tokens', body: passwordBody, ok: { status: 204 } } },
  '/api/v1/users/{user}/disabled': { put: { summary: 'Disable or enable a user (administrators)', body: disabledBody, ok: { status: 200, schema: responses.disabled } } },
  '/api/v1/orgs': {
    get: { summary: 'Organisations: all for administrators, else those the caller belongs to', ok: { status: 200, schema: responses.orgs } },
    post: { summary: 'Create an organisation owned by the caller', body: orgBody, ok: { status: 201, schema: responses.orgCreated } },
  },
  '/api/v1/orgs/{org}': { delete: { summary: 'Delete an organisation (administrators); 409 while it has repositories with content, delegated families or webhooks limited to it', ok: { status: 200, schema: responses.orgDeleted } } },
  '/api/v1/orgs/{org}/members': { get: { summary: 'Members of an organisation (members, administrators)', ok: { status: 200, schema: responses.members } } },
  '/api/v1/orgs/{org}/members/{user}': {
    put: { summary: 'Grant a role (owners)', body: memberBody, ok: { status: 200, schema: responses.member } },
    delete: { summary: 'Remove a member (owners)', ok: { status: 200, schema: responses.member } },
  },
  '/api/v1/keys': {
    get: { summary: "The caller's API keys (never secrets)", ok: { status: 200, schema: responses.keys } },
    post: { summary: 'Create an API key no broader than the caller; the token is shown once', body: keyBody, ok: { status: 201, schema: responses.keyCreated } },
  },
  '/api/v1/keys/{id}': { delete: { summary: 'Revoke a key (its owner, administrators, the key itself)', ok: { status: 204 } } },
  '/api/v1/repositories/visibility': { put: { summary: 'Make a repository public or private (namespace owners)', body: visibilityBody, ok: { status: 200, schema: responses.visibility } } },
};
