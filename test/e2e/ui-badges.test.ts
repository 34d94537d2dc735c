/**
 * The health badge counts "no critical scan finding": the registry's own scanner reports a
 * pickle that imports os.system as critical (scan-report evidence), and the badge says so; a
 * harmless pickle's report leaves the badge free of it; a repository without a report is not
 * flagged for it either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBlob, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EVIDENCE = 'application/vnd.artifact-store.evidence.v1';
const POISON = Buffer.from("cos\nsystem\n(S'id'\ntR.", 'latin1');
const HARMLESS = Buffer.from('(lp0\n.', 'latin1'); // protocol 0: an empty list

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

async function pushModel(repo: string, pickle: Buffer): Promise<string> {
  const c = await pushBlob(reg.url, repo, Buffer.from('{}'));
  const l = await pushBlob(reg.url, repo, pickle);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: c, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: l, size: pickle.length, annotations: { 'org.opencontainers.image.title': 'model.pkl' } }],
    }),
  );
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { method: 'PUT', body: bytes, headers: { 'Content-Type': MANIFEST } });
  expect(res.status, await res.text()).toBe(201);
  return sha256(bytes);
}

async function scanResult(repo: string, subject: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const idx = (await (await fetch(`${reg.url}/v2/${repo}/referrers/${subject}?artifactType=${encodeURIComponent(EVIDENCE)}`)).json()) as { manifests: { annotations?: Record<string, string> }[] };
    const report = idx.manifests.find((m) => m.annotations?.['dev.artifact-store.evidence.type'] === 'scan-report');
    if (report) return report.annotations!['dev.artifact-store.scan.result']!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no scan report');
}

const health = async (repo: string) => {
  const res = await fetch(`${reg.url}/badges/${repo}/health.svg`);
  expect(res.status).toBe(200);
  return res.text();
};

describe('health badge and scan findings', () => {
  it('a critical finding in the latest scan report shows on the health badge', async () => {
    const bad = await pushModel('scan/bad', POISON);
    expect(await scanResult('scan/bad', bad)).toBe('fail');
    const svg = await health('scan/bad');
    expect(svg).toContain('critical finding');
    expect(svg).toContain('#e05d44');
  });

  it('a clean report, or none, does not', async () => {
    const good = await pushModel('scan/good', HARMLESS);
    expect(await scanResult('scan/good', good)).not.toBe('fail');
    const svg = await health('scan/good');
    expect(svg).not.toContain('critical');
    expect(svg).toContain('unsigned'); // the other criteria still apply
    const res = await fetch(`${reg.url}/v2/plain/app/manifests/v1`, { method: 'HEAD' });
    expect(res.status).toBe(404);
    await pushModel('plain/app', Buffer.from('not a model at all'));
    expect(await health('plain/app')).not.toContain('critical');
  });
});
