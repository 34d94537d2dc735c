/**
 * Events carry what a rebuild needs, including secret material (password and API-key hashes)
 * and manifest bytes. What the log exposes to readers (GET /api/v1/events, the stream, webhook
 * deliveries) goes through this: secret fields read "[redacted]", manifest bytes are left out
 * (up to 4 MiB each in base64: a page of 1,000 events must stay small; the manifest is
 * fetchable by digest). Only the top level of `before`/`after` is touched, where the stores
 * put these fields: documents nested inside (a family entry) are shown as written.
 */
const SECRET_FIELDS = new Set(['passwordHash', 'secretHash', 'secret']);
const OMITTED_FIELDS = new Set(['payload']);

export function redactSecrets(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (OMITTED_FIELDS.has(k)) continue;
    out[k] = SECRET_FIELDS.has(k) ? '[redacted]' : v;
  }
  return out;
}

/** Parses an event's JSON `before`/`after` column and redacts it. */
export const parseRedacted = (json: string | null): unknown => (json ? redactSecrets(JSON.parse(json)) : null);
