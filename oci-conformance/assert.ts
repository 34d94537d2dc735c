// Assertion helpers producing clear "expected vs actual" messages.

import { createHash } from 'node:crypto';
import type { HttpResponse } from './client.js';

/** Thrown by a check to report "not applicable / not supported here" instead of a failure. */
export class Skip extends Error {}

export class CheckFailure extends Error {}

/** Human-readable reason of any thrown value (includes the network cause of fetch failures). */
export function describeError(e: unknown): string {
  if (e instanceof CheckFailure || e instanceof Skip) return e.message;
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    return `${e.name === 'TimeoutError' ? 'request timed out' : e.message}${why}`;
  }
  return String(e);
}

export function fail(message: string): never {
  throw new CheckFailure(message);
}

export function skip(message: string): never {
  throw new Skip(message);
}

export function ensure(cond: unknown, message: string): asserts cond {
  if (!cond) fail(message);
}

export function equal<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 160 ? `${v.slice(0, 160)}…` : v);
  if (v === undefined) return 'undefined';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function errorSummary(res: HttpResponse): string {
  const body = res.text().trim();
  return body ? ` (body ${show(body)})` : '';
}

/** Status must be one of `expected`. */
export function expectStatus(res: HttpResponse, expected: number | number[], what: string): void {
  const list = Array.isArray(expected) ? expected : [expected];
  if (!list.includes(res.status)) {
    fail(`${what}: expected status ${list.join(' or ')}, got ${res.status}${errorSummary(res)}`);
  }
}

/** Header must be present (and equal `value` when given); returns its value. */
export function expectHeader(res: HttpResponse, name: string, what: string, value?: string): string {
  const actual = res.headers.get(name);
  if (actual === null) fail(`${what}: missing ${name} header`);
  if (value !== undefined && actual !== value) fail(`${what}: ${name} expected ${show(value)}, got ${show(actual)}`);
  return actual;
}

/** Value of a header on the final response or, after redirects, on the first response carrying it. */
export function headerAnyHop(res: HttpResponse, name: string): string | null {
  const own = res.headers.get(name);
  if (own !== null) return own;
  for (const hop of res.hops) {
    const v = hop.headers.get(name);
    if (v !== null) return v;
  }
  return null;
}

/** Docker-Content-Digest must be present and equal `digest`. */
export function expectDigestHeader(res: HttpResponse, digest: string, what: string): void {
  const v = headerAnyHop(res, 'docker-content-digest');
  if (v === null) fail(`${what}: missing Docker-Content-Digest header (expected ${digest})`);
  if (v !== digest) fail(`${what}: Docker-Content-Digest expected ${digest}, got ${show(v)}`);
}

/** Body bytes must be exactly `expected` (compares digests and lengths for the message). */
export function expectBody(res: HttpResponse, expected: Uint8Array, what: string): void {
  const a = sha256(res.body);
  const e = sha256(expected);
  if (a !== e) fail(`${what}: body differs: expected ${expected.length} bytes ${e}, got ${res.body.length} bytes ${a}`);
}

export interface RegistryError {
  code: string;
  message?: string;
  detail?: unknown;
}

/**
 * Validates the spec's error envelope {"errors":[{"code","message"?,"detail"?}]}.
 * Returns the errors, or fails with a description of what is wrong.
 */
export function parseErrorEnvelope(res: HttpResponse, what: string): RegistryError[] {
  const body = res.json();
  if (body === undefined) fail(`${what}: error body is not JSON: ${show(res.text())}`);
  const errors = (body as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors) || errors.length === 0) {
    fail(`${what}: error body lacks a non-empty "errors" array: ${show(body)}`);
  }
  for (const e of errors as unknown[]) {
    const o = e as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null) fail(`${what}: error entry is not an object: ${show(e)}`);
    if (typeof o.code !== 'string' || !/^[A-Z_]+$/.test(o.code)) {
      fail(`${what}: error code must be uppercase letters and underscores, got ${show(o.code)}`);
    }
    if (o.message !== undefined && typeof o.message !== 'string') {
      fail(`${what}: error message must be a string, got ${show(o.message)}`);
    }
  }
  return errors as RegistryError[];
}

/**
 * An error response: status in `statuses`. When `codes` is given the body must be the error
 * envelope carrying one of them. Without `codes`, a JSON body (if any) must still be the envelope;
 * HEAD responses have no body and are only checked for status.
 */
export function expectError(
  res: HttpResponse,
  statuses: number | number[],
  codes: string[] | undefined,
  what: string,
  method = 'GET',
): RegistryError[] {
  expectStatus(res, statuses, what);
  if (method === 'HEAD') {
    if (res.body.length > 0) fail(`${what}: HEAD response carries a ${res.body.length}-byte body`);
    return [];
  }
  if (!codes) {
    const looksJson = /json/i.test(res.headers.get('content-type') ?? '') || /^\s*[{[]/.test(res.text());
    return res.body.length > 0 && looksJson ? parseErrorEnvelope(res, what) : [];
  }
  const errors = parseErrorEnvelope(res, what);
  if (!errors.some((e) => codes.includes(e.code))) {
    fail(`${what}: expected error code ${codes.join(' or ')}, got ${errors.map((e) => e.code).join(', ')}`);
  }
  return errors;
}

/** Parses a `Range: 0-<end>` upload progress header; fails on other shapes (e.g. `bytes=`). */
export function expectUploadRange(res: HttpResponse, end: number, what: string): void {
  const v = expectHeader(res, 'Range', what);
  if (!/^0-[0-9]+$/.test(v)) fail(`${what}: Range must look like 0-<end> (no "bytes=" prefix), got ${show(v)}`);
  equal(v, `0-${end}`, `${what}: Range`);
}
