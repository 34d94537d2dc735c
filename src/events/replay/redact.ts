/**
 * Events carry what a rebuild needs, including secret material (password and API-key hashes).
 * What the log exposes to readers (GET /api/v1/events, the stream, webhook deliveries) goes
 * through this: those fields are replaced by "[redacted]", the rest is unchanged.
 */
const SECRET_FIELDS = new Set(['passwordHash', 'secretHash', 'secret']);

export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELDS.has(k) ? '[redacted]' : redactSecrets(v);
  return out;
}

/** Parses an event's JSON `before`/`after` column and redacts it. */
export const parseRedacted = (json: string | null): unknown => (json ? redactSecrets(JSON.parse(json)) : null);
