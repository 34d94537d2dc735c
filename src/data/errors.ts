/** Data-plane errors. They carry no HTTP meaning; the HTTP edge maps them to OCI codes in one place. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
export class BlobNotFoundError extends DataError {}
export class UploadNotFoundError extends DataError {}
/**
 * The session's storage is no longer the one this state was written for: another request took
 * the session over after this one's lease ran out (see BlobDriver.fenceUpload). Retryable: the
 * client checks the session's status and resumes from there.
 */
export class UploadTakenOverError extends DataError {}
export class DigestMismatchError extends DataError {
  constructor(readonly expected: string, readonly actual: string) {
    super(`digest mismatch: expected ${expected}, computed ${actual}`);
  }
}
export class SizeMismatchError extends DataError {
  constructor(readonly expected: number, readonly actual: number) {
    super(`size mismatch: expected ${expected} bytes, received ${actual}`);
  }
}
/** The backing store failed in a way that retrying may fix (throttling, network). */
export class StorageUnavailableError extends DataError {}
