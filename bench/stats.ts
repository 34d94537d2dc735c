// Statistics and report formatting.

export type Direction = "higher" | "lower";

/** A ratio target (candidate vs baseline) or an absolute bound on the candidate. */
export type Target =
  | { kind: "ratio"; min: number }
  | { kind: "absolute"; max: number };

export interface MetricDef {
  id: string;
  workload: string;
  unit: string;
  better: Direction;
  target?: Target;
}

export interface MetricResult extends MetricDef {
  /** Raw per-round samples keyed by target label. */
  samples: Record<string, number[]>;
  medians: Record<string, number | null>;
  /** >1 means the candidate (A) is better, whatever the metric's direction. */
  ratio: number | null;
  met: boolean | null;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Percentile with linear interpolation between closest ranks; p in [0, 100]. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  if (sorted.length === 1) return sorted[0]!;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export function latencySummary(latMs: number[]): { p50: number; p99: number } {
  const s = Float64Array.from(latMs).sort();
  const arr = Array.from(s);
  return { p50: percentile(arr, 50), p99: percentile(arr, 99) };
}

/** Candidate-over-baseline ratio, oriented so that > 1 means the candidate is better. */
export function orientedRatio(a: number, b: number, better: Direction): number | null {
  if (!Number.isFinite(a) || !Number.isFinite(b) || a <= 0 || b <= 0) return null;
  return better === "higher" ? a / b : b / a;
}

export function summarize(
  def: MetricDef,
  samples: Record<string, number[]>,
  labelA: string | undefined,
  labelB: string | undefined,
): MetricResult {
  const medians: Record<string, number | null> = {};
  for (const [label, xs] of Object.entries(samples)) medians[label] = xs.length ? median(xs) : null;
  const a = labelA !== undefined ? medians[labelA] ?? null : null;
  const b = labelB !== undefined ? medians[labelB] ?? null : null;
  const ratio = a !== null && b !== null ? orientedRatio(a, b, def.better) : null;
  let met: boolean | null = null;
  if (def.target?.kind === "ratio" && ratio !== null) met = ratio >= def.target.min;
  if (def.target?.kind === "absolute" && a !== null) met = a < def.target.max;
  return { ...def, samples, medians, ratio, met };
}

export function fmtNum(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  const ax = Math.abs(x);
  if (Number.isInteger(x) || ax >= 1000) return Math.round(x).toLocaleString("en-US");
  if (ax >= 100) return x.toFixed(0);
  if (ax >= 10) return x.toFixed(1);
  if (ax >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

export function fmtTarget(t: Target | undefined, unit: string): string {
  if (!t) return "—";
  if (t.kind === "ratio") return `ratio ≥ ${t.min.toFixed(1)}`;
  return `< ${t.max} ${unit} (absolute)`;
}

function cell(s: string): string {
  return s.replace(/\|/g, "\\|");
}

export interface EnvInfo {
  date: string;
  node: string;
  nproc: number;
  cpu: string;
  memTotal: string;
  quick: boolean;
  rounds: number;
  totalSeconds?: number;
}

export function markdownReport(
  results: MetricResult[],
  labelA: string | undefined,
  labelB: string | undefined,
  env: EnvInfo,
  targets: Array<{ label: string; description: string }>,
  notes: string[],
): string {
  const nameA = labelA ?? "(A not run)";
  const nameB = labelB ?? "(B not run)";
  const lines: string[] = [];
  lines.push(`# artifact-store benchmark${env.quick ? " (quick)" : ""}`);
  lines.push("");
  lines.push(`- Date: ${env.date}`);
  lines.push(`- Node: ${env.node}`);
  lines.push(`- nproc: ${env.nproc}`);
  lines.push(`- CPU: ${env.cpu}`);
  lines.push(`- Memory: ${env.memTotal}`);
  lines.push(`- Rounds per workload: ${env.rounds} (alternating order; medians reported)`);
  if (env.totalSeconds !== undefined) lines.push(`- Total runtime: ${env.totalSeconds.toFixed(0)} s`);
  for (const t of targets) lines.push(`- Target \`${t.label}\`: ${t.description}`);
  lines.push("");
  lines.push(
    `Ratio = ${nameA} ÷ ${nameB}, oriented so that **ratio > 1 means ${nameA} is better** ` +
      `(for lower-is-better metrics such as latency, time and memory the inverse is used).`,
  );
  lines.push("");
  lines.push(`| workload | unit | ${cell(nameA)} median | ${cell(nameB)} median | ratio | target | met? |`);
  lines.push("|---|---|---:|---:|---:|---|:---:|");
  for (const r of results) {
    const a = labelA !== undefined ? r.medians[labelA] : null;
    const b = labelB !== undefined ? r.medians[labelB] : null;
    const dir = r.better === "higher" ? "↑" : "↓";
    const met = r.met === null ? "—" : r.met ? "yes" : "**no**";
    lines.push(
      `| ${cell(r.workload)} | ${cell(r.unit)} ${dir} | ${fmtNum(a)} | ${fmtNum(b)} | ` +
        `${r.ratio === null ? "—" : r.ratio.toFixed(2)} | ${cell(fmtTarget(r.target, r.unit))} | ${met} |`,
    );
  }
  lines.push("");
  lines.push("↑ higher is better, ↓ lower is better.");
  if (notes.length) {
    lines.push("");
    lines.push("Notes:");
    for (const n of notes) lines.push(`- ${n}`);
  }
  lines.push("");
  return lines.join("\n");
}
