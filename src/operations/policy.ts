/**
 * Namespace policies (PRODUCT.md §9, §11 "Operations"): the document, its glob matchers, and the
 * pure retention selection (which tags a rule set removes), kept free of I/O so it is tested as a table.
 */
import picomatch from 'picomatch';
import { z } from 'zod';

const MAX_GLOB = 256;
const glob = z
  .string()
  .min(1)
  .max(MAX_GLOB)
  // Globs are compiled by picomatch (escaped into a regex); control characters have no use in names.
  .refine((g) => !/[\u0000-\u001f]/.test(g), 'control characters are not allowed');

const retentionRule = z
  .object({
    repositories: glob,
    tags: glob.optional(),
    keepMostRecent: z.number().int().min(0).max(1_000_000).optional(),
    keepPulledWithinDays: z.number().int().min(0).max(36_500).optional(),
  })
  .strict()
  .refine((r) => r.keepMostRecent !== undefined || r.keepPulledWithinDays !== undefined, 'a rule needs keepMostRecent and/or keepPulledWithinDays');

export const policySchema = z
  .object({
    immutableTags: z.array(glob).max(100).default([]),
    retention: z.array(retentionRule).max(100).default([]),
    quotaBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  })
  .strict();

export type NamespacePolicy = z.infer<typeof policySchema>;
export type RetentionRule = NamespacePolicy['retention'][number];

export const EMPTY_POLICY: NamespacePolicy = { immutableTags: [], retention: [], quotaBytes: null };

// No brace or extglob expansion (no combinatorial patterns), `*` also matches leading dots.
const GLOB_OPTIONS: picomatch.PicomatchOptions = { dot: true, nobrace: true, noextglob: true, noglobstar: false, strictSlashes: true };
const cache = new Map<string, (s: string) => boolean>();

/** A compiled glob; repositories: `*` stays within one path component, `**` crosses them. */
export function globMatcher(pattern: string): (s: string) => boolean {
  let m = cache.get(pattern);
  if (!m) {
    m = picomatch(pattern, GLOB_OPTIONS);
    if (cache.size > 10_000) cache.clear();
    cache.set(pattern, m);
  }
  return m;
}

/** The immutable-tag glob that `tag` matches, or undefined. */
export function immutableRuleFor(policy: NamespacePolicy, tag: string): string | undefined {
  return policy.immutableTags.find((g) => globMatcher(g)(tag));
}

/** Referrers-fallback tags (`sha256-<hex>`, cosign `.sig`/`.att`) are bookkeeping: retention never counts them. */
export function isFallbackTag(tag: string): boolean {
  return /^(sha256|sha512|blake3)-[0-9a-f]{32,128}(\.[a-z]+)?$/.test(tag);
}

export interface TagInfo {
  tag: string;
  digest: string;
  /** When the tag was last pointed at its digest (push time, ms). */
  pushedAt: number;
  /** Last pull of the digest (ms), when known. */
  pulledAt?: number;
}

export interface TagVerdict {
  tag: string;
  digest: string;
  keep: boolean;
  reason: string;
}

const DAY_MS = 86_400_000;

/**
 * Which tags of one repository the rules remove. A tag is considered by every rule whose
 * `repositories` glob matches the repository and whose `tags` glob (default `*`) matches the tag;
 * it is kept if any of those rules keeps it (N most recent by push time among the rule's tags,
 * or pulled within D days), or if it is immutable. Tags no rule considers are left alone.
 */
export function selectRetention(policy: NamespacePolicy, repository: string, tags: TagInfo[], now: number): TagVerdict[] {
  const rules = policy.retention.filter((r) => globMatcher(r.repositories)(repository));
  if (rules.length === 0) return [];
  const considered = new Map<string, { info: TagInfo; keptBy: string | null }>();
  rules.forEach((rule, i) => {
    const match = globMatcher(rule.tags ?? '*');
    const mine = tags.filter((t) => !isFallbackTag(t.tag) && match(t.tag));
    // Most recent first; equal times by name so the answer is deterministic.
    mine.sort((a, b) => b.pushedAt - a.pushedAt || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
    mine.forEach((t, rank) => {
      const entry = considered.get(t.tag) ?? { info: t, keptBy: null };
      considered.set(t.tag, entry);
      if (entry.keptBy) return;
      if (rule.keepMostRecent !== undefined && rank < rule.keepMostRecent) entry.keptBy = `retention[${i}]: among the ${rule.keepMostRecent} most recent`;
      else if (rule.keepPulledWithinDays !== undefined && t.pulledAt !== undefined && t.pulledAt >= now - rule.keepPulledWithinDays * DAY_MS) {
        entry.keptBy = `retention[${i}]: pulled within ${rule.keepPulledWithinDays} days`;
      }
    });
  });
  const out: TagVerdict[] = [];
  for (const { info, keptBy } of considered.values()) {
    const immutable = immutableRuleFor(policy, info.tag);
    if (keptBy) out.push({ tag: info.tag, digest: info.digest, keep: true, reason: keptBy });
    else if (immutable) out.push({ tag: info.tag, digest: info.digest, keep: true, reason: `immutable tag rule ${JSON.stringify(immutable)}` });
    else out.push({ tag: info.tag, digest: info.digest, keep: false, reason: 'not kept by any retention rule' });
  }
  return out.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

export function namespaceOf(repository: string): string {
  const i = repository.indexOf('/');
  return i < 0 ? repository : repository.slice(0, i);
}
