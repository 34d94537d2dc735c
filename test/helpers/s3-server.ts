/**
 * A real S3-compatible server for tests, run as its own child process on 127.0.0.1 with a free
 * port and a temporary directory. Which one:
 *   - S3RVER_MODULE: the path of an s3rver library module (`.../lib/s3rver.js`) started through
 *     its programmatic API, which s3rver 3.x and the maintained @20minutes/s3rver 4.x/5.x share;
 *     S3RVER_NODE may name the node binary to run it with (@20minutes/s3rver 5 needs Node 24);
 *   - else @20minutes/s3rver when installed (4.0.4 runs on Node 20; it implements UploadPartCopy,
 *     so the driver's server-side commit path runs);
 *   - else S3RVER_BIN: an entry point taking s3rver 3.x's flags;
 *   - else s3rver 3.x from node_modules (no UploadPartCopy: the driver's streamed fallback runs).
 * Signature checks are off (allowMismatchedSignatures): the maintained s3rver rejects some valid
 * SigV4 requests of the AWS SDK (ListObjectsV2 with a prefix, DeleteObjects); signing is the SDK's
 * business, not what these tests are about.
 * None implements ListMultipartUploads (see `listsMultipartUploads`).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Whether the server implements UploadPartCopy (s3rver 3.x does not). */
  partCopy: boolean;
  /** No server used here implements ListMultipartUploads: the driver's sweep() stays untested. */
  listsMultipartUploads: false;
  stop(): Promise<void>;
}

const LEGACY_BIN = fileURLToPath(new URL('../../node_modules/s3rver/bin/s3rver.js', import.meta.url));
const MAINTAINED_MODULE = fileURLToPath(new URL('../../node_modules/@20minutes/s3rver/lib/s3rver.js', import.meta.url));

/** The command line (after `node`) that starts the chosen server. */
function serverCommand(dir: string, port: number, bucket: string): { args: string[]; partCopy: boolean } {
  const module = process.env.S3RVER_MODULE ?? (process.env.S3RVER_BIN === undefined && existsSync(MAINTAINED_MODULE) ? MAINTAINED_MODULE : undefined);
  if (module !== undefined) {
    const run = `const S3rver = require(process.argv[1]); const [directory, port, bucket] = process.argv.slice(2);
      new S3rver({ directory, address: '127.0.0.1', port: Number(port), silent: true, allowMismatchedSignatures: true, configureBuckets: [{ name: bucket, configs: [] }] })
        .run().catch((err) => { console.error(err); process.exit(1); });`;
    // Every maintained release (4.x, 5.x) implements UploadPartCopy; 3.x does not.
    const legacy = module.includes('node_modules/s3rver/');
    return { args: ['-e', run, module, dir, String(port), bucket], partCopy: !legacy };
  }
  const bin = process.env.S3RVER_BIN ?? LEGACY_BIN;
  return { args: [bin, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '-s', '--configure-bucket', bucket], partCopy: bin !== LEGACY_BIN };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The registry settings that put its blobs in `s3` (5 MiB parts, prefix `registry`). */
export function registryS3Env(s3: S3Server): Record<string, string> {
  return {
    ARTIFACT_STORE_STORAGE: 's3',
    ARTIFACT_STORE_S3_ENDPOINT: s3.endpoint,
    ARTIFACT_STORE_S3_BUCKET: s3.bucket,
    ARTIFACT_STORE_S3_REGION: 'us-east-1',
    ARTIFACT_STORE_S3_ACCESS_KEY_ID: s3.accessKeyId,
    ARTIFACT_STORE_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    ARTIFACT_STORE_S3_FORCE_PATH_STYLE: 'true',
    ARTIFACT_STORE_S3_PREFIX: 'registry',
    ARTIFACT_STORE_S3_PART_SIZE: String(5 * 1024 * 1024),
  };
}

export async function startS3Server(): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const port = await freePort();
  const bucket = 'artifact-store-test';
  const command = serverCommand(dir, port, bucket);
  const child = spawn(process.env.S3RVER_NODE ?? process.execPath, command.args, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`s3rver exited with ${child.exitCode}: ${stderr}`);
    }
    try {
      // Any HTTP answer (even 403 for an anonymous request) means it listens; buckets exist by then.
      await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1_000) });
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`s3rver did not answer on ${endpoint}: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { endpoint, bucket, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', partCopy: command.partCopy, listsMultipartUploads: false, stop };
}
