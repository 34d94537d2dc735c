/**
 * What a write transaction on PostgreSQL may remember instead of asking the server again (each
 * statement is a round trip): the event log's head after its own last append, and the answers
 * of a few lookups every group-committed item repeats (repository id, namespace policy). Valid
 * only while this transaction holds the registry's write lock (no other process writes), and
 * forgotten at every transaction boundary, every rollback to a savepoint, and every statement
 * that could change what was remembered (it names the table).
 */

interface Remembered<T> {
  epoch: number;
  value: T;
}

const ROLLBACK_TO = /^\s*rollback\s+to\b/i;
const READ_ONLY = /^\s*select\b/i;
const MAX_TEXTS = 5000;

export class TransactionMemory {
  /** Moves when the event head may have changed other than by the remembered append. */
  private headEpoch = 0;
  /** Moves when a remembered lookup's tables may have changed. */
  private readEpoch = 0;
  private head: Remembered<string> | undefined;
  private readonly reads = new Map<string, Remembered<unknown>>();
  /** Registered lookups' statement texts, and the tables they read. */
  private readonly lookups = new Set<string>();
  private readonly tableNames = new Set<string>();
  private tables: RegExp | undefined;
  /** Per statement text: [moves the head, moves the lookups]. */
  private readonly effects = new Map<string, [boolean, boolean]>();

  /** A lookup (by its SQL text) whose answers may be kept within a transaction; `tables` are those it reads. */
  allowLookup(text: string, tables: string[]): void {
    this.lookups.add(text);
    for (const t of tables) {
      if (!/^[a-z_][a-z0-9_]*$/.test(t)) throw new Error(`not a table name: ${t}`);
      this.tableNames.add(t);
    }
    this.tables = new RegExp(`\\b(${[...this.tableNames].join('|')})\\b`, 'i');
    this.effects.clear();
  }

  /** Every statement the connection runs, before it runs. */
  note(text: string): void {
    let effect = this.effects.get(text);
    if (effect === undefined) {
      const undo = ROLLBACK_TO.test(text);
      const writes = !READ_ONLY.test(text);
      effect = [undo || (writes && /\bevents\b/i.test(text)), undo || (writes && !!this.tables?.test(text))];
      if (this.effects.size < MAX_TEXTS) this.effects.set(text, effect);
    }
    if (effect[0]) this.headEpoch++;
    if (effect[1]) this.readEpoch++;
  }

  /** BEGIN, COMMIT, ROLLBACK. */
  boundary(): void {
    this.headEpoch++;
    this.readEpoch++;
    this.head = undefined;
    this.reads.clear();
  }

  eventHead(): string | undefined {
    return this.head?.epoch === this.headEpoch ? this.head.value : undefined;
  }

  rememberEventHead(hash: string): void {
    this.head = { epoch: this.headEpoch, value: hash };
  }

  isLookup(text: string): boolean {
    return this.lookups.has(text);
  }

  /** The remembered rows (an empty list is an answer too), or MISS. */
  lookup(key: string): unknown {
    const r = this.reads.get(key);
    return r && r.epoch === this.readEpoch ? r.value : MISS;
  }

  rememberLookup(key: string, value: unknown): void {
    if (this.reads.size >= MAX_TEXTS) this.reads.clear();
    this.reads.set(key, { epoch: this.readEpoch, value });
  }
}

export const MISS: unique symbol = Symbol('not remembered');
