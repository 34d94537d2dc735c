/**
 * The scanner plug-in interface. A scanner looks at one blob of a pushed manifest as a stream
 * (never buffered whole, capped at `maxBytes`) and returns findings. Scanners run offline: one
 * that needs a database (vulnerabilities, licences) takes it as a local file in its constructor.
 */
export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info';

export interface ScanBlob {
  repository: string;
  /** The manifest whose layer this is (the scan report's subject). */
  manifest: string;
  digest: string;
  mediaType: string;
  size: number;
  /** `org.opencontainers.image.title` of the layer, when given (the file name for oras-style artifacts). */
  fileName: string | null;
}

export interface Finding {
  severity: Severity;
  /** Stable rule id, e.g. `dangerous-global`. */
  rule: string;
  message: string;
  /** The entry inside an archive the finding is about (e.g. `archive/data.pkl`). */
  file?: string;
  /** Byte offset within the (entry's) stream. */
  offset?: number;
}

export interface ScanLimits {
  /** Bytes a scanner may read per blob; the stream ends there (and the report says so). */
  maxBytes: number;
}

export interface Scanner {
  readonly id: string;
  readonly version: string;
  /** Cheap decision from the descriptor alone. */
  wants(blob: Omit<ScanBlob, 'repository' | 'manifest'>): boolean;
  scan(blob: ScanBlob, bytes: AsyncIterable<Uint8Array>, limits: ScanLimits): Promise<Finding[]>;
}

export const SEVERITY_ORDER: Severity[] = ['critical', 'high', 'medium', 'low', 'info'];
