/**
 * Search latency with 100k indexed manifests (issue #16 asks p99 under 20 ms). Measures the
 * query path (SearchStore: FTS5 match, filters, facets, visibility) in-process and over HTTP,
 * and reports p50/p99; asserts correctness and only a loose bound (shared CI machines vary).
 * SEARCH_BENCH_DOCS overrides the corpus size.
 */
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../src/auth/capabilities.js';
import { openDatabase, type Db } from '../../src/meta/db.js';
import { parseSearchQuery } from '../../src/search/query.js';
import { SearchStore } from '../../src/search/store.js';
import { removeDir } from '../../test/helpers/registry.js';

const DOCS = Number(process.env.SEARCH_BENCH_DOCS ?? 100_000);
const REPOS = Math.max(1, Math.floor(DOCS / 5));
/** Runs per query shape: p99 is the 99th percentile of these (the 2nd-worst of 200). */
const RUNS = Number(process.env.SEARCH_BENCH_RUNS ?? 200);
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];

let dir: string;
let db: Db;
let search: SearchStore;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'as-search-bench-'));
  db = openDatabase(join(dir, 'metadata.db'));
  const s = db.$client;
  const started = Date.now();
  const addRepo = s.prepare('INSERT INTO repositories(name) VALUES (?)');
  const addManifest = s.prepare('INSERT INTO manifests(repository_id, digest, media_type, payload, size, artifact_type, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const addTag = s.prepare('INSERT INTO tags(repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)');
  const payload = Buffer.from('{}');
  s.transaction(() => {
    for (let r = 1; r <= REPOS; r++) addRepo.run(`ns${r % 200}/${WORDS[r % WORDS.length]}-service-${r}`);
    for (let i = 0; i < DOCS; i++) {
      const repo = (i % REPOS) + 1;
      const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
      const title = `${WORDS[i % 16]} ${WORDS[(i >> 4) % 16]} ${WORDS[(i >> 8) % 16]} component ${i}`;
      const annotations = JSON.stringify({ 'org.opencontainers.image.title': title, 'org.opencontainers.image.licenses': i % 3 === 0 ? 'MIT' : 'Apache-2.0' });
      addManifest.run(repo, digest, 'application/vnd.oci.image.manifest.v1+json', payload, 1000 + i, i % 10 === 0 ? 'application/vnd.example.model.v1' : null, annotations, 1_700_000_000_000 + i);
      addTag.run(repo, `v${Math.floor(i / REPOS)}`, digest, 1_700_000_000_000 + i);
    }
  })();
  console.log(`search bench: indexed ${DOCS} manifests in ${REPOS} repositories in ${Date.now() - started} ms (triggers included)`);
  search = new SearchStore(db);
}, 600_000);

afterAll(() => {
  db?.$client.close();
  if (dir) removeDir(dir);
});

describe(`search over ${DOCS} manifests`, () => {
  it('answers the query mix; reports p50/p99 per query', () => {
    const anonymous = { principal: null, actor: 'anonymous', bucket: 'ip:x' };
    // Every 7th repository public: anonymous callers see a subset.
    db.$client.prepare("INSERT INTO repository_visibility(name, visibility) SELECT name, 'public' FROM repositories WHERE id % 7 = 0").run();
    const everyone = null;
    const anon = (repository: string, isPublic: boolean) => decide(anonymous, { kind: 'repository', repository, action: 'pull' }, () => isPublic).allowed;
    // As production asks (src/search/index.ts searchAs): a signed-in user through decide() too, and
    // the cheap SQL superset of what the caller may pull (public, or the user's namespaces).
    const member = { principal: { id: 1, name: 'ns7', isAdmin: false, roles: new Map() }, actor: 'ns7', bucket: 'user:1' };
    const user = (repository: string, isPublic: boolean) => decide(member, { kind: 'repository', repository, action: 'pull' }, () => isPublic).allowed;
    // Exact for both (capabilities.ts catalogScope): counted in SQL, the evaluator judges returned rows.
    const superset = new Map<unknown, { namespaces: string[]; exact: boolean }>([[anon, { namespaces: [], exact: true }], [user, { namespaces: ['ns7'], exact: true }]]);
    const cases: [string, string, typeof anon | null][] = [
      ['rare word (1 doc)', 'q=component+4242', everyone],
      ['common word', 'q=alpha', everyone],
      ['two words', 'q=alpha+bravo', everyone],
      ['prefix', 'q=nov', everyone],
      ['word + namespace', 'q=delta&namespace=ns7', everyone],
      ['type filter', 'type=application/vnd.example.model.v1', everyone],
      ['annotation filter', 'q=echo&annotation.org.opencontainers.image.licenses=MIT', everyone],
      ['browse newest (no q)', '', everyone],
      ['page 50', 'q=alpha&page=50', everyone],
      ['anonymous, word', 'q=alpha', anon],
      ['anonymous, browse', '', anon],
      ['anonymous, two words', 'q=alpha+bravo', anon],
      ['anonymous, type filter', 'type=application/vnd.example.model.v1', anon],
      ['user ns7, word', 'q=alpha', user],
      ['user ns7, browse', '', user],
      ['user ns7, type filter', 'type=application/vnd.example.model.v1', user],
      ['anonymous, rare word', 'q=component+4242', anon],
    ];
    const report: string[] = [];
    let worstP99 = 0;
    for (const [label, qs, who] of cases) {
      const query = parseSearchQuery(new URLSearchParams(qs));
      const readable = who ? superset.get(who) : undefined;
      const first = search.search(query, who, readable);
      expect(first.total, label).toBeGreaterThan(0);
      // Wall time, and the CPU time this process used (on a shared machine the difference is
      // time spent waiting for a core: the load, not the query).
      const times: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        search.search(query, who, readable);
        times.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
      }
      times.sort((a, b) => a - b);
      cpu.sort((a, b) => a - b);
      const p99 = percentile(times, 99);
      worstP99 = Math.max(worstP99, p99);
      report.push(
        `${label.padEnd(26)} total=${String(first.total).padStart(6)}${first.totalExact ? ' ' : '+'}  p50=${percentile(times, 50).toFixed(1)} ms  p99=${p99.toFixed(1)} ms  (cpu p50=${percentile(cpu, 50).toFixed(1)} p99=${percentile(cpu, 99).toFixed(1)})`,
      );
    }
    console.log(`search bench (${DOCS} manifests, ${RUNS} runs each, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}):\n${report.join('\n')}`);
    const titles = search.search(parseSearchQuery(new URLSearchParams('q=component+4242&per_page=100')), null).results.map((h) => h.annotations['org.opencontainers.image.title']!);
    expect(titles.some((t) => t.endsWith(' component 4242'))).toBe(true);
    expect(worstP99).toBeLessThan(5_000); // a sanity bound only; the numbers are in the report
  }, 600_000);
});
