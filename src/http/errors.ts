/** The single mapping from any thrown error to the spec's JSON error envelope. */
import type { Context } from 'hono';
import { AppError, ociError } from '../errors/catalogue.js';
import { BlobNotFoundError, DigestMismatchError, SizeMismatchError, StorageUnavailableError, UploadNotFoundError, UploadTakenOverError } from '../data/errors.js';
import { UploadTooLargeError } from '../data/uploads.js';
import type { AppEnv } from './env.js';

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof DigestMismatchError) return ociError('DIGEST_INVALID', err.message, { detail: { expected: err.expected, actual: err.actual } });
  if (err instanceof SizeMismatchError) return ociError('SIZE_INVALID', err.message, { detail: { expected: err.expected, actual: err.actual } });
  if (err instanceof BlobNotFoundError) return ociError('BLOB_UNKNOWN', 'blob content is missing from storage');
  if (err instanceof UploadNotFoundError) return ociError('BLOB_UPLOAD_UNKNOWN');
  if (err instanceof UploadTakenOverError) return ociError('UNAVAILABLE', 'the upload session was taken over by another request; check its status and resume', { headers: { 'Retry-After': '1' } });
  if (err instanceof UploadTooLargeError) return ociError('SIZE_INVALID', `${err.message}: this registry's maxBlobSize (ARTIFACT_STORE_MAX_BLOB_SIZE)`, { status: 413 });
  if (err instanceof StorageUnavailableError) return ociError('UNAVAILABLE', 'storage temporarily unavailable', { headers: { 'Retry-After': '1' } });
  if (isClientAbort(err)) return ociError('BLOB_UPLOAD_INVALID', 'request body ended early');
  if (isDatabaseUnavailable(err)) return ociError('UNAVAILABLE', 'metadata database busy or unreachable: retry', { headers: { 'Retry-After': '1' } });
  return ociError('INTERNAL');
}

/**
 * The metadata database could not take the request now: the write lock stayed held past its
 * timeout (SQLITE_BUSY; on PostgreSQL also a lock timeout or serialisation failure, mapped to
 * it), or PostgreSQL is unreachable, restarting or out of resources (SQLSTATE classes 08, 53,
 * 57P0x). Retryable.
 */
function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('PG_08') || code.startsWith('PG_57P0') || code === 'PG_57014' || code.startsWith('PG_53'));
}

/** The client went away or the body stream broke: not our fault, not a 500. */
function isClientAbort(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ABORT_ERR' || (err as Error | undefined)?.name === 'AbortError';
}

export function errorResponse(c: Context<AppEnv>, err: unknown): Response {
  const appErr = toAppError(err);
  const log = c.get('log');
  if (appErr.status >= 500) log?.error({ err }, 'request failed');
  else if (!(err instanceof AppError)) log?.info({ code: appErr.code, msg: (err as Error).message }, 'request rejected');
  const headers: Record<string, string> = { ...appErr.headers, 'Content-Type': 'application/json' };
  delete headers['Content-Length']; // extra headers may come from a success template
  // HEAD responses carry no body, only the status and headers.
  const body = c.req.method === 'HEAD' ? null : JSON.stringify(appErr.toBody(c.req.path.startsWith('/api/')));
  return new Response(body, { status: appErr.status, headers });
}
