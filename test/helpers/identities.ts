/** Seeds users, organisations and keys straight into a test registry's database. */
import { join } from 'node:path';
import { createApiKey, createUserAccount } from '../../src/auth/accounts.js';
import { IdentityStore } from '../../src/auth/identity-store.js';
import type { KeyScope, Role } from '../../src/auth/permissions.js';
import { openDatabase } from '../../src/meta/db.js';

export const PASSWORD = 'correct horse battery staple';

export function withIdentities<T>(dataDir: string, fn: (ids: IdentityStore, helpers: Seeder) => Promise<T>): Promise<T> {
  const db = openDatabase(join(dataDir, 'metadata.db'));
  const ids = new IdentityStore(db);
  const seeder: Seeder = {
    user: async (name, admin = false) => (await createUserAccount(ids, name, PASSWORD, admin, 'test', true)).id,
    org: (name, ownerId) => void ids.createOrg(name, ownerId, 'test'),
    member: (org, user, role) => ids.setMember(ids.principalByName(org)!, ids.principalByName(user)!, role, 'test'),
    key: (userId, scopes, repositories, expiresInSeconds) => createApiKey(ids, userId, { name: 'k', scopes, repositories, expiresInSeconds }, 'test'),
  };
  return fn(ids, seeder).finally(() => db.$client.close());
}

export interface Seeder {
  user(name: string, admin?: boolean): Promise<number>;
  org(name: string, ownerId: number): void;
  member(org: string, user: string, role: Role): void;
  key(userId: number, scopes: KeyScope[], repositories?: string[], expiresInSeconds?: number): { id: string; token: string };
}

export const basic = (user: string, secret: string): string => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
