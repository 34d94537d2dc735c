/**
 * Group commit keeps "a 201 means durable" (issue 17): 64 manifest PUTs sent at once to a real
 * registry process (dist/, `npm run build` first) share transactions (src/meta/write-batcher.ts).
 * The process is frozen with SIGSTOP at a moment its database write lock is held — a group
 * transaction is open, some PUTs already answered 201, others inside it — and killed with
 * SIGKILL. After a restart on the same data directory: every PUT that got 201 is readable with
 * its tag; every manifest visible is one that was sent and is whole (tag, references, events),
 * the open transaction left nothing, the hash chain verifies and a rebuild from the log matches.
 */
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { metadataSchema, onPostgres, openMetadata } from '../helpers/metadata.js';
import { writeLockKey } from '../../src/meta/pg/facade.js';
import { imageManifest, pushBlob, randomBlob, sha256 } from '../helpers/http.js';
import { disposeAfterEach, startRegistryProcess } from '../helpers/registry.js';

const MT = 'application/vnd.oci.image.manifest.v1+json';
const PUTS = 64;
const REPO = 'gc/app';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cli(dataDir: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_LOG_LEVEL: 'silent' }, timeout: 110_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}


/** The registry's metadata as the test reads it: the SQLite file, or (test mode on PostgreSQL) its schema. */
const metadata = (dataDir: string, readonly = false): Database.Database => openMetadata(dataDir, { readonly });

/**
 * Whether some connection holds the database's write lock (a write transaction is open). On
 * PostgreSQL that lock is the schema's advisory lock every write transaction takes at BEGIN
 * (src/meta/pg/facade.ts); pg_locks shows a bigint key as classid (high half) and objid.
 */
function writeLocked(watch: Database.Database, dataDir: string): boolean {
  if (onPostgres) {
    const schema = metadataSchema(dataDir);
    const sql = `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = ${writeLockKey(schema)}`;
    return (watch.prepare(sql).pluck().get() as number) > 0;
  }
  try {
    watch.exec('BEGIN IMMEDIATE');
    watch.exec('ROLLBACK');
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
    throw err;
  }
}

describe('group commit under kill -9', () => {
  const disposed = disposeAfterEach();

  it('64 concurrent manifest PUTs killed mid-batch: every 201 survives with its tag, nothing half-written is visible', async () => {
    const first = disposed(await startRegistryProcess({ ARTIFACT_STORE_LOG_LEVEL: 'warn' }));
    const dataDir = first.dataDir;
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const layer = randomBlob(2000);
    const configRef = { digest: await pushBlob(first.url, REPO, config), size: config.length };
    const layerRef = { digest: await pushBlob(first.url, REPO, layer), size: layer.length };
    // Long annotation text: indexing it (search, event payload) makes each item take a while, so
    // a transaction stays open long enough to be caught holding the lock.
    const words = (i: number) => Array.from({ length: 4_000 }, (_, w) => `w${i}x${w}`).join(' ');
    const bodies = Array.from({ length: PUTS }, (_, i) => imageManifest(configRef, [layerRef], { annotations: { 'org.example.i': String(i), 'org.example.text': words(i) } }));

    const watch = metadata(dataDir);
    if (!onPostgres) watch.pragma('busy_timeout = 0');
    const acked = new Set<number>();
    const failed = new Set<number>();
    const puts = bodies.map((body, i) =>
      fetch(`${first.url}/v2/${REPO}/manifests/t${i}`, { method: 'PUT', body, headers: { 'Content-Type': MT } })
        .then(async (res) => {
          await res.arrayBuffer();
          if (res.status === 201) acked.add(i);
          else failed.add(i);
        })
        .catch(() => failed.add(i)),
    );

    // Freeze while a group transaction is open after some PUTs were answered; if it committed
    // between the check and the freeze, thaw and look again.
    let frozen = false;
    for (let i = 0; !frozen; i++) {
      expect(acked.size + failed.size, 'the wave finished before a transaction was caught open').toBeLessThan(PUTS);
      expect(i).toBeLessThan(200_000);
      if (acked.size > 0 && writeLocked(watch, dataDir)) {
        first.proc.kill('SIGSTOP');
        if (writeLocked(watch, dataDir)) frozen = true;
        else first.proc.kill('SIGCONT');
      }
      if (!frozen) await sleep(1);
    }
    const ackedAtKill = new Set(acked);
    await first.kill('SIGKILL');
    await Promise.all(puts);
    watch.close();
    // The responses read after the freeze were sent before it.
    expect(acked.size).toBeGreaterThanOrEqual(ackedAtKill.size);
    expect(acked.size).toBeGreaterThan(0);
    expect(acked.size).toBeLessThan(PUTS);

    // Same settings, same data directory.
    const reg = disposed(await first.restart());
    for (const i of acked) {
      const res = await fetch(`${reg.url}/v2/${REPO}/manifests/t${i}`, { headers: { Accept: MT } });
      expect(res.status, `t${i} got 201 before the kill`).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(bodies[i]!));
    }

    // What is visible is whole: each manifest is one we sent, with its tag, references and events.
    const db = metadata(dataDir, true);
    const sent = new Map(bodies.map((b, i) => [sha256(b), i]));
    const visible = db.prepare("SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = ?").pluck().all(REPO) as string[];
    const tagOf = db.prepare('SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?').pluck();
    const refs = db.prepare('SELECT count(*) FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id WHERE r.name = ? AND mr.manifest_digest = ?').pluck();
    const eventsOf = db.prepare("SELECT action, tag FROM events WHERE repository = ? AND digest = ? AND action IN ('oci.manifest.push', 'oci.tag.set') ORDER BY seq");
    for (const d of visible) {
      const i = sent.get(d);
      expect(i, `unexpected manifest ${d}`).toBeDefined();
      expect(tagOf.get(REPO, `t${i}`)).toBe(d);
      expect(refs.get(REPO, d)).toBe(2);
      expect(eventsOf.all(REPO, d)).toEqual([{ action: 'oci.manifest.push', tag: null }, { action: 'oci.tag.set', tag: `t${i}` }]);
    }
    // No tag or push event without its manifest (a half-applied item or batch).
    expect(db.prepare('SELECT count(*) FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ?').pluck().get(REPO)).toBe(visible.length);
    expect(db.prepare("SELECT count(*) FROM events WHERE repository = ? AND action = 'oci.manifest.push'").pluck().get(REPO)).toBe(visible.length);
    // The open transaction's PUTs are gone (it was caught before its COMMIT), and it held several:
    // they were sharing one transaction.
    expect(PUTS - visible.length).toBeGreaterThanOrEqual(2);
    console.log(`group-commit crash: ${acked.size} PUTs answered 201, ${visible.length} visible after restart, ${PUTS - visible.length} lost with the open transaction`);
    db.close();

    const verify = await cli(dataDir, ['events', 'verify']);
    expect(verify.code, verify.out).toBe(0);
    const check = await cli(dataDir, ['events', 'check']);
    expect(check.code, check.out).toBe(0);
  }, 240_000);
});
