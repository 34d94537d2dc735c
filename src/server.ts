/**
 * Builds the running registry from a config: storage driver, metadata DB, app, HTTP server,
 * background sweep, graceful shutdown. main.ts and end-to-end tests both use it.
 */
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import { answerClientErrors } from './http/client-errors.js';
import { Metrics } from './metrics/index.js';
import { createAuth } from './auth/index.js';
import { IdentityStore } from './auth/identity-store.js';
import type { Config } from './config/index.js';
import type { BlobDriver } from './data/driver.js';
import { FsDriver } from './data/fs-driver.js';
import { UploadEngine } from './data/uploads.js';
import { metadataTarget, openDatabase } from './meta/db.js';
import { RegistryStore } from './meta/registry-store.js';
import type { UploadState } from './data/driver.js';

export interface RunningRegistry {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function createDriver(config: Config): Promise<BlobDriver> {
  if (config.storage === 's3') {
    const { S3Driver } = await import('./data/s3-driver.js');
    return new S3Driver({
      endpoint: config.s3Endpoint,
      region: config.s3Region,
      bucket: config.s3Bucket!,
      prefix: config.s3Prefix,
      forcePathStyle: config.s3ForcePathStyle,
      accessKeyId: config.s3AccessKeyId,
      secretAccessKey: config.s3SecretAccessKey,
      partSize: config.s3PartSize,
      redirect: config.s3Redirect,
    });
  }
  return new FsDriver({ root: resolve(config.dataDir), fsync: config.fsync, directIo: config.uploadDirectIo });
}

export async function startRegistry(config: Config, log: Logger): Promise<RunningRegistry> {
  const metrics = new Metrics();
  const driver = metrics.instrument(await createDriver(config));
  const db = openDatabase(metadataTarget(config));
  if (config.databaseUrl && (!config.eventLogSigningKeyFile || (config.auth === 'token' && !config.tokenSigningKeyFile))) {
    // On PostgreSQL the usual deployment is several replicas; keys kept per data dir would differ.
    log.warn(
      'metadata is in PostgreSQL but the signing keys live in this process data dir: replicas must share them (ARTIFACT_STORE_EVENT_LOG_SIGNING_KEY_FILE, ARTIFACT_STORE_TOKEN_SIGNING_KEY_FILE), or a token issued by one is refused by the others',
    );
  }
  const store = new RegistryStore(db);
  const uploads = new UploadEngine(driver);
  let ready = true;
  const auth = await createAuth(config, db);
  const closers: (() => Promise<void> | void)[] = [];
  const startup: Promise<unknown>[] = [];
  const app = createApp({ config, db, store, driver, uploads, log, auth, closers, startup, metrics, isReady: () => ready });
  await Promise.all(startup);

  // Sessions in storage without a row (a crash between the driver's createUpload and the row
  // insert, or a row removed while its bytes stayed): removed once untouched for the TTL.
  const sweepOrphans = async (): Promise<void> => {
    const ids = await driver.listUploads();
    const known = store.knownUploads(ids);
    const cutoff = Date.now() - config.uploadTtlSeconds * 1000;
    for (const id of ids) {
      if (known.has(id)) continue;
      const touched = await driver.uploadTouchedAt(id);
      if (touched === null || touched >= cutoff || store.knownUploads([id]).size > 0) continue;
      await driver.abort(id, { size: 0, driver: {} }).catch((err: unknown) => log.warn({ err, upload: id }, 'sweep: orphan removal failed'));
      log.info({ upload: id }, 'sweep: removed orphaned upload storage');
    }
  };

  // Abandoned upload sessions: drop their bytes and their row.
  const sweep = async (): Promise<void> => {
    for (const row of store.staleUploads(Date.now() - config.uploadTtlSeconds * 1000)) {
      await uploads.abort(row.id, JSON.parse(row.state) as UploadState).catch((err: unknown) => log.warn({ err, upload: row.id }, 'sweep: abort failed'));
      store.deleteUpload(row.id);
      log.info({ upload: row.id, repository: row.repository }, 'sweep: removed stale upload');
    }
    await sweepOrphans();
    const leftovers = await driver.sweep(config.uploadTtlSeconds * 1000);
    if (leftovers > 0) log.info({ leftovers }, 'sweep: removed storage leftovers');
  };
  const sweepTimer = setInterval(() => void sweep().catch((err: unknown) => log.error({ err }, 'sweep failed')), Math.min(config.uploadTtlSeconds, 3600) * 1000);
  sweepTimer.unref();

  const server: ServerType = await new Promise((resolveServer) => {
    // No whole-request deadline (Node's default 300 s would cut off any large blob on a slow
    // link); instead a connection that sends or receives nothing for idleTimeoutMs is dropped.
    // Idle keep-alive connections live 65 s, not Node's 5 s: clients pool connections far longer
    // (Go's transport 90 s, load balancers 60 s), and a PUT or PATCH streamed into a socket the
    // server closed a moment before fails with "socket hang up" — a streamed body cannot be retried.
    const serverOptions = { requestTimeout: 0, headersTimeout: 66_000, keepAliveTimeout: 65_000 };
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host, serverOptions }, () => resolveServer(s));
    s.setTimeout(config.idleTimeoutMs);
    answerClientErrors(s as import('node:http').Server, log);
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: config.host, storage: driver.name, auth: config.auth, dataDir: resolve(config.dataDir) }, 'artifact-store listening');
  if (config.auth === 'token' && new IdentityStore(db).countAdmins() === 0) {
    log.warn('no administrator yet: create one with `npm run cli -- user create <name> --admin --password-stdin` (the password is read from stdin); there is no default password');
  }

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      ready = false;
      clearInterval(sweepTimer);
      // Stop accepting; let in-flight requests finish, but not forever.
      const http = server as import('node:http').Server;
      await new Promise<void>((done) => {
        const timer = setTimeout(() => {
          http.closeAllConnections();
          done();
        }, config.shutdownTimeoutMs);
        // Keep-alive connections go idle as their last response ends: close them as they do.
        const reaper = setInterval(() => http.closeIdleConnections(), 100);
        timer.unref();
        reaper.unref();
        http.close(() => {
          clearTimeout(timer);
          clearInterval(reaper);
          done();
        });
        http.closeIdleConnections();
      });
      for (const close of closers) await close();
      await driver.close();
      db.$client.close();
      log.info('artifact-store stopped');
    },
  };
}
