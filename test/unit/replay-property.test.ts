/**
 * Property: for any sequence of OCI and identity writes through the real stores (refused ones
 * included), a rebuild from the log reproduces every replayed table exactly.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { IdentityStore } from '../../src/auth/identity-store.js';
import { compareTables, rebuildInto } from '../../src/events/rebuild.js';
import { openDatabase } from '../../src/meta/db.js';
import { RegistryStore } from '../../src/meta/registry-store.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
const dir = mkdtempSync(join(tmpdir(), 'replay-property-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

const repo = fc.constantFrom('a/x', 'a/y', 'b/z');
const blob = fc.integer({ min: 0, max: 5 });
const tag = fc.constantFrom('latest', 'v1', 'v2');
const user = fc.constantFrom('ann', 'bob', 'cy');
const op = fc.oneof(
  fc.record({ k: fc.constant('link' as const), repo, blob }),
  fc.record({ k: fc.constant('manifest' as const), repo, blobs: fc.uniqueArray(blob, { minLength: 1, maxLength: 3 }), tags: fc.uniqueArray(tag, { maxLength: 2 }), note: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ k: fc.constant('untag' as const), repo, tag }),
  fc.record({ k: fc.constant('unmanifest' as const), repo, pick: fc.nat() }),
  fc.record({ k: fc.constant('unlink' as const), repo, blob }),
  fc.record({ k: fc.constant('user' as const), user, admin: fc.boolean() }),
  fc.record({ k: fc.constant('password' as const), user }),
  fc.record({ k: fc.constant('key' as const), user, revoke: fc.boolean() }),
  fc.record({ k: fc.constant('visibility' as const), repo, pub: fc.boolean() }),
);

let run = 0;
describe('replay property', () => {
  it('rebuild(log) equals the live tables after any sequence of writes', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const file = join(dir, `live-${run}.db`);
        const db = openDatabase(file);
        const store = new RegistryStore(db);
        const ids = new IdentityStore(db);
        const manifests: { repo: string; digest: string }[] = [];
        try {
          for (const o of ops) {
            try {
              if (o.k === 'link') store.linkBlob(o.repo, sha(`blob ${o.blob}`), 100 + o.blob, 't', 'oci.blob.push');
              else if (o.k === 'manifest') {
                const id = store.repositoryId(o.repo);
                const linked = id === undefined ? new Map() : store.linkedBlobSizes(id, o.blobs.map((b) => sha(`blob ${b}`)));
                const refs = o.blobs.map((b) => sha(`blob ${b}`)).filter((d) => linked.has(d));
                const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: refs, note: o.note }));
                const digest = sha(payload.toString());
                const annotations = o.note > 1 ? { n: String(o.note) } : null;
                store.putManifest(o.repo, { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', payload, size: payload.length, artifactType: o.note === 3 ? 'application/x.t' : null, subject: null, annotations, references: refs.map((d) => ({ digest: d, kind: 'blob' as const })) }, o.tags, 't');
                manifests.push({ repo: o.repo, digest });
              } else if (o.k === 'untag') {
                const id = store.repositoryId(o.repo);
                if (id !== undefined) store.deleteTag(o.repo, id, o.tag, 't');
              } else if (o.k === 'unmanifest' && manifests.length > 0) {
                const m = manifests[o.pick % manifests.length]!;
                const id = store.repositoryId(m.repo);
                if (id !== undefined) store.deleteManifest(m.repo, id, m.digest, 't');
              } else if (o.k === 'unlink') {
                const id = store.repositoryId(o.repo);
                if (id !== undefined) store.unlinkBlob(o.repo, id, sha(`blob ${o.blob}`), 't');
              } else if (o.k === 'user') {
                if (!ids.principalByName(o.user)) ids.createUser(o.user, `hash-${o.user}`, o.admin, 't');
              } else if (o.k === 'password') {
                const u = ids.principalByName(o.user);
                if (u) ids.setPassword(u, `new-${run}`, 't');
              } else if (o.k === 'key') {
                const u = ids.principalByName(o.user);
                if (u) {
                  const keyId = `k${run}-${Math.random().toString(36).slice(2, 8)}`;
                  ids.createKey({ id: keyId, userId: u.id, name: 'n', secretHash: sha(keyId), scopes: '["read"]', repositories: null, expiresAt: null }, 't');
                  if (o.revoke) ids.revokeKey(keyId, 't');
                }
              } else if (o.k === 'visibility') ids.setVisibility(o.repo, o.pub ? 'public' : 'private', 't');
            } catch (err) {
              // Refused writes (409 DENIED: blob or manifest still referenced) leave no trace.
              if (!(err instanceof Error && /referenced/.test(err.message))) throw err;
            }
          }
          const out = join(dir, `rebuilt-${run}.db`);
          rebuildInto(db.$client, out);
          // On PostgreSQL the rebuilt "file" is a schema (test mode): opened the way rebuildInto opened it.
          const Database = db.$client.constructor as new (f: string, o: object) => import('better-sqlite3').Database;
          const rebuilt = onPostgres ? openDatabase(out).$client : new Database(out, { readonly: true });
          try {
            expect(compareTables(db.$client, rebuilt)).toEqual([]);
          } finally {
            rebuilt.close();
          }
        } finally {
          db.$client.close();
          run++;
        }
      }),
      // Each run opens two fresh databases: on PostgreSQL two schemas migrated (about a second each).
      { numRuns: onPostgres ? 30 : 150 },
    );
  }, onPostgres ? 240_000 : 120_000);
});
