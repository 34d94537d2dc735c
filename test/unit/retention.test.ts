/** Retention selection (src/operations/policy.ts) as a table of cases, plus policy validation. */
import { describe, expect, it } from 'vitest';
import { EMPTY_POLICY, immutableRuleFor, policySchema, selectRetention, type NamespacePolicy, type TagInfo } from '../../src/operations/policy.js';

const DAY = 86_400_000;
const NOW = 1_000 * DAY;
const t = (tag: string, ageDays: number, pulledDaysAgo?: number, digest = `sha256:${tag}`): TagInfo => ({
  tag,
  digest,
  pushedAt: NOW - ageDays * DAY,
  ...(pulledDaysAgo !== undefined ? { pulledAt: NOW - pulledDaysAgo * DAY } : {}),
});
const policy = (p: Partial<NamespacePolicy>): NamespacePolicy => ({ ...EMPTY_POLICY, ...p });

const TAGS = [t('v1', 5), t('v2', 4), t('v3', 3), t('latest', 1), t('dev-a', 10, 2), t('dev-b', 9), t('sha256-0123456789abcdef0123456789abcdef.sig', 20)];

const cases: { name: string; policy: NamespacePolicy; repo?: string; tags?: TagInfo[]; removed: string[] }[] = [
  { name: 'no rules: nothing removed', policy: policy({}), removed: [] },
  { name: 'keep 2 most recent of every tag', policy: policy({ retention: [{ repositories: 'team/**', keepMostRecent: 2 }] }), removed: ['dev-a', 'dev-b', 'v1', 'v2'] },
  { name: 'rule for another repository pattern', policy: policy({ retention: [{ repositories: 'other/*', keepMostRecent: 0 }] }), removed: [] },
  { name: '`*` does not cross a slash', policy: policy({ retention: [{ repositories: 'team/*', keepMostRecent: 0 }] }), repo: 'team/app/sub', removed: [] },
  { name: 'tag pattern limits the rule', policy: policy({ retention: [{ repositories: '**', tags: 'v*', keepMostRecent: 1 }] }), removed: ['v1', 'v2'] },
  { name: 'keep 0 of dev-*', policy: policy({ retention: [{ repositories: '**', tags: 'dev-*', keepMostRecent: 0 }] }), removed: ['dev-a', 'dev-b'] },
  { name: 'pulled within 7 days keeps dev-a', policy: policy({ retention: [{ repositories: '**', tags: 'dev-*', keepPulledWithinDays: 7 }] }), removed: ['dev-b'] },
  { name: 'pulled too long ago', policy: policy({ retention: [{ repositories: '**', tags: 'dev-*', keepPulledWithinDays: 1 }] }), removed: ['dev-a', 'dev-b'] },
  {
    name: 'either rule keeping a tag keeps it',
    policy: policy({ retention: [{ repositories: '**', keepMostRecent: 1 }, { repositories: '**', tags: 'v*', keepMostRecent: 2 }] }),
    removed: ['dev-a', 'dev-b', 'v1'],
  },
  { name: 'immutable tags are never removed', policy: policy({ immutableTags: ['v*'], retention: [{ repositories: '**', keepMostRecent: 0 }] }), removed: ['dev-a', 'dev-b', 'latest'] },
  { name: 'referrer fallback tags are not counted nor removed', policy: policy({ retention: [{ repositories: '**', keepMostRecent: 0 }] }), removed: ['dev-a', 'dev-b', 'latest', 'v1', 'v2', 'v3'] },
  {
    name: 'equal push times: name order decides',
    policy: policy({ retention: [{ repositories: '**', keepMostRecent: 1 }] }),
    tags: [t('b', 1), t('a', 1), t('c', 1)],
    removed: ['b', 'c'],
  },
];

describe('selectRetention', () => {
  it.each(cases)('$name', ({ policy: p, repo, tags, removed }) => {
    const verdicts = selectRetention(p, repo ?? 'team/app', tags ?? TAGS, NOW);
    expect(verdicts.filter((v) => !v.keep).map((v) => v.tag).sort()).toEqual([...removed].sort());
    for (const v of verdicts) expect(v.reason.length).toBeGreaterThan(0);
  });
});

describe('policy document', () => {
  it('accepts the §11 shape and defaults missing lists', () => {
    const p = policySchema.parse({ retention: [{ repositories: 'app/*', tags: 'v*', keepMostRecent: 3 }], quotaBytes: 10 });
    expect(p.immutableTags).toEqual([]);
    expect(p.retention[0]!.keepMostRecent).toBe(3);
  });
  it.each([
    [{ immutableTags: [''] }],
    [{ immutableTags: ['a'.repeat(300)] }],
    [{ retention: [{ repositories: '**' }] }],
    [{ retention: [{ repositories: '**', keepMostRecent: -1 }] }],
    [{ quotaBytes: -5 }],
    [{ quotaBytes: 1.5 }],
    [{ unknown: true }],
  ])('refuses %j', (doc) => {
    expect(policySchema.safeParse(doc).success).toBe(false);
  });
  it('immutable globs: no brace expansion, dots matched', () => {
    const p = policy({ immutableTags: ['v*', 'release-{a,b}'] });
    expect(immutableRuleFor(p, 'v1.2.3')).toBe('v*');
    expect(immutableRuleFor(p, 'release-a')).toBeUndefined();
    expect(immutableRuleFor(p, 'latest')).toBeUndefined();
  });
});
