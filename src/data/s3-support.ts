/** Shared by the S3 driver's files: limits, session-state shape, SDK error classification. */
import { DataError, StorageUnavailableError } from './errors.js';

/** What `UploadState.driver` holds for the S3 driver. */
export interface Session {
  partSize: number;
  /** Consecutive full parts, each run written by one append: [nonce, count]. */
  runs: [string, number][];
  /** The bytes after the last full part, one piece per append: [nonce, size]. */
  tail: [string, number][];
}
export interface Source { key: string; size: number }

export const MiB = 1024 * 1024;
export const MIN_PART = 5 * MiB;
export const MAX_PARTS = 9_999; // S3 allows 10 000 parts; the tail may need the last one.
export const MAX_TAIL_PIECES = 16;
const NONCE_RE = /^[0-9a-f]{12}$/;

/** Parts grow by one base size every 1000 parts: 8 MiB parts reach ~430 GiB per blob. */
export const partSizeAt = (base: number, index: number): number => base * (1 + Math.floor(index / 1000));

export const isInt = (v: unknown, min: number): v is number => Number.isSafeInteger(v) && (v as number) >= min;
export const validPairs = (v: unknown, min: number): v is [string, number][] =>
  Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && NONCE_RE.test(p[0]) && isInt(p[1], min));

interface SdkError { name?: string; code?: string; $metadata?: { httpStatusCode?: number } }
export const statusOf = (err: unknown): number | undefined => (err as SdkError)?.$metadata?.httpStatusCode;
export const nameOf = (err: unknown): string => (err as SdkError)?.name ?? '';
/** NoSuchBucket is a misconfiguration, never a missing blob. */
export const isMissing = (err: unknown): boolean => nameOf(err) !== 'NoSuchBucket'
  && (['NoSuchKey', 'NotFound', 'NoSuchUpload'].includes(nameOf(err)) || statusOf(err) === 404);
export const isNotImplemented = (err: unknown): boolean => nameOf(err) === 'NotImplemented' || statusOf(err) === 501;
const TRANSIENT = new Set(['TimeoutError', 'RequestTimeout', 'SlowDown', 'Throttling', 'ThrottlingException',
  'TooManyRequestsException', 'RequestLimitExceeded', 'InternalError', 'ServiceUnavailable',
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);
function isTransient(err: unknown): boolean {
  const status = statusOf(err) ?? 0;
  return status === 429 || (status >= 500 && status !== 501) || TRANSIENT.has(nameOf(err)) || TRANSIENT.has((err as SdkError)?.code ?? '');
}

/** Retries are the SDK's; what still fails transiently becomes StorageUnavailableError. */
export function mapError(err: unknown, missing?: () => Error): unknown {
  if (err instanceof DataError) return err;
  if (missing && isMissing(err)) return missing();
  if (!isTransient(err)) return err;
  const e = new StorageUnavailableError(`S3 unavailable: ${nameOf(err) || 'error'}: ${(err as Error)?.message}`);
  return Object.assign(e, { cause: err });
}

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
