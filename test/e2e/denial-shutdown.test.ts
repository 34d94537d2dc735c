/**
 * Denial events are budgeted (5 per actor and action per minute, then one summary when the
 * window closes). A window still open at shutdown must not lose its summary: the server writes
 * it before the database closes.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, asc, eq } from 'drizzle-orm';
import { afterAll, expect, it } from 'vitest';
import { openDatabase } from '../../src/meta/db.js';
import { events } from '../../src/meta/schema.js';
import { basic, PASSWORD, withIdentities } from '../helpers/identities.js';
import { removeDir, startTestRegistry } from '../helpers/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'as-denials-'));
afterAll(() => removeDir(dir));

it('writes the summary of refusals still owed when the registry closes', async () => {
  const reg = await startTestRegistry({ auth: 'token', logLevel: 'error' }, dir);
  try {
    await withIdentities(dir, async (_ids, s) => {
      await s.user('alice');
      await s.user('bob');
    });
    // 8 refused pushes in one window: 5 recorded one by one, 3 only counted.
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${reg.url}/v2/alice/invented-${i}/blobs/uploads/`, { method: 'POST', headers: { Authorization: basic('bob', PASSWORD) } });
      expect(res.status).toBe(403);
    }
  } finally {
    await reg.stop();
  }

  const db = openDatabase(join(dir, 'metadata.db'));
  try {
    const rows = db.select().from(events).where(and(eq(events.action, 'identity.access.denied'), eq(events.actor, 'bob'))).orderBy(asc(events.seq)).all();
    const after = rows.map((r) => JSON.parse(r.after ?? 'null') as { attempted: string; suppressed?: number });
    expect(rows).toHaveLength(6);
    expect(rows.slice(0, 5).map((r) => r.repository)).toEqual([0, 1, 2, 3, 4].map((i) => `alice/invented-${i}`));
    expect(after[5]).toMatchObject({ attempted: 'oci.push', suppressed: 3 });
    expect(rows[5]!.repository).toBeNull();
    expect(rows[5]!.reason).toContain('3 further refusals');
  } finally {
    db.$client.close();
  }
});
