/**
 * Property: any sequence of activations, rollbacks and transitions over a few scopes keeps
 * - at most one ACTIVE bundle per scope, and a bundle is ACTIVE exactly when it is the active
 *   bundle of some scope;
 * - every outcome (applied, no-op, refused with which code) equal to a tiny reference model
 *   (per-scope stacks: rollback restores the previously active bundle);
 * - resolution equal to a replay of the event log (bundle, event sequence, fallback);
 * - a repeated operation writing nothing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scopeKeyOf, type Scope } from '../../src/bundles/format.js';
import { replayBundleEvents, resolveReplayed } from '../../src/bundles/replay.js';
import { AppError } from '../../src/errors/catalogue.js';
import { bundleEvents, eventCount, fixture, seedBundle } from './bundles-fixtures.js';

const SCOPES: Scope[] = [
  { environment: 'prod', model_family: 'fraud' },
  { environment: 'prod', model_family: 'fraud', tenant: 't1' },
  { environment: 'staging', model_family: 'fraud' },
];
const BUNDLES = ['b0', 'b1', 'b2', 'b3'];
const STATES = ['REGISTERED', 'CANDIDATE', 'APPROVED', 'ACTIVE', 'RETIRED', 'REJECTED'] as const;

type Op = { kind: 'activate'; bundle: number; scope: number } | { kind: 'rollback'; scope: number } | { kind: 'transition'; bundle: number; to: (typeof STATES)[number] } | { kind: 'repeat' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('activate' as const), bundle: fc.nat(BUNDLES.length - 1), scope: fc.nat(SCOPES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rollback' as const), scope: fc.nat(SCOPES.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('transition' as const), bundle: fc.nat(BUNDLES.length - 1), to: fc.constantFrom(...STATES) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'repeat' as const }) },
);

/** The reference model: written from the product rules, independent of the store's SQL. */
class Model {
  states: string[];
  stacks: number[][] = SCOPES.map(() => []);
  current: (number | null)[] = SCOPES.map(() => null);

  constructor(initial: string[]) {
    this.states = [...initial];
  }

  private demoteIfIdle(b: number | null): void {
    if (b !== null && !this.current.includes(b) && this.states[b] === 'ACTIVE') this.states[b] = 'APPROVED';
  }

  private setCurrent(s: number, b: number): void {
    const prev = this.current[s]!;
    this.current[s] = b;
    this.states[b] = 'ACTIVE';
    if (prev !== b) this.demoteIfIdle(prev);
  }

  /** Returns 'APPLIED' | 'NOOP' | an error code, and the bundle made active. */
  activate(b: number, s: number): string {
    if (this.current[s] === b) return 'NOOP';
    if (this.states[b] !== 'APPROVED' && this.states[b] !== 'ACTIVE') return 'INVALID_TRANSITION';
    this.stacks[s]!.push(b);
    this.setCurrent(s, b);
    return 'APPLIED';
  }

  rollback(s: number): string {
    const stack = this.stacks[s]!;
    const target = this.current[s] !== null ? stack[stack.length - 2] : stack[stack.length - 1];
    if (target === undefined) return 'INVALID_TRANSITION';
    if (this.current[s] !== null) stack.pop();
    this.setCurrent(s, target);
    return 'APPLIED';
  }

  transition(b: number, to: string): string {
    const from = this.states[b]!;
    if (from === to) return 'NOOP';
    const edges: Record<string, string[]> = { REGISTERED: ['CANDIDATE', 'REJECTED'], CANDIDATE: ['APPROVED', 'REJECTED'], APPROVED: ['RETIRED'], ACTIVE: ['RETIRED'] };
    if (!(edges[from] ?? []).includes(to)) return 'INVALID_TRANSITION';
    this.states[b] = to;
    if (to === 'RETIRED') {
      this.current = this.current.map((c) => (c === b ? null : c));
      this.stacks = this.stacks.map((st) => st.filter((x) => x !== b));
    }
    return 'APPLIED';
  }
}

describe('bundle activation invariants (property)', () => {
  it('hold for random sequences of activations, rollbacks and transitions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('REGISTERED', 'CANDIDATE', 'APPROVED', 'APPROVED'), { minLength: BUNDLES.length, maxLength: BUNDLES.length }), fc.array(opArb, { maxLength: 40 }), async (initial, ops) => {
        const f = fixture();
        const rows = BUNDLES.map((id, i) => seedBundle(f.store, id, '1.0.0', initial[i]));
        const model = new Model(initial);
        let last: Op | null = null;

        for (const op0 of ops) {
          const op = op0.kind === 'repeat' ? last : op0;
          if (!op || op.kind === 'repeat') continue;
          last = op;
          const before = eventCount(f.db);
          let expected: string;
          let actual = 'APPLIED';
          try {
            if (op.kind === 'activate') {
              expected = model.activate(op.bundle, op.scope);
              const r = await f.service.activate(f.store.byRowId(rows[op.bundle]!.id)!, scopeKeyOf(SCOPES[op.scope]!), 'prop', 'test');
              if (r.noop) actual = 'NOOP';
            } else if (op.kind === 'rollback') {
              expected = model.rollback(op.scope);
              await f.service.rollback(scopeKeyOf(SCOPES[op.scope]!), 'prop', 'test');
            } else {
              expected = model.transition(op.bundle, op.to);
              const r = f.store.transition(rows[op.bundle]!.id, op.to, 'prop', 'test');
              if (r.eventSeq === null) actual = 'NOOP';
            }
          } catch (err) {
            if (!(err instanceof AppError)) throw err;
            actual = err.code;
          }
          expect(actual, JSON.stringify(op)).toBe(expected!);
          // Refusals and no-ops write nothing; applied changes write exactly one event.
          expect(eventCount(f.db) - before).toBe(actual === 'APPLIED' ? 1 : 0);
        }

        // States and active bundles equal the model.
        expect(rows.map((r) => f.store.byRowId(r.id)!.state)).toEqual(model.states);
        const activeByScope = SCOPES.map((s) => f.store.active(scopeKeyOf(s))?.bundle.id ?? null);
        expect(activeByScope).toEqual(model.current.map((b) => (b === null ? null : rows[b]!.id)));
        // A bundle is ACTIVE exactly when some scope has it active (so ≤ 1 ACTIVE per scope is the unique row).
        for (const r of rows) expect(f.store.byRowId(r.id)!.state === 'ACTIVE').toBe(activeByScope.includes(r.id));

        // Resolution equals the replay of the event log, for every scope and a tenant that falls back.
        const replay = replayBundleEvents(bundleEvents(f.db));
        for (const s of [...SCOPES, { environment: 'prod', model_family: 'fraud', tenant: 'other' }]) {
          const got = f.store.resolve(scopeKeyOf(s));
          const want = resolveReplayed(replay, s);
          expect(got ? { bundle_id: got.bundle.bundleId, digest: got.bundle.digest, event_seq: got.eventSeq, fallback: got.fallback } : undefined).toEqual(
            want ? { bundle_id: want.bundle_id, digest: want.digest, event_seq: want.event_seq, fallback: want.fallback } : undefined,
          );
        }
        for (const r of rows) expect(replay.states.get(`${r.bundleId}@1.0.0`)).toBe(f.store.byRowId(r.id)!.state);
        f.db.$client.close();
      }),
      { numRuns: 80 },
    );
  });
});
