/**
 * README badges at `/badges/<repository>/<badge>.svg` (issue #16). A repository the caller may
 * not pull answers exactly like one that does not exist (404), so a badge URL never confirms a
 * private name.
 */
import type { Context } from 'hono';
import { isValidName } from '../core/names.js';
import { EvidenceStore } from '../evidence/store.js';
import { readSmallBlob } from '../governance/content.js';
import type { ModuleDeps } from '../governance/module.js';
import type { AppEnv } from '../http/env.js';
import type { SearchModule } from '../search/index.js';
import { escapeHtml } from '../ui/html.js';

export const BADGES = ['downloads', 'stars', 'signed', 'health'] as const;
type Badge = (typeof BADGES)[number];

const RECENT_MS = 90 * 24 * 3600 * 1000;
const SCAN_REPORT_TYPE = 'scan-report';
const SCAN_REPORT_MEDIA_TYPE = 'application/vnd.artifact-store.scan-report.v1+json';
const SCAN_RESULT_ANNOTATION = 'dev.artifact-store.scan.result';
const REPORT_MAX_BYTES = 4 * 1024 * 1024;
const SIGNATURE_TYPES_SQL = "(artifact_type = 'application/vnd.dev.cosign.artifact.sig.v1+json' OR artifact_type LIKE 'application/vnd.dev.sigstore.bundle%')";

/** A flat two-part badge; widths from a per-character estimate (no font metrics offline). */
export function badgeSvg(label: string, value: string, color: string): string {
  const w = (s: string) => 10 + s.length * 7;
  const lw = w(label);
  const vw = w(value);
  const l = escapeHtml(label);
  const v = escapeHtml(value);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${lw + vw}" height="20" role="img" aria-label="${l}: ${v}"><title>${l}: ${v}</title><rect width="${lw}" height="20" fill="#555"/><rect x="${lw}" width="${vw}" height="20" fill="${color}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="${lw / 2}" y="14">${l}</text><text x="${lw + vw / 2}" y="14">${v}</text></g></svg>`;
}

interface Newest {
  digest: string;
  signed: number;
  updated_at: number;
  repository_id: number;
}

export function registerBadges(deps: ModuleDeps, search: SearchModule): void {
  const sqlite = deps.db.$client;
  const newestStmt = sqlite.prepare('SELECT digest, signed, updated_at, repository_id FROM search_docs WHERE repository = ? AND subject IS NULL ORDER BY updated_at DESC, id DESC LIMIT 1');
  const evidenceStmt = sqlite.prepare(`SELECT 1 FROM manifests WHERE repository_id = ? AND subject = ? AND NOT ${SIGNATURE_TYPES_SQL} LIMIT 1`);

  const evidence = new EvidenceStore(deps.db);

  /**
   * Whether the latest scan report (evidence of type scan-report) of this manifest lists a
   * critical finding. The report manifest's `scan.result` annotation says `pass`/`warn` when
   * there is nothing critical or high; only on `fail` (or a report without it) is the report blob
   * read to tell critical from high. Unreadable or malformed reports count as not clean: a badge
   * must not call a manifest healthy because its report could not be checked.
   */
  const criticalFinding = async (repository: string, newest: Newest): Promise<boolean> => {
    const reports = evidence.evidenceOfSubject(deps.db, repository, newest.repository_id, newest.digest).filter((e) => e.type === SCAN_REPORT_TYPE || e.declaredType === SCAN_REPORT_TYPE);
    const latest = reports[reports.length - 1];
    if (!latest) return false;
    const m = deps.store.manifestByDigest(repository, latest.digest);
    if (!m) return false;
    try {
      const doc = JSON.parse(m.payload.toString('utf8')) as { annotations?: Record<string, string>; layers?: { mediaType?: string; digest?: string; size?: number }[] };
      const result = doc.annotations?.[SCAN_RESULT_ANNOTATION];
      if (result === 'pass' || result === 'warn') return false;
      const layer = doc.layers?.find((l) => l.mediaType === SCAN_REPORT_MEDIA_TYPE && typeof l.digest === 'string');
      if (!layer || (layer.size ?? 0) > REPORT_MAX_BYTES) return true;
      const report = JSON.parse((await readSmallBlob(deps.driver, layer.digest!, REPORT_MAX_BYTES)).toString('utf8')) as { counts?: { critical?: unknown }; blobs?: { findings?: { severity?: unknown }[] }[] };
      if (typeof report.counts?.critical === 'number') return report.counts.critical > 0;
      return (report.blobs ?? []).some((b) => (b.findings ?? []).some((f) => f.severity === 'critical'));
    } catch {
      return true;
    }
  };

  const value = async (badge: Badge, repository: string, newest: Newest | undefined): Promise<[string, string, string]> => {
    switch (badge) {
      case 'downloads':
        return ['downloads', String(search.downloads.count(repository)), '#007ec6'];
      case 'stars':
        return ['stars', String(search.stars.count(repository)), '#007ec6'];
      case 'signed':
        return newest?.signed ? ['signed', 'yes', '#4c1'] : ['signed', 'no', '#e05d44'];
      case 'health': {
        if (!newest) return ['health', 'empty', '#9f9f9f'];
        const missing: string[] = [];
        if (Date.now() - newest.updated_at > RECENT_MS) missing.push('stale');
        if (!newest.signed) missing.push('unsigned');
        if (evidenceStmt.get(newest.repository_id, newest.digest) === undefined) missing.push('no evidence');
        if (await criticalFinding(repository, newest)) missing.push('critical finding');
        return missing.length === 0 ? ['health', 'healthy', '#4c1'] : ['health', missing.join(', '), missing.length === 1 && !missing.includes('critical finding') ? '#dfb317' : '#e05d44'];
      }
    }
  };

  deps.app.get('/badges/*', async (c: Context<AppEnv>) => {
    const rest = c.req.path.slice('/badges/'.length);
    const slash = rest.lastIndexOf('/');
    const repository = slash > 0 ? rest.slice(0, slash) : '';
    const file = rest.slice(slash + 1);
    const badge = file.endsWith('.svg') ? file.slice(0, -4) : '';
    const notFound = () => c.body(badgeSvg('badge', 'not found', '#9f9f9f'), 404, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'no-store', 'Content-Security-Policy': "default-src 'none'" });
    if (!(BADGES as readonly string[]).includes(badge) || !isValidName(repository)) return notFound();
    // Existence is only checked after the right to see it: a private name and a missing one look alike.
    if (!deps.access.can(c, { kind: 'repository', repository, action: 'pull' }) || deps.store.repositoryId(repository) === undefined) return notFound();
    const [label, text, color] = await value(badge as Badge, repository, newestStmt.get(repository) as Newest | undefined);
    return c.body(badgeSvg(label, text, color), 200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'no-cache, private', 'Content-Security-Policy': "default-src 'none'" });
  });
}
