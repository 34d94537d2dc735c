/** Replay of the OCI metadata: repositories, blobs and their links, manifests, references, tags. */
import { need, type Handler, type ParsedEvent, type ReplayContext, type TableRule } from './types.js';

const CREATED = 'wall-clock insert time (SQL default), not carried by the event';

export const ociTables: TableRule[] = [
  { table: 'repositories', key: ['id'], columns: ['id', 'name'], notCompared: { created_at: CREATED } },
  { table: 'blobs', key: ['digest'], columns: ['digest', 'size'], notCompared: { created_at: CREATED } },
  { table: 'repository_blobs', key: ['repository_id', 'digest'], columns: ['repository_id', 'digest'], notCompared: { created_at: CREATED } },
  {
    table: 'manifests',
    key: ['repository_id', 'digest'],
    columns: ['repository_id', 'digest', 'media_type', 'payload', 'size', 'artifact_type', 'subject', 'annotations'],
    notCompared: { created_at: CREATED },
  },
  { table: 'manifest_references', key: ['repository_id', 'manifest_digest', 'target_digest'], columns: ['repository_id', 'manifest_digest', 'target_digest', 'kind'] },
  { table: 'tags', key: ['repository_id', 'name'], columns: ['repository_id', 'name', 'digest'], notCompared: { updated_at: 'wall-clock time of the last move (Date.now() in the write), not carried by the event' } },
];

const repoId = (ctx: ReplayContext, e: ParsedEvent): number =>
  need(ctx.get<{ id: number }>('SELECT id FROM repositories WHERE name = ?', e.repository)?.id, e, `repository ${e.repository}`);

const deleteManifest: Handler = (ctx, e) => {
  const id = repoId(ctx, e);
  ctx.run('DELETE FROM tags WHERE repository_id = ? AND digest = ?', id, e.digest);
  ctx.run('DELETE FROM manifests WHERE repository_id = ? AND digest = ?', id, e.digest);
  ctx.run('DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?', id, e.digest);
};

const deleteTag: Handler = (ctx, e) => {
  ctx.run('DELETE FROM tags WHERE repository_id = ? AND name = ?', repoId(ctx, e), e.tag);
};

const linkBlob: Handler = (ctx, e) => {
  const id = repoId(ctx, e);
  ctx.run('INSERT INTO blobs (digest, size) VALUES (?, ?) ON CONFLICT DO NOTHING', e.digest, need(e.afterJson.size as number | undefined, e, 'blob size'));
  ctx.run('INSERT INTO repository_blobs (repository_id, digest) VALUES (?, ?) ON CONFLICT DO NOTHING', id, e.digest);
};

const setTag: Handler = (ctx, e) => {
  ctx.run('INSERT INTO tags (repository_id, name, digest) VALUES (?, ?, ?) ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest', repoId(ctx, e), e.tag, e.digest);
};

export const ociHandlers: Record<string, Handler> = {
  'oci.repository.create': (ctx, e) => {
    ctx.run('INSERT INTO repositories (name) VALUES (?)', e.repository);
  },
  'oci.blob.push': linkBlob,
  'oci.blob.mount': linkBlob,
  'oci.blob.delete': (ctx, e) => {
    ctx.run('DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?', repoId(ctx, e), e.digest);
  },
  'oci.manifest.push': (ctx, e) => {
    const a = e.afterJson as { mediaType: string; size: number; subject?: string; artifactType?: string; annotations?: Record<string, string>; references?: { digest: string; kind: string }[]; payload?: string };
    const id = repoId(ctx, e);
    const payload = Buffer.from(need(a.payload, e, 'manifest payload (logged since the rebuild change)'), 'base64');
    ctx.run(
      'INSERT INTO manifests (repository_id, digest, media_type, payload, size, artifact_type, subject, annotations) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      id,
      e.digest,
      a.mediaType,
      payload,
      a.size,
      a.artifactType ?? null,
      a.subject ?? null,
      a.annotations ? JSON.stringify(a.annotations) : null,
    );
    for (const r of need(a.references, e, 'manifest references')) {
      ctx.run('INSERT INTO manifest_references (repository_id, manifest_digest, target_digest, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', id, e.digest, r.digest, r.kind);
    }
  },
  'oci.tag.set': setTag,
  'oci.tag.move': setTag,
  'oci.tag.delete': deleteTag,
  'oci.manifest.delete': deleteManifest,
  'gc.tag.delete': deleteTag,
  'gc.manifest.delete': deleteManifest,
  'gc.blob.delete': (ctx, e) => {
    const doomed = need((e.beforeJson.blobs as { digest: string }[] | undefined), e, 'deleted blobs');
    for (const b of doomed) {
      ctx.run('DELETE FROM repository_blobs WHERE digest = ?', b.digest);
      ctx.run('DELETE FROM blobs WHERE digest = ?', b.digest);
    }
  },
};
