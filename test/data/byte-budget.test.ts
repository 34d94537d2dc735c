import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/data/byte-budget.js';
import { StorageUnavailableError } from '../../src/data/errors.js';

describe('ByteBudget', () => {
  it('grants in order within the limit, waits, and hands bytes back once', async () => {
    const budget = new ByteBudget(10);
    const a = await budget.acquire(6, 1_000);
    const order: string[] = [];
    const b = budget.acquire(6, 1_000).then((r) => (order.push('b'), r));
    const c = budget.acquire(3, 1_000).then((r) => (order.push('c'), r)); // fits now, but waits behind b
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    expect(budget.inUse).toBe(6);
    a();
    a(); // a second release is a no-op
    const [rb, rc] = await Promise.all([b, c]);
    expect(order).toEqual(['b', 'c']);
    expect(budget.inUse).toBe(9);
    rb();
    rc();
    expect(budget.inUse).toBe(0);
    expect(budget.peak).toBe(9);
  });

  it('an oversized request runs alone; a waiter that times out gets StorageUnavailableError and does not block others', async () => {
    const budget = new ByteBudget(10);
    const big = await budget.acquire(100, 1_000);
    expect(budget.inUse).toBe(10);
    await expect(budget.acquire(1, 50)).rejects.toBeInstanceOf(StorageUnavailableError);
    const next = budget.acquire(1, 1_000);
    big();
    (await next)();
    expect(budget.inUse).toBe(0);
  });
});
