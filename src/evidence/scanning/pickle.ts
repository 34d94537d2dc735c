/**
 * Model-poisoning scanner: walks Python pickle opcodes (plain pickles, legacy `torch.save`
 * streams of several pickles, and PyTorch zip checkpoints) and flags imports of callables that
 * run code when the file is loaded. Nothing is executed or built: the walker keeps only the last
 * few pushed strings (to resolve STACK_GLOBAL) and a capped memo, so crafted input (deep nesting,
 * huge memo, opcode bombs, truncation) costs bounded memory and time.
 */
import { ByteReader, capped, inflateRaw } from './byte-reader.js';
import { classifyGlobal, OP, OPCODES } from './pickle-ops.js';
import type { Finding, ScanBlob, Scanner, ScanLimits } from './scanner.js';

const PICKLE_EXTENSIONS = ['.pkl', '.pickle', '.pt', '.pth', '.bin', '.ckpt', '.joblib'];
const PICKLE_MEDIA_HINTS = ['pickle', 'pytorch', 'torch'];
const MAX_KEPT_STRING = 512;
const MAX_MEMO = 100_000;
const MAX_OPS = 50_000_000;
const MAX_PICKLES_PER_STREAM = 16;
const MAX_FINDINGS = 200;
const MAX_INFLATED = 256 * 1024 * 1024;
const ZIP_LOCAL = 0x04034b50;

export interface PickleScanOptions {
  maxMemo?: number;
  maxOps?: number;
  /** Bytes inflated per deflated zip entry. */
  maxInflated?: number;
}

function findingsSink(): { list: Finding[]; add(f: Finding): void } {
  const list: Finding[] = [];
  return {
    list,
    add(f) {
      if (list.length < MAX_FINDINGS) list.push(f);
      else if (list.length === MAX_FINDINGS) list.push({ severity: 'info', rule: 'too-many-findings', message: `more than ${MAX_FINDINGS} findings; the rest are not listed` });
    },
  };
}

/** Walks pickles on `r` until the stream ends or stops looking like pickles. */
async function walkPickles(r: ByteReader, file: string | undefined, add: (f: Finding) => void, opts: Required<PickleScanOptions>): Promise<void> {
  const at = (offset: number) => ({ ...(file ? { file } : {}), offset });
  for (let n = 0; n < MAX_PICKLES_PER_STREAM; n++) {
    // A legacy torch.save stream is several pickles, then raw tensor bytes: stop at the first non-pickle.
    if (n > 0 && (!(await r.ensure(1)) || r.peek(1)[0] !== OP.PROTO)) return;
    if (!(await walkOne(r, add, at, opts))) return;
  }
}

/** One pickle up to STOP; false when it ended otherwise (truncated, invalid, limits). */
async function walkOne(r: ByteReader, add: (f: Finding) => void, at: (o: number) => { file?: string; offset: number }, opts: Required<PickleScanOptions>): Promise<boolean> {
  const memo = new Map<number, string | null>();
  let memoFull = false;
  const recent: (string | null)[] = [];
  const push = (v: string | null) => {
    recent.push(v);
    if (recent.length > 8) recent.shift();
  };
  const top = (): string | null => recent[recent.length - 1] ?? null;
  const remember = (idx: number) => {
    if (memo.size >= opts.maxMemo && !memo.has(idx)) {
      if (!memoFull) add({ severity: 'info', rule: 'memo-limit', message: `memo larger than ${opts.maxMemo} entries; later entries are not tracked`, ...at(r.offset) });
      memoFull = true;
      return;
    }
    memo.set(idx, top());
  };
  const reportGlobal = (module: string | null, name: string | null, op: string, offset: number) => {
    if (module === null || name === null) {
      add({ severity: 'medium', rule: 'unresolved-global', message: `${op} imports a callable whose name could not be resolved statically`, ...at(offset) });
      return;
    }
    const verdict = classifyGlobal(module, name);
    if (verdict === 'dangerous') add({ severity: 'critical', rule: 'dangerous-global', message: `${op} imports ${module}.${name}, which can execute code when the file is loaded`, ...at(offset) });
    else if (verdict === 'unknown') add({ severity: 'low', rule: 'unknown-global', message: `${op} imports ${module}.${name}, which is not on the allow-list of model globals`, ...at(offset) });
  };
  const text = (b: Buffer | null | undefined): string | null => (b ? b.toString('utf8') : null);
  const fail = (f: Finding): false => {
    add(f);
    return false;
  };

  for (let ops = 0; ; ops++) {
    if (ops >= opts.maxOps) {
      return fail({ severity: 'medium', rule: 'opcode-limit', message: `stopped after ${opts.maxOps} opcodes`, ...at(r.offset) });
    }
    const offset = r.offset;
    const fast = r.tryU8();
    const code = fast !== -1 ? fast : await r.u8();
    if (code === null) {
      return fail({ severity: ops === 0 ? 'info' : 'low', rule: 'truncated', message: 'pickle ends before its STOP opcode', ...at(offset) });
    }
    const op = OPCODES.get(code);
    if (!op) {
      return fail({ severity: ops === 0 ? 'info' : 'low', rule: ops === 0 ? 'not-a-pickle' : 'invalid-opcode', message: `byte 0x${code.toString(16).padStart(2, '0')} is not a pickle opcode`, ...at(offset) });
    }
    let value: string | null = null;
    let arg: Buffer | null = null;
    switch (op.arg.kind) {
      case 'none':
        break;
      case 'fixed':
        arg = r.tryTake(op.arg.bytes) ?? (await r.take(op.arg.bytes));
        if (!arg) return fail({ severity: 'low', rule: 'truncated', message: `${op.name} argument cut off`, ...at(offset) });
        break;
      case 'counted': {
        const lenBytes = await r.take(op.arg.lenBytes);
        if (!lenBytes) return fail({ severity: 'low', rule: 'truncated', message: `${op.name} length cut off`, ...at(offset) });
        const len = op.arg.lenBytes === 1 ? lenBytes[0]! : op.arg.lenBytes === 4 ? lenBytes.readUInt32LE(0) : Number(lenBytes.readBigUInt64LE(0));
        if (!Number.isSafeInteger(len)) return fail({ severity: 'low', rule: 'invalid-length', message: `${op.name} declares an impossible length`, ...at(offset) });
        if (op.arg.text && len <= MAX_KEPT_STRING) {
          const b = await r.take(len);
          if (!b) return fail({ severity: 'low', rule: 'truncated', message: `${op.name} data cut off`, ...at(offset) });
          value = b.toString('utf8');
        } else if (!(await r.skip(len))) {
          return fail({ severity: 'low', rule: 'truncated', message: `${op.name} data cut off`, ...at(offset) });
        }
        break;
      }
      case 'line': {
        const first = await r.line(MAX_KEPT_STRING);
        if (first === undefined) return fail({ severity: 'low', rule: 'truncated', message: `${op.name} argument cut off`, ...at(offset) });
        if (op.arg.lines === 2) {
          const second = await r.line(MAX_KEPT_STRING);
          if (second === undefined) return fail({ severity: 'low', rule: 'truncated', message: `${op.name} argument cut off`, ...at(offset) });
          reportGlobal(text(first)?.trim() ?? null, text(second)?.trim() ?? null, op.name, offset);
          push(null);
          continue;
        }
        arg = first;
        break;
      }
    }

    switch (code) {
      case OP.STOP:
        return true;
      case OP.STACK_GLOBAL:
        reportGlobal(recent[recent.length - 2] ?? null, recent[recent.length - 1] ?? null, op.name, offset);
        push(null);
        break;
      case OP.MEMOIZE:
        remember(memo.size);
        break;
      case OP.BINPUT:
        remember(arg![0]!);
        break;
      case OP.LONG_BINPUT:
        remember(arg!.readUInt32LE(0));
        break;
      case OP.PUT:
        remember(Number.parseInt(text(arg) ?? '-1', 10));
        break;
      case OP.BINGET:
        push(memo.get(arg![0]!) ?? null);
        break;
      case OP.LONG_BINGET:
        push(memo.get(arg!.readUInt32LE(0)) ?? null);
        break;
      case OP.GET:
        push(memo.get(Number.parseInt(text(arg) ?? '-1', 10)) ?? null);
        break;
      case OP.FRAME:
      case OP.PROTO:
        break;
      case OP.STRING: {
        // Protocol 0 strings are quoted Python literals: 'os' or "os".
        const t = text(arg);
        push(t && t.length >= 2 && (t[0] === "'" || t[0] === '"') ? t.slice(1, -1) : null);
        break;
      }
      case OP.UNICODE:
        push(text(arg));
        break;
      default:
        push(value);
    }
  }
}

interface ZipEntry {
  name: string;
  method: number;
  size: number;
  streamable: boolean;
}

async function readZipHeader(r: ByteReader): Promise<ZipEntry | null> {
  const h = await r.take(30);
  if (!h || h.readUInt32LE(0) !== ZIP_LOCAL) return null;
  const flags = h.readUInt16LE(6);
  const method = h.readUInt16LE(8);
  let size = h.readUInt32LE(18);
  const nameLen = h.readUInt16LE(26);
  const extraLen = h.readUInt16LE(28);
  const name = await r.take(nameLen);
  if (!name) return null;
  const nameStr = name.toString('utf8');
  const extra = await r.take(extraLen);
  if (!extra) return null;
  if (size === 0xffffffff) {
    // Zip64: the real size is in extra field 0x0001 (uncompressed, then compressed size).
    for (let i = 0; i + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(i);
      const len = extra.readUInt16LE(i + 2);
      if (id === 1 && len >= 16 && i + 4 + 16 <= extra.length) size = Number(extra.readBigUInt64LE(i + 12));
      i += 4 + len;
    }
  }
  // With a data descriptor (flag bit 3) the header may not know the size: such entries cannot be streamed.
  const streamable = !((flags & 8) !== 0 && size === 0) && Number.isSafeInteger(size);
  return { name: nameStr, method, size, streamable };
}

/** Scans every pickle entry of a PyTorch-style zip read from `r` (positioned after the signature check). */
async function walkZip(r: ByteReader, add: (f: Finding) => void, opts: Required<PickleScanOptions>): Promise<void> {
  let pickles = 0;
  for (;;) {
    const start = r.offset;
    const entry = await readZipHeader(r);
    if (!entry) break; // central directory (or garbage): every local entry has been seen
    const isPickle = entry.name.endsWith('.pkl') || entry.name.endsWith('.pickle');
    if (!entry.streamable) {
      add({ severity: isPickle ? 'medium' : 'info', rule: 'unscannable-entry', message: `zip entry ${entry.name} has no size in its local header; not scanned, and nothing after it`, file: entry.name, offset: start });
      return;
    }
    if (isPickle && entry.method !== 0 && entry.method !== 8) {
      add({ severity: 'medium', rule: 'unscannable-entry', message: `zip entry ${entry.name} uses compression method ${entry.method}; only stored and deflated entries are scanned`, file: entry.name, offset: start });
    }
    const sub = r.sub(entry.size);
    if (isPickle && (entry.method === 0 || entry.method === 8)) {
      pickles++;
      // Deflated entries are inflated as they are read, capped so a zip bomb cannot run long.
      const inflated = entry.method === 8 ? capped(inflateRaw(sub.stream), opts.maxInflated) : null;
      const entryReader = new ByteReader(inflated ? inflated.stream : sub.stream);
      try {
        await walkPickles(entryReader, entry.name, add, opts);
        await entryReader.close();
        if (inflated?.truncated()) add({ severity: 'medium', rule: 'inflate-limit', message: `zip entry ${entry.name} inflates past ${opts.maxInflated} bytes; the rest was not scanned`, file: entry.name, offset: start });
      } catch (err) {
        add({ severity: 'medium', rule: 'unscannable-entry', message: `zip entry ${entry.name} could not be inflated: ${err instanceof Error ? err.message : String(err)}`, file: entry.name, offset: start });
      }
    }
    if (!(await sub.rest())) {
      add({ severity: 'low', rule: 'truncated', message: `zip entry ${entry.name} is cut off`, file: entry.name, offset: start });
      return;
    }
    if ((await r.ensure(4)) === false) break;
  }
  if (pickles === 0) add({ severity: 'info', rule: 'no-pickle', message: 'zip archive contains no .pkl entry' });
}

/** Scans one stream: a zip checkpoint or a plain/legacy pickle stream. */
export async function scanPickleStream(bytes: AsyncIterable<Uint8Array>, options: PickleScanOptions = {}): Promise<Finding[]> {
  const opts = { maxMemo: options.maxMemo ?? MAX_MEMO, maxOps: options.maxOps ?? MAX_OPS, maxInflated: options.maxInflated ?? MAX_INFLATED };
  const sink = findingsSink();
  const r = new ByteReader(bytes);
  const isZip = (await r.ensure(4)) && r.peek(4).readUInt32LE(0) === ZIP_LOCAL;
  if (isZip) await walkZip(r, sink.add, opts);
  else await walkPickles(r, undefined, sink.add, opts);
  return sink.list;
}

export class PickleScanner implements Scanner {
  readonly id = 'pickle';
  readonly version = '1';
  constructor(private readonly options: PickleScanOptions = {}) {}

  wants(blob: Omit<ScanBlob, 'repository' | 'manifest'>): boolean {
    const name = blob.fileName?.toLowerCase() ?? '';
    const media = blob.mediaType.toLowerCase();
    return PICKLE_EXTENSIONS.some((e) => name.endsWith(e)) || PICKLE_MEDIA_HINTS.some((h) => media.includes(h));
  }

  async scan(_blob: ScanBlob, bytes: AsyncIterable<Uint8Array>, _limits: ScanLimits): Promise<Finding[]> {
    return scanPickleStream(bytes, this.options);
  }
}
