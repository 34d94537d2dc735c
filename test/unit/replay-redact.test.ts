/** What the log exposes (events API, webhooks) never shows the hashes logged for rebuilds. */
import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../../src/events/replay/redact.js';
import { cloudEvent } from '../../src/webhooks/delivery.js';
import type { EventRow } from '../../src/meta/events.js';

const row = (action: string, after: unknown, before: unknown = null): EventRow => ({
  seq: 7,
  time: 1_700_000_000_000,
  actor: 'root',
  action,
  repository: null,
  digest: null,
  tag: null,
  before: before === null ? null : JSON.stringify(before),
  after: JSON.stringify(after),
  reason: null,
  prevHash: `sha256:${'0'.repeat(64)}`,
  hash: `sha256:${'1'.repeat(64)}`,
});

describe('redaction of logged secrets', () => {
  it('replaces password and key hashes and webhook secrets, drops manifest bytes, keeps the rest', () => {
    expect(redactSecrets({ user: 'ann', passwordHash: 'scrypt$abc', admin: false })).toEqual({ user: 'ann', passwordHash: '[redacted]', admin: false });
    expect(redactSecrets({ key: 'k1', secretHash: 'ff', userId: 3 })).toEqual({ key: 'k1', secretHash: '[redacted]', userId: 3 });
    expect(redactSecrets({ id: 'w', secret: 's3cret' })).toEqual({ id: 'w', secret: '[redacted]' });
    expect(redactSecrets({ mediaType: 'm', size: 3, payload: 'AAAA', references: [] })).toEqual({ mediaType: 'm', size: 3, references: [] });
    // A user's document nested in an event is shown as written.
    expect(redactSecrets({ entry: { secret: 'not a secret, a field of the entry' } })).toEqual({ entry: { secret: 'not a secret, a field of the entry' } });
    expect(redactSecrets(null)).toBeNull();
    expect(redactSecrets(['a'])).toEqual(['a']);
  });

  it('webhook CloudEvents carry the redacted data', () => {
    const ce = cloudEvent(row('identity.user.password', { user: 'ann', passwordHash: 'scrypt$secret-material' }, { secretHash: 'ab' }), 'urn:test') as { data: { after: unknown; before: unknown } };
    expect(JSON.stringify(ce)).not.toContain('secret-material');
    expect(ce.data.after).toEqual({ user: 'ann', passwordHash: '[redacted]' });
    expect(ce.data.before).toEqual({ secretHash: '[redacted]' });
  });
});
