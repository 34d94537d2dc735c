/**
 * The pickle scanner on real pickle bytes produced by a tiny encoder in this file (the opcode
 * encodings of CPython's pickletools), plain and inside PyTorch-style zip archives, and on
 * hostile input: truncation, nesting, huge memo, opcode bombs, impossible lengths.
 */
import { deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanPickleStream } from '../../src/evidence/scanning/pickle.js';
import { classifyGlobal } from '../../src/evidence/scanning/pickle-ops.js';
import type { Finding } from '../../src/evidence/scanning/scanner.js';
import { resultOf } from '../../src/evidence/scanning/worker.js';

// ---- a tiny pickle encoder ----------------------------------------------------------------
const op = (...bytes: number[]) => Buffer.from(bytes);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const P = {
  proto: (v: number) => op(0x80, v),
  frame: (n: number) => Buffer.concat([op(0x95), u64(BigInt(n))]),
  str: (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return b.length < 256 ? Buffer.concat([op(0x8c, b.length), b]) : Buffer.concat([op(0x58), u32(b.length), b]);
  },
  bytes: (b: Buffer) => Buffer.concat([op(0x42), u32(b.length), b]),
  global: (m: string, n: string) => Buffer.from(`c${m}\n${n}\n`, 'latin1'),
  memoize: op(0x94),
  binput: (i: number) => op(0x71, i),
  binget: (i: number) => op(0x68, i),
  pop: op(0x30),
  stackGlobal: op(0x93),
  tuple1: op(0x85),
  tuple2: op(0x86),
  emptyTuple: op(0x29),
  reduce: op(0x52),
  mark: op(0x28),
  emptyList: op(0x5d),
  emptyDict: op(0x7d),
  int1: (v: number) => op(0x4b, v),
  setitem: op(0x73),
  build: op(0x62),
  stop: op(0x2e),
};
const pickle = (...parts: Buffer[]) => Buffer.concat(parts);

/** `pickle.dumps(os.system('id'))`-style payload at protocol 4 (what `__reduce__` produces). */
const osSystemP4 = pickle(P.proto(4), P.frame(30), P.str('posix'), P.memoize, P.str('system'), P.memoize, P.stackGlobal, P.memoize, P.str('id'), P.memoize, P.tuple1, P.memoize, P.reduce, P.memoize, P.stop);
/** Protocol 0 text: `cos\nsystem\n(S'echo pwned'\ntR.` */
const osSystemP0 = Buffer.from("cos\nsystem\n(S'echo pwned'\ntR.", 'latin1');
/** STACK_GLOBAL whose operands come from the memo, not from the immediately preceding opcodes. */
const evalViaMemo = pickle(P.proto(4), P.str('builtins'), P.binput(0), P.pop, P.str('eval'), P.binput(1), P.pop, P.binget(0), P.binget(1), P.stackGlobal, P.str('1+1'), P.tuple1, P.reduce, P.stop);
/** A benign numpy array as protocol 2 writes it: _reconstruct(ndarray, (0,), b'b'), then BUILD with dtype and raw bytes. */
const numpyArray = pickle(
  P.proto(2),
  P.global('numpy.core.multiarray', '_reconstruct'),
  P.binput(0),
  P.global('numpy', 'ndarray'),
  P.binput(1),
  P.int1(0),
  P.tuple1,
  P.global('_codecs', 'encode'),
  P.str('b'),
  P.str('latin1'),
  P.tuple2,
  P.reduce,
  op(0x87), // TUPLE3
  P.reduce,
  P.mark,
  P.int1(1),
  P.global('numpy', 'dtype'),
  P.str('f4'),
  P.tuple1,
  P.reduce,
  P.bytes(Buffer.alloc(16)),
  op(0x74), // TUPLE
  P.build,
  P.stop,
);
/** A torch state_dict pickle: OrderedDict of tensors rebuilt through torch._utils (persistent ids for storages). */
const torchStateDict = pickle(
  P.proto(2),
  P.global('collections', 'OrderedDict'),
  P.emptyTuple,
  P.reduce,
  P.str('weight'),
  P.global('torch._utils', '_rebuild_tensor_v2'),
  P.mark,
  P.mark,
  P.str('storage'),
  P.global('torch', 'FloatStorage'),
  P.str('0'),
  P.str('cpu'),
  P.int1(4),
  op(0x74), // TUPLE
  op(0x51), // BINPERSID
  P.int1(0),
  P.int1(4),
  P.tuple1,
  P.int1(1),
  P.tuple1,
  op(0x89), // NEWFALSE
  P.global('collections', 'OrderedDict'),
  P.emptyTuple,
  P.reduce,
  op(0x74),
  P.reduce,
  P.setitem,
  P.stop,
);

/** A zip of stored entries, as torch.save writes them. */
function zip(entries: ([string, Buffer] | [string, Buffer, 'deflate'])[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, raw, method] of entries) {
    const data = method === 'deflate' ? deflateRawSync(raw) : raw;
    const n = Buffer.from(name);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(0, 6);
    h.writeUInt16LE(method === 'deflate' ? 8 : 0, 8);
    h.writeUInt32LE(data.length, 18);
    h.writeUInt32LE(raw.length, 22);
    h.writeUInt16LE(n.length, 26);
    h.writeUInt16LE(0, 28);
    parts.push(h, n, data);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt32LE(data.length, 20);
    c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(n.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, n);
    offset += h.length + n.length + data.length;
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  return Buffer.concat([...parts, ...central, end]);
}

async function* chunks(b: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
const scan = (b: Buffer, size = 1 << 16, opts = {}) => scanPickleStream(chunks(b, size), opts);
const rules = (f: Finding[]) => f.map((x) => `${x.severity}:${x.rule}`);

describe('pickle scanner', () => {
  it('flags os.system via STACK_GLOBAL (protocol 4) and via GLOBAL (protocol 0) as critical', async () => {
    const p4 = await scan(osSystemP4);
    expect(p4).toEqual([expect.objectContaining({ severity: 'critical', rule: 'dangerous-global', message: expect.stringContaining('posix.system') })]);
    const p0 = await scan(osSystemP0);
    expect(p0).toEqual([expect.objectContaining({ severity: 'critical', rule: 'dangerous-global', message: expect.stringContaining('os.system') })]);
    expect(resultOf(p0)).toBe('fail');
  });

  it('resolves STACK_GLOBAL operands through the memo (BINPUT/BINGET)', async () => {
    const f = await scan(evalViaMemo);
    expect(f).toEqual([expect.objectContaining({ severity: 'critical', message: expect.stringContaining('builtins.eval') })]);
  });

  it('passes a benign numpy array and a torch state_dict', async () => {
    expect(await scan(numpyArray)).toEqual([]);
    expect(await scan(torchStateDict)).toEqual([]);
    expect(resultOf([])).toBe('pass');
  });

  it('scans the pickles inside a PyTorch zip checkpoint and names the entry', async () => {
    const benign = zip([
      ['archive/data.pkl', torchStateDict],
      ['archive/data/0', Buffer.alloc(16, 7)],
      ['archive/version', Buffer.from('3\n')],
    ]);
    expect(await scan(benign)).toEqual([]);
    const poisoned = zip([
      ['archive/data/0', Buffer.alloc(4096, 0x63)], // raw bytes that look like GLOBAL opcodes are not scanned
      ['archive/data.pkl', osSystemP4],
      ['archive/version', Buffer.from('3\n')],
    ]);
    const f = await scan(poisoned);
    expect(f).toEqual([expect.objectContaining({ severity: 'critical', rule: 'dangerous-global', file: 'archive/data.pkl' })]);
  });

  it('a legacy torch.save stream (several pickles then raw bytes) is scanned pickle by pickle', async () => {
    const legacy = pickle(pickle(P.proto(2), op(0x8a, 2, 0x6c, 0xfc), P.stop), pickle(P.proto(2), P.int1(1001), P.stop), osSystemP4, Buffer.alloc(64, 0xff));
    expect(rules(await scan(legacy))).toEqual(['critical:dangerous-global']);
  });

  it('gives the same findings however the stream is chunked (property)', async () => {
    const input = zip([['archive/data.pkl', pickle(osSystemP4.subarray(0, -1), P.pop, P.global('subprocess', 'Popen'), P.stop)]]);
    const expected = await scan(input);
    expect(rules(expected)).toEqual(['critical:dangerous-global', 'critical:dangerous-global']);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 97 }), async (size) => {
        expect(await scan(input, size)).toEqual(expected);
      }),
      { numRuns: 40 },
    );
  });

  it('classifies qualified and submodule names', () => {
    expect(classifyGlobal('torch', 'hub.load')).toBe('dangerous');
    expect(classifyGlobal('os.path', 'join')).toBe('dangerous');
    expect(classifyGlobal('subprocess', 'check_output')).toBe('dangerous');
    expect(classifyGlobal('webbrowser', 'open')).toBe('dangerous');
    expect(classifyGlobal('runpy', '_run_code')).toBe('dangerous');
    expect(classifyGlobal('torch._utils', '_rebuild_tensor_v2')).toBe('safe');
    expect(classifyGlobal('builtins', 'set')).toBe('safe');
    expect(classifyGlobal('mylib', 'Thing')).toBe('unknown');
  });
});

describe('pickle scanner on hostile input', () => {
  it('truncated pickles and cut-off arguments become findings, not errors', async () => {
    for (let cut = 1; cut < osSystemP4.length - 1; cut++) {
      const f = await scan(osSystemP4.subarray(0, cut));
      expect(f.some((x) => x.rule === 'truncated'), `cut at ${cut}`).toBe(true);
    }
    expect(rules(await scan(Buffer.alloc(0)))).toEqual(['info:truncated']);
  });

  it('deep nesting costs nothing (no structure is built)', async () => {
    const deep = Buffer.concat([P.proto(2), Buffer.alloc(600_000, 0x28), Buffer.alloc(400_000, 0x5d), P.stop]);
    expect(await scan(deep)).toEqual([]);
  });

  it('a huge memo is capped', async () => {
    const many = Buffer.concat([P.proto(4), ...Array.from({ length: 5000 }, () => pickle(P.str('x'), P.memoize, P.pop)), P.stop]);
    const f = await scan(many, 1 << 16, { maxMemo: 100 });
    expect(rules(f)).toEqual(['info:memo-limit']);
  });

  it('an opcode bomb stops at the opcode limit', async () => {
    const bomb = Buffer.concat([P.proto(2), Buffer.alloc(100_000, 0x4e), P.stop]); // NONE × 100k
    expect(rules(await scan(bomb, 4096, { maxOps: 1000 }))).toEqual(['medium:opcode-limit']);
  });

  it('impossible lengths and endless lines end the walk', async () => {
    const hugeBytes = Buffer.concat([P.proto(4), op(0x8e), u64(1n << 62n), Buffer.alloc(10)]);
    expect((await scan(hugeBytes)).map((x) => x.rule)).toEqual([expect.stringMatching(/invalid-length|truncated/)]);
    const longLine = Buffer.concat([Buffer.from('c'), Buffer.alloc(3_000_000, 0x61), Buffer.from('\nsystem\n.')]);
    expect(rules(await scan(longLine))).toEqual(['medium:unresolved-global']);
    const noNewline = Buffer.concat([Buffer.from('c'), Buffer.alloc(1_000_000, 0x61)]);
    expect(rules(await scan(noNewline))).toEqual(['low:truncated']);
  });

  it('non-pickles and garbage after valid opcodes are reported, not thrown', async () => {
    expect(rules(await scan(Buffer.from([0xff, 0x00])))).toEqual(['info:not-a-pickle']);
    expect(rules(await scan(Buffer.from([0x80, 0x02, 0xff])))).toEqual(['low:invalid-opcode']);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        const f = await scan(Buffer.from(bytes), 7);
        expect(Array.isArray(f)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('deflated zip entries are inflated as they are read; a bomb stops at the inflate cap; corrupt deflate is a finding', async () => {
    const poisoned = zip([
      ['archive/data/0', Buffer.alloc(100_000, 1), 'deflate'],
      ['archive/data.pkl', osSystemP4, 'deflate'],
      ['archive/version', Buffer.from('3\n'), 'deflate'],
    ]);
    for (const size of [1 << 16, 13]) expect(rules(await scan(poisoned, size))).toEqual(['critical:dangerous-global']);
    // 50 MB of MARK opcodes deflate to ~50 KB: only maxInflated bytes of it are walked.
    const bomb = zip([['archive/data.pkl', Buffer.concat([P.proto(2), Buffer.alloc(50_000_000, 0x28)]), 'deflate']]);
    expect(bomb.length).toBeLessThan(200_000);
    expect(rules(await scan(bomb, 1 << 16, { maxInflated: 1_000_000 }))).toEqual(['low:truncated', 'medium:inflate-limit']);
    const corrupt = zip([['archive/data.pkl', osSystemP4, 'deflate']]);
    corrupt.fill(0xff, 30 + 'archive/data.pkl'.length, 30 + 'archive/data.pkl'.length + 6);
    expect(await scan(corrupt)).toEqual([expect.objectContaining({ severity: 'medium', rule: 'unscannable-entry', file: 'archive/data.pkl', message: expect.stringContaining('could not be inflated') })]);
  });

  it('a zip entry without a size (data descriptor) or with an unknown compression is reported as unscannable', async () => {
    const z = zip([['archive/data.pkl', osSystemP4]]);
    const compressed = Buffer.from(z);
    compressed.writeUInt16LE(12, 8); // bzip2
    expect(rules(await scan(compressed))).toContain('medium:unscannable-entry');
    const described = Buffer.from(z);
    described.writeUInt16LE(8, 6);
    described.writeUInt32LE(0, 18);
    expect(rules(await scan(described))).toEqual(['medium:unscannable-entry']);
  });
});
