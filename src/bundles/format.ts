/**
 * The bundle wire format (PRODUCT.md §11 "Bundles"): media types, the config document, the gate
 * receipt and the scope, as zod schemas so every failure names its JSON path.
 */
import semver from 'semver';
import { z } from 'zod';

export const MODEL_BUNDLE_TYPE = 'application/vnd.artifact-store.model-bundle.v1';
export const POLICY_BUNDLE_TYPE = 'application/vnd.artifact-store.policy-bundle.v1';
export const BUNDLE_CONFIG_TYPE = 'application/vnd.artifact-store.bundle.config.v1+json';
export const GATE_RECEIPT_TYPE = 'application/vnd.artifact-store.gate-receipt.v1';
export const GATE_RECEIPT_LAYER_TYPE = 'application/vnd.artifact-store.gate-receipt.v1+json';

/** Which artifactType a bundle of each kind carries. */
export const BUNDLE_TYPES = { model: MODEL_BUNDLE_TYPE, policy: POLICY_BUNDLE_TYPE } as const;
export type BundleKind = keyof typeof BUNDLE_TYPES;

/** Identifiers that travel in URL paths and scope keys: short, no separators but `._-`. */
const IDENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ident = (what: string) => z.string().regex(IDENT_RE, `${what} must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit`);

/** Strict semver (`1.2.0`, `1.2.0-rc.1+build.5`; not `v1.2.0`, `=1.2.0` or ` 1.2.0`). */
export const isStrictSemver = (v: string): boolean => v.length <= 128 && v.trim() === v && /^[0-9]/.test(v) && semver.valid(v) !== null;
const version = z.string().refine(isStrictSemver, 'must be a semantic version such as 1.2.0');
const range = z
  .string()
  .min(1)
  .max(256)
  .refine((r) => semver.validRange(r) !== null, 'must be a semver range such as ^1.2 or >=2.0.0 <3');

export const bundleConfigSchema = z
  .object({
    bundle_id: ident('bundle_id'),
    bundle_version: version,
    kind: z.enum(['model', 'policy']),
    model_family: ident('model_family'),
    required_feature_groups: z.record(ident('feature group name'), range),
    config_hash: z.string().min(1).max(256),
    provenance: z
      .object({
        training_run: z.string().max(2048).nullable().optional(),
        evaluation_report: z.string().max(2048).nullable().optional(),
        dataset_manifests: z.array(z.string().max(2048)).max(1000),
      })
      .passthrough(),
  })
  .passthrough();
export type BundleConfig = z.infer<typeof bundleConfigSchema>;

export const gateReceiptSchema = z.object({
  result: z.enum(['PASS', 'FAIL']),
  gate: z.string().min(1).max(256),
  evaluated_at: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an RFC 3339 time'),
});
export type GateReceipt = z.infer<typeof gateReceiptSchema>;

export const scopeSchema = z.object({
  environment: ident('environment'),
  model_family: ident('model_family'),
  tenant: ident('tenant').optional(),
});
export type Scope = z.infer<typeof scopeSchema>;

/** The stored form of a scope: tenant '' is the tenant-less scope. */
export interface ScopeKey {
  environment: string;
  modelFamily: string;
  tenant: string;
}

export const scopeKeyOf = (s: Scope): ScopeKey => ({ environment: s.environment, modelFamily: s.model_family, tenant: s.tenant ?? '' });
export const scopeOfKey = (k: ScopeKey): Scope => ({ environment: k.environment, model_family: k.modelFamily, ...(k.tenant ? { tenant: k.tenant } : {}) });
/** One string per scope, for history rows and the rollback stack. */
export const scopeString = (k: ScopeKey): string => JSON.stringify([k.environment, k.modelFamily, k.tenant]);

export const featureGroupsSchema = z.object({ groups: z.record(ident('feature group name'), version) });

/** Flattens zod issues into `{path, message}` with `$.a.b[0]` paths, like readJson does for bodies. */
export function issuesOf(error: z.ZodError, root = '$'): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: `${root}${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`, message: i.message }));
}
