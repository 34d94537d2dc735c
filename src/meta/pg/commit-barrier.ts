/**
 * Group commit on PostgreSQL, the same shape as SQLite's off-loop WAL fdatasync: a batch commits
 * with `synchronous_commit = off` (COMMIT returns once the commit record is in the WAL buffers,
 * without blocking the event loop on the flush), then an asynchronous connection commits a
 * one-xid transaction with synchronous_commit on. PostgreSQL flushes WAL in order, so when that
 * COMMIT returns, every commit record written before it is on disk: the batch's callers are
 * answered then, and batches committed meanwhile share the next barrier.
 */
import { createRequire } from 'node:module';
import type { Client } from 'pg';

/** A barrier slower than this fails its writes (retryable) instead of leaving them unanswered. */
const BARRIER_TIMEOUT_MS = 30_000;

export class CommitBarrier {
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private closed = false;

  constructor(private readonly url: string) {}

  async wait(): Promise<void> {
    const client = await this.connect();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PostgreSQL did not confirm a commit within ${BARRIER_TIMEOUT_MS} ms`)), BARRIER_TIMEOUT_MS);
    });
    try {
      await Promise.race([client.query('BEGIN; SELECT txid_current(); COMMIT'), timeout]);
    } catch (err) {
      // A stuck or broken barrier connection is replaced: the writes waiting on it get a retryable 503.
      if (this.client === client) this.client = undefined;
      void client.end().catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private connect(): Promise<Client> {
    if (this.closed) return Promise.reject(new Error('the database connection is closed'));
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const pg = createRequire(import.meta.url)('pg') as typeof import('pg');
      const client = new pg.Client({ connectionString: this.url, application_name: 'artifact-store commit barrier', keepAlive: true, connectionTimeoutMillis: 10_000 });
      client.on('error', () => {
        // A dropped connection fails the barrier in flight; the next one reconnects.
        if (this.client === client) this.client = undefined;
      });
      try {
        await client.connect();
        await client.query('SET synchronous_commit = on');
      } catch (err) {
        this.connecting = undefined;
        throw err;
      }
      // The barrier never keeps a process alive on its own (CLI commands exit when done).
      (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
      this.client = client;
      this.connecting = undefined;
      return client;
    })();
    return this.connecting;
  }

  close(): void {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    void c?.end().catch(() => {});
  }
}
