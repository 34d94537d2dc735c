/**
 * Signed checkpoints: the registry periodically (and on demand) signs {seq, head hash, time}
 * of its event log with a dedicated Ed25519 key, so an auditor holding the public key can prove
 * that a log prefix existed at a time, and detect a rewritten history even if the rewriter
 * recomputed every hash in the chain.
 *
 *   GET  /api/v1/events/checkpoints         → {publicKey, keyId, checkpoints:[…]}   (admin)
 *   POST /api/v1/events/checkpoints         → 201 the new checkpoint (or 200 the latest when
 *                                             the log has not moved)                (admin)
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { asc, desc, eq, lte } from 'drizzle-orm';
import type { Hono } from 'hono';
import type { AccessControl } from '../auth/access.js';
import type { Config } from '../config/index.js';
import type { AppEnv } from '../http/env.js';
import type { Db } from '../meta/db.js';
import { events } from '../meta/schema.js';
import { writeBatcher } from '../meta/write-batcher.js';
import { eventCheckpoints } from './checkpoint-schema.js';

export type Checkpoint = typeof eventCheckpoints.$inferSelect;

export interface LogKey {
  privateKey?: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  publicKeyPem: string;
}

/** Where the data directory keeps the log-signing key. */
export const logKeyPath = (config: Pick<Config, 'dataDir' | 'eventLogSigningKeyFile'>): string =>
  config.eventLogSigningKeyFile ? resolve(config.eventLogSigningKeyFile) : join(resolve(config.dataDir), 'auth', 'event-log-signing-key.pem');

/** Loads the log-signing key from `file` (PEM, 0600), creating it on first use. */
export function loadOrCreateLogKey(file: string): LogKey {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    // Two processes starting together: the first rename wins, both then read the same key.
    if (!existsSync(file)) renameSync(tmp, file);
  }
  const privateKey = createPrivateKey(readFileSync(file));
  return { privateKey, ...publicPart(createPublicKey(privateKey)) };
}

function publicPart(publicKey: KeyObject): Omit<LogKey, 'privateKey'> {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return { publicKey, keyId: createHash('sha256').update(der).digest('hex'), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A verifier from a public key PEM alone (what an auditor holds). */
export function logKeyFromPublicPem(pem: string): LogKey {
  return publicPart(createPublicKey(pem));
}

/** The exact bytes signed: fixed key order, no whitespace. */
export const checkpointMessage = (c: Pick<Checkpoint, 'seq' | 'headHash' | 'time'>): Buffer =>
  Buffer.from(JSON.stringify({ type: 'artifact-store.event-log.checkpoint.v1', seq: c.seq, head: c.headHash, time: c.time }));

/**
 * Signs the head unless it is already checkpointed; returns the (new or latest) checkpoint. The
 * head is the last event at or below `upTo` (the durable watermark, `signDurableHead`): a signed
 * head a power loss could erase would make the log look rewritten.
 */
export function writeCheckpoint(db: Db, key: LogKey, upTo: number): { checkpoint: Checkpoint | null; created: boolean } {
  if (!key.privateKey) throw new Error('checkpoints need the private log key');
  const privateKey = key.privateKey;
  return db.transaction((tx) => {
    const head = tx.select({ seq: events.seq, hash: events.hash }).from(events).where(lte(events.seq, upTo)).orderBy(desc(events.seq)).limit(1).get();
    const latest = tx.select().from(eventCheckpoints).orderBy(desc(eventCheckpoints.seq)).limit(1).get() ?? null;
    if (!head || (latest && latest.seq >= head.seq)) return { checkpoint: latest, created: false };
    const unsigned = { seq: head.seq, headHash: head.hash, time: Date.now() };
    const signature = sign(null, checkpointMessage(unsigned), privateKey).toString('base64');
    const row = tx.insert(eventCheckpoints).values({ ...unsigned, keyId: key.keyId, signature }).returning().get();
    return { checkpoint: row, created: true };
  });
}

/** Checkpoints the event log up to what is on disk (meta/write-batcher.ts `durableSeq`). */
export async function signDurableHead(db: Db, key: LogKey): Promise<{ checkpoint: Checkpoint | null; created: boolean }> {
  return writeCheckpoint(db, key, await writeBatcher(db).durableSeq());
}

export function listCheckpoints(db: Db, limit = 1000): Checkpoint[] {
  return db.select().from(eventCheckpoints).orderBy(asc(eventCheckpoints.seq)).limit(limit).all();
}

/**
 * Checks every checkpoint: signed by `key`, and the event at its seq still has the signed head
 * hash. Returns the problems found (empty when all hold).
 */
export function verifyCheckpoints(db: Db, key: LogKey): { checked: number; problems: string[] } {
  const problems: string[] = [];
  const rows = db.select().from(eventCheckpoints).orderBy(asc(eventCheckpoints.seq)).all();
  for (const c of rows) {
    let ok = false;
    try {
      ok = c.keyId === key.keyId && verify(null, checkpointMessage(c), key.publicKey, Buffer.from(c.signature, 'base64'));
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`checkpoint at seq ${c.seq}: signature does not verify with key ${key.keyId.slice(0, 16)}…`);
    const e = db.select({ hash: events.hash }).from(events).where(eq(events.seq, c.seq)).get();
    if (!e) problems.push(`checkpoint at seq ${c.seq}: the log no longer has that event`);
    else if (e.hash !== c.headHash) problems.push(`checkpoint at seq ${c.seq}: the log's hash there changed (${e.hash} ≠ signed ${c.headHash})`);
  }
  return { checked: rows.length, problems };
}

export const presentCheckpoint = (c: Checkpoint): Record<string, unknown> => ({ seq: c.seq, head: c.headHash, time: new Date(c.time).toISOString(), timeMs: c.time, keyId: c.keyId, signature: c.signature });

/** Routes and the periodic writer; returns a stop function. */
export function registerCheckpoints(app: Hono<AppEnv>, deps: { db: Db; access: AccessControl; key: LogKey; intervalSeconds: number }): () => void {
  app.get('/api/v1/events/checkpoints', (c) => {
    deps.access.require(c, { kind: 'registry.admin' });
    return c.json({ keyId: deps.key.keyId, publicKey: deps.key.publicKeyPem, algorithm: 'Ed25519', checkpoints: listCheckpoints(deps.db).map(presentCheckpoint) });
  });
  app.post('/api/v1/events/checkpoints', async (c) => {
    deps.access.require(c, { kind: 'registry.admin' });
    const { checkpoint, created } = await signDurableHead(deps.db, deps.key);
    if (!checkpoint) return c.json({ checkpoint: null }, 200);
    return c.json(presentCheckpoint(checkpoint), created ? 201 : 200);
  });
  if (deps.intervalSeconds <= 0) return () => {};
  const timer = setInterval(() => {
    // A closing database or a busy moment: the next interval tries again.
    signDurableHead(deps.db, deps.key).catch(() => {});
  }, deps.intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
