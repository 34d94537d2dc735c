/** Signed event-log checkpoints: written on demand, verified with the registry's public key, forgeries caught. */
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointMessage, loadOrCreateLogKey, logKeyFromPublicPem, logKeyPath, verifyCheckpoints } from '../../src/events/checkpoints.js';
import { openDatabase } from '../../src/meta/db.js';
import { pushImage } from '../helpers/http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const onPostgres = !!process.env.ARTIFACT_STORE_TEST_POSTGRES_URL;
let reg: TestRegistry;
beforeAll(async () => {
  reg = await startTestRegistry({ checkpointIntervalSeconds: 0 });
});
afterAll(async () => {
  await reg.stop();
});

const post = () => fetch(`${reg.url}/api/v1/events/checkpoints`, { method: 'POST' });

describe('event log checkpoints', () => {
  it('signs the head on demand, once per head, verifiable with the published key', async () => {
    await pushImage(reg.url, 'team/cp', 'v1');
    const first = await post();
    expect(first.status).toBe(201);
    const cp = (await first.json()) as { seq: number; head: string; signature: string; keyId: string };
    const again = await post();
    expect(again.status).toBe(200);
    expect(((await again.json()) as { seq: number }).seq).toBe(cp.seq);

    const listing = (await (await fetch(`${reg.url}/api/v1/events/checkpoints`)).json()) as { publicKey: string; keyId: string; checkpoints: { seq: number }[] };
    expect(listing.checkpoints.map((c) => c.seq)).toEqual([cp.seq]);
    // An auditor with only the public key verifies the signature and the chain position.
    const db = openDatabase(join(reg.dataDir, 'metadata.db'));
    try {
      expect(verifyCheckpoints(db, logKeyFromPublicPem(listing.publicKey))).toEqual({ checked: 1, problems: [] });
      // A different key does not verify it.
      const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
      expect(verifyCheckpoints(db, logKeyFromPublicPem(other)).problems).toHaveLength(1);
    } finally {
      db.$client.close();
    }
    await pushImage(reg.url, 'team/cp', 'v2');
    expect((await post()).status).toBe(201);
  });

  it('detects a forged checkpoint and a rewritten event under a checkpoint', async () => {
    const file = join(reg.dataDir, 'metadata.db');
    const key = loadOrCreateLogKey(logKeyPath({ dataDir: reg.dataDir }));
    // The tamperer writes the store directly: the SQLite file, or (test mode on PostgreSQL) its schema.
    const raw = onPostgres ? openDatabase(file).$client : new Database(file);
    try {
      const head = raw.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string };
      // A checkpoint signed by an attacker's key, inserted into the table.
      const attacker = generateKeyPairSync('ed25519').privateKey;
      const forged = { seq: head.seq + 1000, headHash: head.hash, time: Date.now() };
      raw.prepare('INSERT INTO event_checkpoints (seq, head_hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?)').run(forged.seq, forged.headHash, forged.time, key.keyId, sign(null, checkpointMessage(forged), attacker).toString('base64'));
      // History rewritten below a genuine checkpoint (the append-only triggers dropped first).
      const genuineCp = raw.prepare('SELECT seq FROM event_checkpoints ORDER BY seq LIMIT 1').get() as { seq: number };
      raw.exec(onPostgres ? 'DROP TRIGGER events_no_update ON events' : 'DROP TRIGGER events_no_update');
      raw.prepare('UPDATE events SET hash = ? WHERE seq = ?').run(`sha256:${'f'.repeat(64)}`, genuineCp.seq);
    } finally {
      raw.close();
    }
    const db = openDatabase(file);
    try {
      const { problems } = verifyCheckpoints(db, key);
      expect(problems.some((p) => p.includes(`seq ${genuine(db)}`) && p.includes('hash there changed'))).toBe(true);
      expect(problems.some((p) => p.includes('signature does not verify'))).toBe(true);
    } finally {
      db.$client.close();
    }
  });
});

function genuine(db: ReturnType<typeof openDatabase>): number {
  return (db.$client.prepare('SELECT seq FROM event_checkpoints ORDER BY seq LIMIT 1').get() as { seq: number }).seq;
}
