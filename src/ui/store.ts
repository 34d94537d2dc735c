/** Read-only queries the UI pages need beyond RegistryStore (pages of tags with their manifests, bundles). */
import type { Db } from '../meta/db.js';

export interface TagRow {
  name: string;
  digest: string;
  size: number;
  media_type: string;
  artifact_type: string | null;
  updated_at: number;
}

export interface BundleListRow {
  id: number;
  bundle_id: string;
  bundle_version: string;
  kind: string;
  model_family: string;
  repository: string;
  digest: string;
  state: string;
  submitted_by: string;
}

export interface ActivationRow {
  environment: string;
  model_family: string;
  tenant: string;
  bundle_id: string;
  bundle_version: string;
  repository: string;
  event_seq: number;
}

export class UiStore {
  constructor(private readonly db: Db) {}

  /** Tags in byte order after `last`, with what they point at. */
  tagPage(repoId: number, last: string, limit: number): TagRow[] {
    return this.db.$client
      .prepare(
        `SELECT t.name, t.digest, m.size, m.media_type, m.artifact_type, t.updated_at FROM tags t
         JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
         WHERE t.repository_id = ? AND t.name > ? ORDER BY t.name LIMIT ?`,
      )
      .all(repoId, last, limit) as TagRow[];
  }

  referrerCount(repoId: number, subject: string): number {
    return this.db.$client.prepare('SELECT count(*) FROM manifests WHERE repository_id = ? AND subject = ?').pluck().get(repoId, subject) as number;
  }

  tagCount(repoId: number): number {
    return this.db.$client.prepare('SELECT count(*) FROM tags WHERE repository_id = ?').pluck().get(repoId) as number;
  }

  /** Bundles after row `afterId` in registration order (newest first), whatever their repository: the caller filters. */
  bundles(beforeId: number, limit: number): BundleListRow[] {
    return this.db.$client
      .prepare('SELECT id, bundle_id, bundle_version, kind, model_family, repository, digest, state, submitted_by FROM bundles WHERE id < ? ORDER BY id DESC LIMIT ?')
      .all(beforeId, limit) as BundleListRow[];
  }

  /**
   * Users or organisations in name order after `last`: the fallback while the management API has
   * no list endpoint. Callers decide access first (user.manage, or org.read per row).
   */
  /** A page of principals by name; `only`: just these names (a non-administrator's organisations). */
  principals(kind: 'user' | 'org', last: string, limit: number, only?: string[]): { name: string; admin: boolean; disabled: boolean }[] {
    if (only !== undefined && only.length === 0) return [];
    const within = only === undefined ? '' : ` AND name IN (SELECT value FROM json_each(?))`;
    const rows = this.db.$client
      .prepare(`SELECT name, is_admin, disabled FROM principals WHERE kind = ? AND name > ?${within} ORDER BY name LIMIT ?`)
      .all(kind, last, ...(only === undefined ? [] : [JSON.stringify(only)]), limit) as { name: string; is_admin: number; disabled: number }[];
    return rows.map((r) => ({ name: r.name, admin: r.is_admin === 1, disabled: r.disabled === 1 }));
  }

  activations(limit: number): ActivationRow[] {
    return this.db.$client
      .prepare(
        `SELECT a.environment, a.model_family, a.tenant, b.bundle_id, b.bundle_version, b.repository, a.event_seq FROM bundle_activations a
         JOIN bundles b ON b.id = a.bundle ORDER BY a.model_family, a.tenant, a.environment LIMIT ?`,
      )
      .all(limit) as ActivationRow[];
  }
}
