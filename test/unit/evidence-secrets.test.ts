/** The secrets scanner: which layers it looks at, what it finds, and that it never echoes a secret. */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanTextStream, SecretsScanner } from '../../src/evidence/scanning/secrets.js';

async function* chunks(b: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const awsId = 'AKIA' + 'Q3EXAMPLE7KEY4ID'.toUpperCase().slice(0, 16);
const awsSecret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('secrets scanner', () => {
  it('finds a private key and AWS credentials, naming kind and offset but not the secret', async () => {
    const text = Buffer.from(`# deploy\nkey: |\n${pem}\n[default]\naws_access_key_id = ${awsId}\naws_secret_access_key = ${awsSecret}\n`);
    const f = await scanTextStream(chunks(text, 1 << 16));
    expect(f.map((x) => x.rule).sort()).toEqual(['aws-access-key-id', 'aws-secret-access-key', 'private-key']);
    for (const x of f) {
      expect(x.message).not.toContain(awsSecret);
      expect(x.message).not.toContain(awsId);
      expect(text.toString('latin1').slice(x.offset!)).toMatch(/^(-----BEGIN|AKIA|aws_secret)/);
    }
  });

  it('finds a secret split across chunk boundaries exactly once, whatever the chunking (property)', async () => {
    const text = Buffer.concat([Buffer.alloc(3000, 0x61), Buffer.from(` ghp_${'A1b2C3d4'.repeat(5)} `), Buffer.alloc(3000, 0x62)]);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 700 }), async (size) => {
        const f = await scanTextStream(chunks(text, size));
        expect(f).toEqual([expect.objectContaining({ rule: 'github-token', offset: 3001 })]);
      }),
      { numRuns: 60 },
    );
  });

  it('clean text has no findings; many secrets are capped', async () => {
    expect(await scanTextStream(chunks(Buffer.from('hello world\n'.repeat(1000)), 4096))).toEqual([]);
    const many = Buffer.from(Array.from({ length: 300 }, (_, i) => `AKIA${String(i).padStart(16, '0')}`).join('\n'));
    const f = await scanTextStream(chunks(many, 1000));
    expect(f).toHaveLength(101);
    expect(f[100]!.rule).toBe('too-many-findings');
  });

  it('looks at text files, not at image layers, configs or signatures', () => {
    const s = new SecretsScanner();
    const blob = (mediaType: string, fileName: string | null = null) => ({ digest: 'sha256:x', mediaType, size: 1, fileName });
    expect(s.wants(blob('application/octet-stream', 'prod.env'))).toBe(true);
    expect(s.wants(blob('text/plain'))).toBe(true);
    expect(s.wants(blob('application/x-pem-file'))).toBe(true);
    expect(s.wants(blob('application/vnd.oci.image.layer.v1.tar+gzip', 'rootfs.json'))).toBe(false);
    expect(s.wants(blob('application/vnd.dev.cosign.simplesigning.v1+json'))).toBe(false);
    expect(s.wants(blob('application/vnd.onnx.model', 'model.onnx'))).toBe(false);
  });
});
