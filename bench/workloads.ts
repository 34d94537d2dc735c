// Workloads. Each returns one sample per metric per (target, round).
// Setup (untimed) runs once per target; data seeds include the round number so
// no round pushes bytes the registry already holds.

import { performance } from "node:perf_hooks";
import { BlobSource, GiB, KiB, MiB, MT_OCI_MANIFEST, formatBytes, imageManifest, sha256, type Descriptor } from "./data.js";
import { header, pool } from "./http.js";
import {
  SMALL_TIMEOUT, checkDigestHeader, expect, manifestBase, pullBlob, pushChunked, pushMonolithic, putManifest, verifyBlob,
} from "./oci.js";
import { latencySummary, type MetricDef } from "./stats.js";
import { RssSampler, machineCpuSeconds, processCpuSplit, type RssReport, type RunningTarget } from "./targets.js";

export interface Sizes {
  bigBlob: number;
  patchChunk: number;
  smallCount: number;
  smallSize: number;
  concurrency: number;
  pullStreams: number;
  headCount: number;
  manifestPutCount: number;
  manifestGet: Array<{ concurrency: number; count: number }>;
  tagCount: number;
  tagPage: number;
  tagListReps: number;
  memBig: number;
  memSmall: number;
  /** Upper bound on each request-rate measurement (ms); rps = completed / elapsed. */
  rpsCapMs: number;
}

export function sizes(quick: boolean): Sizes {
  return quick
    ? {
        bigBlob: 256 * MiB, patchChunk: 16 * MiB, smallCount: 500, smallSize: 4 * KiB, concurrency: 16,
        pullStreams: 4, headCount: 5_000, manifestPutCount: 500,
        manifestGet: [{ concurrency: 1, count: 1_000 }, { concurrency: 16, count: 4_000 }, { concurrency: 64, count: 4_000 }],
        tagCount: 2_000, tagPage: 1000, tagListReps: 3, memBig: 1 * GiB, memSmall: 256 * MiB, rpsCapMs: 2_000,
      }
    : {
        bigBlob: 1 * GiB, patchChunk: 16 * MiB, smallCount: 2_000, smallSize: 4 * KiB, concurrency: 16,
        pullStreams: 4, headCount: 20_000, manifestPutCount: 2_000,
        manifestGet: [{ concurrency: 1, count: 5_000 }, { concurrency: 16, count: 20_000 }, { concurrency: 64, count: 20_000 }],
        tagCount: 10_000, tagPage: 1000, tagListReps: 5, memBig: 4 * GiB, memSmall: 1 * GiB, rpsCapMs: 6_000,
      };
}

export interface Ctx {
  t: RunningTarget;
  s: Sizes;
  log: (msg: string) => void;
  /** Per-target state created by setup. */
  state: Map<string, unknown>;
}

export type Sample = Record<string, number>;

export interface Workload {
  name: string;
  metrics: MetricDef[];
  /** Fixed round count (e.g. memory), else the run's default. */
  rounds?: number;
  setup?(c: Ctx): Promise<void>;
  run(c: Ctx, round: number): Promise<Sample>;
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const mibps = (bytes: number, s: number): number => bytes / MiB / s;
/** Server CPU seconds spent in `fn`: user + system, and each alone (NaN when the PID is unknown). */
async function serverCpu<T>(t: RunningTarget, fn: () => Promise<T>): Promise<{ value: T; cpu: number; user: number; sys: number }> {
  const before = t.pid !== undefined ? processCpuSplit(t.pid) : undefined;
  const value = await fn();
  const after = t.pid !== undefined ? processCpuSplit(t.pid) : undefined;
  if (!before || !after) return { value, cpu: NaN, user: NaN, sys: NaN };
  const user = after.user - before.user;
  const sys = after.sys - before.sys;
  return { value, cpu: user + sys, user, sys };
}
const cpuMetric = (id: string, what: string): MetricDef => ({ id, workload: `server CPU per GiB pushed, ${what}`, unit: "s/GiB", better: "lower", target: { kind: "absolute", max: 2 } });
/** Informational rows splitting a CPU row into user and system (kernel) time; no target of their own. */
const cpuSplitMetrics = (id: string, workload: string, unit: string): MetricDef[] => [
  { id: `${id}.user`, workload: `${workload} — user`, unit, better: "lower" },
  { id: `${id}.sys`, workload: `${workload} — system (kernel)`, unit, better: "lower" },
];
/** Sample entries for `cpuSplitMetrics`, scaled like the combined row. */
const cpuSplit = (id: string, c: { user: number; sys: number }, scale: number): Sample => ({ [`${id}.user`]: c.user * scale, [`${id}.sys`]: c.sys * scale });

// ---------------------------------------------------------------------------
// Workload definitions

export function workloads(s: Sizes, memRounds: number): Workload[] {
  const big = formatBytes(s.bigBlob);
  const c = s.concurrency;
  const n = (x: number): string => x.toLocaleString("en-US");
  const cap = `${s.rpsCapMs / 1000} s`;
  const list: Workload[] = [];

  list.push({
    name: "push-monolithic",
    metrics: [{ id: "push.mono", workload: `blob push, monolithic ${big} (POST + PUT)`, unit: "MiB/s", better: "higher", target: { kind: "ratio", min: 0.9 } }, cpuMetric("push.mono.cpu", "monolithic"), ...cpuSplitMetrics("push.mono.cpu", "server CPU per GiB pushed, monolithic", "s/GiB")],
    async run({ t }, round) {
      const blob = new BlobSource(`mono:${round}`, s.bigBlob);
      const digest = blob.digest();
      const t0 = performance.now();
      const c = await serverCpu(t, () => pushMonolithic(t.client, "bench/push", blob, digest));
      const el = seconds(t0);
      await verifyBlob(t.client, "bench/push", digest, s.bigBlob);
      return { "push.mono": mibps(s.bigBlob, el), "push.mono.cpu": c.cpu / (s.bigBlob / GiB), ...cpuSplit("push.mono.cpu", c, GiB / s.bigBlob) };
    },
  });

  list.push({
    name: "push-chunked",
    metrics: [{ id: "push.chunked", workload: `blob push, chunked ${big} (${formatBytes(s.patchChunk)} PATCHes + PUT)`, unit: "MiB/s", better: "higher", target: { kind: "ratio", min: 0.9 } }, cpuMetric("push.chunked.cpu", "chunked"), ...cpuSplitMetrics("push.chunked.cpu", "server CPU per GiB pushed, chunked", "s/GiB")],
    async run({ t }, round) {
      const blob = new BlobSource(`chunked:${round}`, s.bigBlob);
      const digest = blob.digest();
      const t0 = performance.now();
      const c = await serverCpu(t, () => pushChunked(t.client, "bench/push", blob, digest, s.patchChunk));
      const el = seconds(t0);
      await verifyBlob(t.client, "bench/push", digest, s.bigBlob);
      return { "push.chunked": mibps(s.bigBlob, el), "push.chunked.cpu": c.cpu / (s.bigBlob / GiB), ...cpuSplit("push.chunked.cpu", c, GiB / s.bigBlob) };
    },
  });

  list.push({
    name: "push-small",
    metrics: [
      { id: "push.small", workload: `small blob push, ${n(s.smallCount)} × ${formatBytes(s.smallSize)} @ c${c} (POST + PUT)`, unit: "blobs/s", better: "higher", target: { kind: "ratio", min: 1.0 } },
      { id: "push.small.cpu", workload: `server CPU per small blob pushed`, unit: "ms/blob", better: "lower" },
      ...cpuSplitMetrics("push.small.cpu", "server CPU per small blob pushed", "ms/blob"),
    ],
    async run({ t }, round) {
      const repo = `bench/small-r${round}`;
      const blobs = Array.from({ length: s.smallCount }, (_, i) => new BlobSource(`small:${round}:${i}`, s.smallSize).bytes());
      const digests = blobs.map((b) => sha256(b));
      const t0 = performance.now();
      const cu = await serverCpu(t, () => pool(s.smallCount, c, (i) => pushMonolithic(t.client, repo, blobs[i]!, digests[i]!)));
      const el = seconds(t0);
      await pool(s.smallCount, c, (i) => verifyBlob(t.client, repo, digests[i]!, s.smallSize));
      return { "push.small": s.smallCount / el, "push.small.cpu": (cu.cpu * 1000) / s.smallCount, ...cpuSplit("push.small.cpu", cu, 1000 / s.smallCount) };
    },
  });

  list.push({
    name: "pull",
    metrics: [
      { id: "pull.single", workload: `blob pull, ${big} single stream`, unit: "MiB/s", better: "higher", target: { kind: "ratio", min: 1.0 } },
      { id: "pull.multi", workload: `blob pull, ${big} × ${s.pullStreams} concurrent streams (aggregate)`, unit: "MiB/s", better: "higher", target: { kind: "ratio", min: 1.0 } },
    ],
    async setup({ t, state }) {
      const blob = new BlobSource("pull", s.bigBlob);
      await pushMonolithic(t.client, "bench/pull", blob, blob.digest());
      await verifyBlob(t.client, "bench/pull", blob.digest(), s.bigBlob);
      state.set("pull.digest", blob.digest());
    },
    async run({ t, state }) {
      const digest = state.get("pull.digest") as string;
      // Untimed, before the clock: the bytes are the right ones (and both servers start warm).
      await pullBlob(t.client, "bench/pull", digest, s.bigBlob);
      let t0 = performance.now();
      const b1 = await pullBlob(t.client, "bench/pull", digest, s.bigBlob, false);
      const single = mibps(b1, seconds(t0));
      t0 = performance.now();
      const bs = await Promise.all(Array.from({ length: s.pullStreams }, () => pullBlob(t.client, "bench/pull", digest, s.bigBlob, false)));
      const multi = mibps(bs.reduce((a, b) => a + b, 0), seconds(t0));
      return { "pull.single": single, "pull.multi": multi };
    },
  });

  list.push({
    name: "head",
    metrics: [{ id: "head.rps", workload: `blob HEAD @ c${c} (${n(s.headCount)} req or ${cap})`, unit: "req/s", better: "higher" }],
    async setup({ t, state }) {
      const blobs = Array.from({ length: 64 }, (_, i) => new BlobSource(`head:${i}`, s.smallSize).bytes());
      const digests = blobs.map((b) => sha256(b));
      await pool(blobs.length, 8, (i) => pushMonolithic(t.client, "bench/head", blobs[i]!, digests[i]!));
      state.set("head.digests", digests);
    },
    async run({ t, state }) {
      const paths = (state.get("head.digests") as string[]).map((d) => `/v2/bench/head/blobs/${d}`);
      const one = async (i: number): Promise<void> => {
        const p = paths[i % paths.length]!;
        const res = await t.client.request("HEAD", p, { timeoutMs: SMALL_TIMEOUT });
        expect(res, [200], `HEAD ${p}`);
        checkDigestHeader(res, p.slice(p.lastIndexOf("/") + 1), "HEAD blob");
      };
      await pool(200, c, one); // warm-up: open keep-alive sockets
      const t0 = performance.now();
      const done = await pool(s.headCount, c, one, t0 + s.rpsCapMs);
      return { "head.rps": done / seconds(t0), "head.count": done };
    },
  });

  list.push({
    name: "manifest-put",
    metrics: [
      { id: "manifest.put", workload: `manifest PUT by tag @ c${c} (${n(s.manifestPutCount)} distinct or ${cap})`, unit: "req/s", better: "higher", target: { kind: "ratio", min: 3 } },
      { id: "manifest.put.cpu", workload: `server CPU per manifest PUT`, unit: "ms/PUT", better: "lower", target: { kind: "absolute", max: 1 } },
      ...cpuSplitMetrics("manifest.put.cpu", "server CPU per manifest PUT", "ms/PUT"),
      // Everything the machine spent per PUT (client, server, a PostgreSQL it uses, anything else
      // running): when the CPUs are saturated, nproc ÷ this is the most PUTs/s the machine allows.
      { id: "manifest.put.machine", workload: `whole-machine CPU per manifest PUT (client + server + its database)`, unit: "ms/PUT", better: "lower" },
    ],
    async setup({ t, state }) {
      state.set("mput.base", await manifestBase(t.client, "bench/mput"));
    },
    async run({ t, state }, round) {
      const { config, layer } = state.get("mput.base") as { config: Descriptor; layer: Descriptor };
      const bodies = Array.from({ length: s.manifestPutCount }, (_, i) =>
        imageManifest(config, [layer], { "org.example.bench": `r${round}-${i}` }));
      const machine0 = machineCpuSeconds();
      const t0 = performance.now();
      const { value: done, ...cu } = await serverCpu(t, () => pool(bodies.length, c, (i) => putManifest(t.client, "bench/mput", `r${round}-${i}`, bodies[i]!), t0 + s.rpsCapMs));
      const el = seconds(t0);
      const machine1 = machineCpuSeconds();
      const machineMs = machine0 && machine1 ? ((machine1.busy - machine0.busy) * 1000) / done : NaN;
      await pool(done, c, async (i) => {
        const res = await t.client.request("HEAD", `/v2/bench/mput/manifests/${sha256(bodies[i]!)}`, {
          headers: { accept: MT_OCI_MANIFEST }, timeoutMs: SMALL_TIMEOUT,
        });
        expect(res, [200], "HEAD manifest");
        checkDigestHeader(res, sha256(bodies[i]!), "HEAD manifest");
      });
      return { "manifest.put": done / el, "manifest.put.count": done, "manifest.put.cpu": (cu.cpu * 1000) / done, ...cpuSplit("manifest.put.cpu", cu, 1000 / done), "manifest.put.machine": machineMs };
    },
  });

  const getMetrics: MetricDef[] = [];
  for (const g of s.manifestGet) {
    const w = `manifest GET by tag @ c${g.concurrency} (${n(g.count)} req or ${cap})`;
    getMetrics.push(
      { id: `mget.c${g.concurrency}.rps`, workload: w, unit: "req/s", better: "higher", target: { kind: "ratio", min: 1.0 } },
      { id: `mget.c${g.concurrency}.p50`, workload: w, unit: "p50 ms", better: "lower" },
      { id: `mget.c${g.concurrency}.p99`, workload: w, unit: "p99 ms", better: "lower", target: { kind: "ratio", min: 1.0 } },
    );
  }
  list.push({
    name: "manifest-get",
    metrics: getMetrics,
    async setup({ t, state }) {
      const { config, layer } = await manifestBase(t.client, "bench/mget");
      const body = imageManifest(config, [layer]);
      await putManifest(t.client, "bench/mget", "latest", body);
      state.set("mget.body", body);
    },
    async run({ t, state }) {
      const body = state.get("mget.body") as Buffer;
      const digest = sha256(body);
      const out: Sample = {};
      for (const g of s.manifestGet) {
        const lat: number[] = [];
        const one = async (): Promise<void> => {
          const t1 = performance.now();
          const res = await t.client.request("GET", "/v2/bench/mget/manifests/latest", {
            headers: { accept: MT_OCI_MANIFEST }, timeoutMs: SMALL_TIMEOUT,
          });
          lat.push(performance.now() - t1);
          expect(res, [200], "GET manifest");
          if (!res.body.equals(body)) throw new Error("GET manifest: body differs from what was pushed");
          checkDigestHeader(res, digest, "GET manifest");
        };
        await pool(Math.min(200, g.count), g.concurrency, one);
        lat.length = 0;
        const t0 = performance.now();
        const done = await pool(g.count, g.concurrency, one, t0 + s.rpsCapMs);
        const el = seconds(t0);
        const { p50, p99 } = latencySummary(lat);
        out[`mget.c${g.concurrency}.count`] = done;
        out[`mget.c${g.concurrency}.rps`] = done / el;
        out[`mget.c${g.concurrency}.p50`] = p50;
        out[`mget.c${g.concurrency}.p99`] = p99;
      }
      return out;
    },
  });

  list.push({
    name: "tags",
    metrics: [{ id: "tags.list", workload: `tag listing, ${n(s.tagCount)} tags, n=${s.tagPage} pages via Link`, unit: "ms/listing", better: "lower", target: { kind: "ratio", min: 1.0 } }],
    async setup({ t, state, log }) {
      const { config, layer } = await manifestBase(t.client, "bench/tags");
      const body = imageManifest(config, [layer]);
      const tags = Array.from({ length: s.tagCount }, (_, i) => `t${String(i).padStart(6, "0")}`);
      const t0 = performance.now();
      await pool(tags.length, c, (i) => putManifest(t.client, "bench/tags", tags[i]!, body));
      log(`  ${t.label}: tagged ${tags.length} in ${seconds(t0).toFixed(1)} s (setup, untimed)`);
      state.set("tags.expected", new Set(tags));
    },
    async run({ t, state }) {
      const expected = state.get("tags.expected") as Set<string>;
      let pages = 0;
      let maxPage = 0;
      const listing = async (): Promise<void> => {
        const seen = new Set<string>();
        let next: string | undefined = `/v2/bench/tags/tags/list?n=${s.tagPage}`;
        pages = 0;
        while (next && pages < 10_000) {
          const res = await t.client.request("GET", next, { timeoutMs: SMALL_TIMEOUT });
          expect(res, [200], `GET ${next}`);
          const page = JSON.parse(res.body.toString()) as { tags?: string[] | null };
          for (const tag of page.tags ?? []) seen.add(tag);
          maxPage = Math.max(maxPage, page.tags?.length ?? 0); // > n means the server ignored n (reported, not fatal)
          pages++;
          const link = header(res.headers, "link");
          const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
          next = m ? m[1] : undefined;
        }
        if (seen.size !== expected.size || [...expected].some((x) => !seen.has(x))) {
          throw new Error(`tag listing returned ${seen.size} distinct tags, want ${expected.size}`);
        }
      };
      await listing(); // warm-up
      // At least tagListReps listings and at least rpsCapMs / 4 of wall time (bounded).
      const t0 = performance.now();
      let reps = 0;
      while (reps < s.tagListReps || (performance.now() - t0 < s.rpsCapMs / 4 && reps < 500)) {
        await listing();
        reps++;
      }
      return { "tags.list": (seconds(t0) * 1000) / reps, "tags.reps": reps, "tags.pages": pages, "tags.maxpage": maxPage };
    },
  });

  const memMetrics = (key: string, size: number, hwmTarget: boolean): MetricDef[] => [
    { id: `mem.${key}.peak`, workload: `server peak RSS, push + pull ${formatBytes(size)} blob (50 ms VmRSS samples)`, unit: "MiB", better: "lower", ...(hwmTarget ? { target: { kind: "absolute" as const, max: 200 } } : {}) },
    { id: `mem.${key}.hwm`, workload: `server VmHWM, push + pull ${formatBytes(size)} blob`, unit: "MiB", better: "lower", ...(hwmTarget ? { target: { kind: "absolute" as const, max: 200 } } : {}) },
  ];
  list.push({
    name: "memory",
    rounds: memRounds,
    metrics: [...memMetrics("big", s.memBig, true), ...memMetrics("small", s.memSmall, false)],
    async run({ t, log }, round) {
      const out: Sample = {};
      if (t.pid === undefined) {
        log(`  ${t.label}: no server PID known, skipping RSS measurement`);
        return out;
      }
      for (const [key, size] of [["small", s.memSmall], ["big", s.memBig]] as const) {
        const blob = new BlobSource(`mem:${round}:${size}`, size);
        const digest = blob.digest();
        const sampler = new RssSampler(t.pid, 50);
        sampler.start();
        await pushMonolithic(t.client, "bench/mem", blob, digest);
        await verifyBlob(t.client, "bench/mem", digest, size);
        await pullBlob(t.client, "bench/mem", digest, size);
        const r: RssReport = sampler.stop();
        if (!r.hwmReset) log(`  ${t.label}: could not reset VmHWM; it covers the process lifetime`);
        out[`mem.${key}.peak`] = r.peakRssMiB;
        out[`mem.${key}.hwm`] = r.hwmMiB;
      }
      return out;
    },
  });

  return list;
}
