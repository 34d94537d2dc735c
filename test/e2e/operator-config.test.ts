/** Configuration problems name the file key, the env var, the bad value and where it was set; typos in env names are reported. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, unknownEnvironmentVariables } from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'as-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const problem = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
};

describe('config problems', () => {
  it('an env value: names the key, the variable, the value and what is accepted', () => {
    const msg = problem({ ARTIFACT_STORE_FSYNC: 'maybe' });
    expect(msg).toContain('fsync (file key "fsync" / env ARTIFACT_STORE_FSYNC) = "maybe", set in the environment: expected true, false, 1, 0, yes or no');
  });

  it('a file value is reported as set in the file, not the environment', () => {
    const file = join(dir, 'a.yaml');
    writeFileSync(file, 's3PartSize: -5\nlogLevel: loud\n');
    const msg = problem({ ARTIFACT_STORE_CONFIG: file });
    expect(msg).toMatch(new RegExp(`s3PartSize \\(file key "s3PartSize" / env ARTIFACT_STORE_S3_PART_SIZE\\) = -5, set in config file ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    expect(msg).toMatch(/logLevel .* = "loud", set in config file .*: .*"silent"/);
    expect(msg.split('\n')).toHaveLength(3); // a heading and one line per problem
  });

  it('an unknown key in the file is named, not reported as (root)', () => {
    const file = join(dir, 'b.yaml');
    writeFileSync(file, 'dataDirectory: /srv\n');
    const msg = problem({ ARTIFACT_STORE_CONFIG: file });
    expect(msg).toContain(`config file ${file}: unknown setting "dataDirectory"`);
    expect(msg).not.toContain('(root)');
  });

  it('storage=s3 without a bucket names both spellings of the bucket setting', () => {
    expect(problem({ ARTIFACT_STORE_STORAGE: 's3' })).toMatch(/s3Bucket.*ARTIFACT_STORE_S3_BUCKET/);
  });
});

describe('unknown ARTIFACT_STORE_* variables', () => {
  it('are listed (with a suggestion when close to a real one); known ones and other variables are not', () => {
    const warnings = unknownEnvironmentVariables({ ARTIFACT_STORE_DATADIR: '/x', ARTIFACT_STORE_PORT: '1', ARTIFACT_STORE_CONFIG: 'c.yaml', ARTIFACT_STORE_BANANA: '1', HOME: '/root' });
    expect(warnings).toEqual(['ARTIFACT_STORE_BANANA is not a setting and is ignored', 'ARTIFACT_STORE_DATADIR is not a setting and is ignored (did you mean ARTIFACT_STORE_DATA_DIR?)']);
    // A warning, not a failure: the configuration still loads.
    expect(loadConfig({ ARTIFACT_STORE_BANANA: '1' }).port).toBe(5000);
  });
});

describe('the server at start', () => {
  it('logs a warning line for a misspelled ARTIFACT_STORE_* variable and still starts', async () => {
    const { spawn } = await import('node:child_process');
    const dataDir = mkdtempSync(join(tmpdir(), 'as-warn-'));
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, ARTIFACT_STORE_PORT: '0', ARTIFACT_STORE_HOST: '127.0.0.1', ARTIFACT_STORE_DATA_DIR: dataDir, ARTIFACT_STORE_AUTH: 'none', ARTIFACT_STORE_LOG_LEVEL: 'info', ARTIFACT_STORE_FSYNCC: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!/listening|"port"/.test(out) && proc.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(lines.find((l) => l.msg.includes('ARTIFACT_STORE_FSYNCC'))).toMatchObject({ level: 40, msg: 'ARTIFACT_STORE_FSYNCC is not a setting and is ignored (did you mean ARTIFACT_STORE_FSYNC?)' });
      expect(proc.exitCode).toBeNull(); // a warning, not a refusal
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
