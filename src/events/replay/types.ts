/**
 * The replay framework: each table the log must reproduce has a TableRule (which columns the
 * replay reconstructs and compares, which it cannot and why), and each action that changes such
 * a table has a handler that applies one event to the database being rebuilt. Tables that are
 * not a view of the log are listed in NOT_REPLAYED (index.ts) with the reason; a test fails when
 * the schema has a table or column that appears in neither (test/unit/replay-coverage.test.ts).
 */
import type Database from 'better-sqlite3';
import type { EventRow } from '../../meta/events.js';

export interface TableRule {
  table: string;
  /** Primary key (or unique natural key) columns: rows are matched on these. */
  key: string[];
  /** Columns the replay reproduces exactly; compared value for value. */
  columns: string[];
  /** Columns compared only as "set or not" (a wall-clock time whose presence is the state). */
  presenceOnly?: Record<string, string>;
  /** Columns not compared, each with the reason. */
  notCompared?: Record<string, string>;
}

/** Prepared-statement cache over the database being rebuilt (a rebuild replays ~10^6 events). */
export class ReplayContext {
  private readonly cache = new Map<string, Database.Statement>();
  constructor(readonly db: Database.Database) {}
  stmt(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }
  run(sql: string, ...params: unknown[]): Database.RunResult {
    return this.stmt(sql).run(...params);
  }
  get<T>(sql: string, ...params: unknown[]): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }
}

export interface ParsedEvent extends EventRow {
  beforeJson: Record<string, unknown>;
  afterJson: Record<string, unknown>;
}

export type Handler = (ctx: ReplayContext, e: ParsedEvent) => void;

export class ReplayError extends Error {}

export const need = <T>(v: T | undefined | null, e: ParsedEvent, what: string): T => {
  if (v === undefined || v === null) throw new ReplayError(`event ${e.seq} (${e.action}): ${what} missing; the log cannot reproduce it`);
  return v;
};
