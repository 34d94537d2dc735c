/** JSON request bodies for the /api/v1 endpoints: capped, parsed, validated by a zod schema. */
import type { Context } from 'hono';
import type { z } from 'zod';
import { ociError, type ErrorCode } from '../errors/catalogue.js';
import { readBodyCapped } from './body.js';
import type { AppEnv } from './env.js';

/** Governance and management requests are small documents; schemas inside entries included. */
export const MAX_JSON_BODY_BYTES = 256 * 1024;

/**
 * Reads and validates the body. Any failure is a 400 with `code` (INVALID_PAYLOAD by default)
 * whose message lists each failing JSON path, never a 500.
 */
export async function readJson<T>(c: Context<AppEnv>, schema: z.ZodType<T>, code: ErrorCode = 'INVALID_PAYLOAD'): Promise<T> {
  const bytes = await readBodyCapped(c, MAX_JSON_BODY_BYTES);
  if (bytes === null) throw ociError(code, `body larger than ${MAX_JSON_BODY_BYTES} bytes`, { status: 413 });
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw ociError(code, 'body must be JSON', { status: 400 });
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const detail = r.error.issues.map((i) => ({ path: `$${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`, message: i.message }));
    throw ociError(code, detail.map((d) => `${d.path}: ${d.message}`).join('; '), { status: 400, detail });
  }
  return r.data;
}
