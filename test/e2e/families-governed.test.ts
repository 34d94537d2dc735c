/**
 * Governed namespaces (PRODUCT.md §5, §11): a push whose type no active artifact-type entry
 * lists, or that fails the entry's JSON Schemas, is refused with MANIFEST_INVALID and nothing is
 * written; built-in types (images, indexes, signatures, evidence, receipts) keep working;
 * ungoverned namespaces behave like a plain registry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, pushBlob, pushImage, sha256 } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry();
});
afterAll(async () => {
  await reg.stop();
});

async function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${reg.url}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }) });
}

interface ArtifactSpec {
  artifactType?: string;
  configMediaType?: string;
  config?: unknown;
  annotations?: Record<string, string>;
  subject?: { digest: string; size: number };
}

/** PUTs an OCI manifest (config + one small layer); returns the response and the manifest digest. */
async function pushArtifact(repo: string, tag: string, spec: ArtifactSpec): Promise<{ res: Response; digest: string }> {
  const config = Buffer.from(JSON.stringify(spec.config ?? {}));
  const layer = Buffer.from(`layer of ${repo}:${tag}`);
  await pushBlob(reg.url, repo, config);
  await pushBlob(reg.url, repo, layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...(spec.artifactType ? { artifactType: spec.artifactType } : {}),
      config: { mediaType: spec.configMediaType ?? 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/octet-stream', digest: sha256(layer), size: layer.length }],
      ...(spec.subject ? { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...spec.subject } } : {}),
      ...(spec.annotations ? { annotations: spec.annotations } : {}),
    }),
  );
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
  return { res, digest: sha256(manifest) };
}

async function errorOf(res: Response, status: number): Promise<{ code: string; message: string; detail?: unknown }> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return (JSON.parse(text) as { errors: { code: string; message: string; detail?: unknown }[] }).errors[0]!;
}

async function govern(ns: string, governed: boolean): Promise<void> {
  const res = await api('PUT', `/api/v1/namespaces/${ns}/governance`, { governed });
  expect(res.status, await res.clone().text()).toBe(200);
  expect(await res.json()).toEqual({ namespace: ns, governed });
}

describe('governed namespaces', () => {
  it('are off by default; an unknown type pushes like on any registry', async () => {
    expect(await (await api('GET', '/api/v1/namespaces/plain/governance')).json()).toEqual({ namespace: 'plain', governed: false });
    expect((await pushArtifact('plain/app', 'x', { artifactType: 'application/vnd.unknown.thing+json' })).res.status).toBe(201);
  });

  it('refuse a type no artifact-type entry lists, naming it; nothing is written', async () => {
    await govern('gov', true);
    const { res, digest } = await pushArtifact('gov/app', 'x', { artifactType: 'application/vnd.unknown.thing+json' });
    expect(await errorOf(res, 400)).toEqual({
      code: 'MANIFEST_INVALID',
      message: 'artifact type application/vnd.unknown.thing+json is not registered: no active artifact-type entry lists it (namespace gov is governed)',
      detail: { type: 'application/vnd.unknown.thing+json', namespace: 'gov' },
    });
    expect((await fetch(`${reg.url}/v2/gov/app/manifests/${digest}`)).status).toBe(404);
    // Without artifactType the config media type is the type.
    const byConfig = await pushArtifact('gov/app', 'y', { configMediaType: 'application/vnd.unknown.config.v1+json' });
    expect((await errorOf(byConfig.res, 400)).message).toContain('artifact type application/vnd.unknown.config.v1+json is not registered');
    const events = (await (await api('GET', '/api/v1/events?limit=1000')).json()) as { events: { action: string; after: unknown }[] };
    expect(events.events).toContainEqual(expect.objectContaining({ action: 'namespace.governance.set', after: { namespace: 'gov', governed: true } }));
  });

  it('accept the built-in types: images, indexes, Helm charts, and the referrers signing and evidence produce', async () => {
    const image = await pushImage(reg.url, 'gov/app', 'v1');
    const subject = { digest: image.digest, size: image.bytes.length };
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subject }] }));
    expect((await fetch(`${reg.url}/v2/gov/app/manifests/multi`, { method: 'PUT', body: index, headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' } })).status).toBe(201);
    for (const [tag, spec] of [
      ['helm', { configMediaType: 'application/vnd.cncf.helm.config.v1+json' }],
      ['cosign-referrer', { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', configMediaType: 'application/vnd.oci.empty.v1+json', subject }],
      ['sigstore', { artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json', configMediaType: 'application/vnd.oci.empty.v1+json', subject }],
      [`sha256-${image.digest.slice(7)}.sig`, { subject: undefined }], // cosign's legacy tag: an OCI image config
      ['evidence', { artifactType: 'application/vnd.artifact-store.evidence.v1', configMediaType: 'application/vnd.oci.empty.v1+json', subject, annotations: { 'dev.artifact-store.evidence.type': 'scan-report' } }],
      ['sbom', { artifactType: 'application/spdx+json', configMediaType: 'application/vnd.oci.empty.v1+json', subject }],
      ['notation', { artifactType: 'application/vnd.cncf.notary.signature', configMediaType: 'application/vnd.oci.empty.v1+json', subject }],
    ] as [string, ArtifactSpec][]) {
      const { res } = await pushArtifact('gov/app', tag, spec);
      expect(res.status, `${tag}: ${await res.clone().text()}`).toBe(201);
    }
  });

  it('validate annotations and config against the entry schemas and list every failing path', async () => {
    const entry = {
      id: 'acme-report',
      owner: 'artifact-store',
      artifactTypes: ['application/vnd.acme.report.v1'],
      annotationsSchema: {
        type: 'object',
        required: ['org.acme.team'],
        properties: { 'org.acme.team': { type: 'string', pattern: '^[a-z]+$' }, 'org.acme.tier': { enum: ['gold', 'silver'] } },
      },
      configSchema: { type: 'object', required: ['format'], properties: { format: { const: 'pdf' }, pages: { type: 'integer', minimum: 1 } } },
    };
    expect((await api('POST', '/api/v1/families/artifact-type/entries', entry)).status).toBe(201);
    const type = 'application/vnd.acme.report.v1';
    const bad = await pushArtifact('gov/reports', 'bad', { artifactType: type, configMediaType: 'application/vnd.acme.report.config.v1+json', config: { format: 'doc', pages: 0 }, annotations: { 'org.acme.team': 'Team1', 'org.acme.tier': 'bronze' } });
    const err = await errorOf(bad.res, 400);
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toMatch(/^manifest of type application\/vnd\.acme\.report\.v1 fails the schemas of artifact-type entry acme-report \(version 1\): /);
    const paths = (err.detail as { document: string; path: string }[]).map((d) => `${d.document} ${d.path}`).sort();
    expect(paths).toEqual(['annotations $["org.acme.team"]', 'annotations $["org.acme.tier"]', 'config $.format', 'config $.pages']);
    expect((await fetch(`${reg.url}/v2/gov/reports/manifests/${bad.digest}`)).status).toBe(404);

    const missing = await pushArtifact('gov/reports', 'missing', { artifactType: type, config: { format: 'pdf' } });
    expect((await errorOf(missing.res, 400)).detail).toEqual([{ document: 'annotations', path: '$["org.acme.team"]', message: "must have required property 'org.acme.team'" }]);

    const good = await pushArtifact('gov/reports', 'good', { artifactType: type, config: { format: 'pdf', pages: 3 }, annotations: { 'org.acme.team': 'reports', 'org.acme.tier': 'gold' } });
    expect(good.res.status).toBe(201);
    // Ungoverned namespaces do not validate.
    expect((await pushArtifact('plain/reports', 'bad', { artifactType: type, config: { format: 'doc' } })).res.status).toBe(201);

    // A new version with a looser schema applies at once (compiled per version).
    const v2 = { ...entry, annotationsSchema: { type: 'object' } };
    expect((await api('PUT', '/api/v1/families/artifact-type/entries/acme-report', v2)).status).toBe(200);
    expect((await pushArtifact('gov/reports', 'missing', { artifactType: type, config: { format: 'pdf' } })).res.status).toBe(201);
  });

  it('a disabled entry refuses its type; deprecated still matches; re-activated works again', async () => {
    const setStatus = (status: string) => api('PUT', '/api/v1/families/artifact-type/entries/helm-chart/status', { status, reason: `test ${status}` });
    expect((await setStatus('disabled')).status).toBe(200);
    const refused = await pushArtifact('gov/charts', 'a', { configMediaType: 'application/vnd.cncf.helm.config.v1+json' });
    expect(await errorOf(refused.res, 400)).toEqual({
      code: 'MANIFEST_INVALID',
      message: 'artifact type application/vnd.cncf.helm.config.v1+json belongs to artifact-type entry helm-chart, which is disabled (namespace gov is governed)',
      detail: { type: 'application/vnd.cncf.helm.config.v1+json', entry: 'helm-chart', namespace: 'gov' },
    });
    expect((await setStatus('deprecated')).status).toBe(200);
    expect((await pushArtifact('gov/charts', 'b', { configMediaType: 'application/vnd.cncf.helm.config.v1+json' })).res.status).toBe(201);
    expect((await setStatus('active')).status).toBe(200);
  });

  it('ungoverning restores plain behaviour; bad governance requests are refused', async () => {
    await govern('gov', false);
    expect((await pushArtifact('gov/app', 'z', { artifactType: 'application/vnd.unknown.thing+json' })).res.status).toBe(201);
    await expectError(await api('PUT', '/api/v1/namespaces/gov/governance', { governed: 'yes' }), 400, 'INVALID_PAYLOAD');
    await expectError(await api('PUT', '/api/v1/namespaces/Bad..ns/governance', { governed: true }), 400, 'NAME_INVALID');
  });
});
