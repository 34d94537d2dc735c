/**
 * Repository name and tag grammar from the distribution spec ("Pulling manifests"):
 *   name: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 *   tag:  [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 * Because every path component must start and end with [a-z0-9], `.`, `..` and empty
 * components (`//`) can never form a valid name, so a name can never escape its repository.
 */
import { ociError } from '../errors/catalogue.js';

const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Registries commonly cap the name; 255 keeps `<host>/<name>` under docker's 255-char reference limit. */
export const MAX_NAME_LENGTH = 255;

/**
 * The registry families' reserved namespace (PRODUCT.md §3, §11). Its leading `_` is outside the
 * grammar on purpose (no ordinary name can take it), so it is accepted here by name; and since
 * docker-reference clients (skopeo, docker, oras) cannot parse a leading `_`, `/v2/` also answers
 * for it as `registry/…` (`registry` is a reserved principal name: nobody owns that namespace).
 */
const RESERVED_PREFIX = '_registry/';
const RESERVED_ALIAS = 'registry/';

/** The repository a valid name stands for: `registry/…` is the alias of `_registry/…`. */
export const canonicalName = (name: string): string => (name.startsWith(RESERVED_ALIAS) ? `_${name}` : name);

export const isValidName = (name: string): boolean =>
  name.length <= MAX_NAME_LENGTH && (NAME_RE.test(name) || (name.startsWith(RESERVED_PREFIX) && NAME_RE.test(name.slice(1))));
export const isValidTag = (tag: string): boolean => TAG_RE.test(tag);

export function assertName(name: string): string {
  if (!isValidName(name)) throw ociError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  return canonicalName(name);
}

export function assertTag(tag: string): string {
  if (!isValidTag(tag)) throw ociError('MANIFEST_INVALID', 'invalid tag', { detail: { tag } });
  return tag;
}
