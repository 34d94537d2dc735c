/**
 * The one error catalogue. OCI codes come from the distribution spec's error table
 * (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes);
 * every error the API emits is an AppError rendered by one function at the HTTP edge.
 */
export const OCI_ERRORS = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Not in the spec's table: used only outside /v2/ (management API, storage outages).
  CONFLICT: { status: 409, message: 'conflict' },
  NOT_FOUND: { status: 404, message: 'not found' },
  INTERNAL: { status: 500, message: 'internal error' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  // Product codes (PRODUCT.md §8, §11): governance endpoints; their bodies carry `retryable`.
  INVALID_PAYLOAD: { status: 400, message: 'invalid payload', retryable: false },
  GATE_NOT_PASS: { status: 422, message: 'no PASS gate receipt refers to this digest', retryable: false },
  UNKNOWN_BUNDLE: { status: 404, message: 'unknown bundle', retryable: false },
  INVALID_TRANSITION: { status: 409, message: 'transition not allowed', retryable: false },
  INCOMPATIBLE: { status: 422, message: 'incompatible with the platform feature groups', retryable: false },
  UNTRUSTED: { status: 403, message: 'not trusted under the namespace trust policy', retryable: false },
} as const satisfies Record<string, { status: number; message: string; retryable?: boolean }>;

export type ErrorCode = keyof typeof OCI_ERRORS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. Range on 416, Retry-After on 429). */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message?: string, opts: { detail?: unknown; status?: number; headers?: Record<string, string> } = {}) {
    super(message ?? OCI_ERRORS[code].message);
    this.name = 'AppError';
    this.code = code;
    this.status = opts.status ?? OCI_ERRORS[code].status;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }

  /**
   * The /v2/ envelope. Governance endpoints (`/api/v1/…`) add `retryable` to every error so
   * scripts know whether to try again; OCI clients ignore the extra field.
   */
  toBody(withRetryable = false): { errors: { code: string; message: string; detail?: unknown; retryable?: boolean }[] } {
    const e: { code: string; message: string; detail?: unknown; retryable?: boolean } = { code: this.code, message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    if (withRetryable) e.retryable = this.retryable;
    return { errors: [e] };
  }

  /** Worth retrying unchanged: rate limits, outages and internal errors; never a refusal. */
  get retryable(): boolean {
    return this.code === 'TOOMANYREQUESTS' || this.code === 'UNAVAILABLE' || this.code === 'INTERNAL';
  }
}

export const ociError = (code: ErrorCode, message?: string, opts?: ConstructorParameters<typeof AppError>[2]): AppError =>
  new AppError(code, message, opts);
