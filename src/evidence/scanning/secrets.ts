/**
 * Secrets scanner: private keys and cloud credentials in text files pushed as artifact layers
 * (configs, notebooks, env files). Streams each blob through fixed, linear-time patterns with a
 * small overlap between chunks; findings name the kind and offset, never the secret itself.
 * Image filesystem layers (tar) are not unpacked: it looks at file-like layers only.
 */
import type { Finding, ScanBlob, Scanner, ScanLimits } from './scanner.js';

interface Rule {
  id: string;
  severity: Finding['severity'];
  what: string;
  pattern: RegExp;
}

// Each pattern is a literal prefix plus bounded character classes: no nesting, no backtracking blow-up.
const RULES: Rule[] = [
  { id: 'private-key', severity: 'critical', what: 'a PEM private key', pattern: /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/g },
  { id: 'aws-access-key-id', severity: 'high', what: 'an AWS access key id', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { id: 'aws-secret-access-key', severity: 'critical', what: 'an AWS secret access key', pattern: /aws_secret_access_key["']?\s{0,8}[:=]\s{0,8}["']?[A-Za-z0-9/+=]{40}/gi },
  { id: 'github-token', severity: 'high', what: 'a GitHub token', pattern: /\bgh[pousr]_[A-Za-z0-9]{36,255}\b/g },
  { id: 'slack-token', severity: 'high', what: 'a Slack token', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,200}/g },
  { id: 'azure-storage-key', severity: 'high', what: 'an Azure storage account key', pattern: /AccountKey=[A-Za-z0-9+/=]{80,100}/g },
  { id: 'gcp-service-account', severity: 'high', what: 'a Google service account key file', pattern: /"type"\s{0,8}:\s{0,8}"service_account"/g },
];

/** Longest match any rule can make, so a secret split across two chunks is still seen whole. */
const OVERLAP = 512;
const MAX_FINDINGS = 100;
/** Media types of text files. Structured OCI media types (`…+json` signatures, configs) are not listed on purpose. */
const TEXT_MEDIA = new Set(['application/x-pem-file', 'application/x-sh', 'application/x-yaml', 'application/yaml', 'application/toml', 'application/x-ipynb+json', 'application/x-python']);
const TEXT_NAMES = ['.env', '.txt', '.json', '.yaml', '.yml', '.toml', '.ini', '.cfg', '.conf', '.properties', '.pem', '.key', '.py', '.sh', '.ipynb', '.xml', '.tf', '.tfvars', 'id_rsa', 'id_ed25519', 'credentials', '.npmrc', '.netrc'];

export async function scanTextStream(bytes: AsyncIterable<Uint8Array>): Promise<Finding[]> {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  let tail = '';
  let tailStart = 0;
  for await (const chunk of bytes) {
    // latin1 maps bytes 1:1 to characters, so string offsets are byte offsets.
    const window = tail + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    for (const rule of RULES) {
      rule.pattern.lastIndex = 0;
      for (let m = rule.pattern.exec(window); m; m = rule.pattern.exec(window)) {
        const offset = tailStart + m.index;
        const key = `${rule.id}@${offset}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (findings.length >= MAX_FINDINGS) return [...findings, { severity: 'info', rule: 'too-many-findings', message: `more than ${MAX_FINDINGS} findings; the rest are not listed` }];
        findings.push({ severity: rule.severity, rule: rule.id, message: `${rule.what} (${m[0].slice(0, 4)}…, ${m[0].length} characters)`, offset });
      }
    }
    const keep = Math.min(OVERLAP, window.length);
    tailStart += window.length - keep;
    tail = window.slice(window.length - keep);
  }
  return findings;
}

export class SecretsScanner implements Scanner {
  readonly id = 'secrets';
  readonly version = '1';

  wants(blob: Omit<ScanBlob, 'repository' | 'manifest'>): boolean {
    const name = blob.fileName?.toLowerCase() ?? '';
    const media = blob.mediaType.toLowerCase();
    if (media.includes('tar') || media.includes('gzip') || media.includes('zstd')) return false;
    return TEXT_NAMES.some((n) => name.endsWith(n)) || media.startsWith('text/') || TEXT_MEDIA.has(media);
  }

  scan(_blob: ScanBlob, bytes: AsyncIterable<Uint8Array>, _limits: ScanLimits): Promise<Finding[]> {
    return scanTextStream(bytes);
  }
}
