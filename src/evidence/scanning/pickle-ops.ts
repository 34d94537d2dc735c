/**
 * Python pickle opcodes (protocols 0–5, CPython Lib/pickletools.py) and how their argument is
 * encoded, so a scanner can walk a pickle without executing or even building it.
 */
export type ArgKind =
  | { kind: 'none' }
  | { kind: 'fixed'; bytes: number }
  /** Length-prefixed data: the little-endian length takes `lenBytes` bytes. */
  | { kind: 'counted'; lenBytes: 1 | 4 | 8; text: boolean }
  /** Newline-terminated text; `lines` of them (GLOBAL and INST take two). */
  | { kind: 'line'; lines: 1 | 2 };

const none = { kind: 'none' } as const;
const fixed = (bytes: number): ArgKind => ({ kind: 'fixed', bytes });
const counted = (lenBytes: 1 | 4 | 8, text = false): ArgKind => ({ kind: 'counted', lenBytes, text });
const line = (lines: 1 | 2 = 1): ArgKind => ({ kind: 'line', lines });

export const OP = {
  GLOBAL: 0x63, // c
  INST: 0x69, // i
  STACK_GLOBAL: 0x93,
  REDUCE: 0x52, // R
  OBJ: 0x6f, // o
  NEWOBJ: 0x81,
  NEWOBJ_EX: 0x92,
  BUILD: 0x62, // b
  STOP: 0x2e, // .
  PROTO: 0x80,
  MEMOIZE: 0x94,
  PUT: 0x70, // p
  BINPUT: 0x71, // q
  LONG_BINPUT: 0x72, // r
  GET: 0x67, // g
  BINGET: 0x68, // h
  LONG_BINGET: 0x6a, // j
  FRAME: 0x95,
  STRING: 0x53, // S
  UNICODE: 0x56, // V
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE: 0x58, // X
  BINUNICODE8: 0x8d,
  SHORT_BINSTRING: 0x55, // U
  BINSTRING: 0x54, // T
} as const;

export const OPCODES = new Map<number, { name: string; arg: ArgKind }>([
  [0x28, { name: 'MARK', arg: none }],
  [0x2e, { name: 'STOP', arg: none }],
  [0x30, { name: 'POP', arg: none }],
  [0x31, { name: 'POP_MARK', arg: none }],
  [0x32, { name: 'DUP', arg: none }],
  [0x46, { name: 'FLOAT', arg: line() }],
  [0x49, { name: 'INT', arg: line() }],
  [0x4a, { name: 'BININT', arg: fixed(4) }],
  [0x4b, { name: 'BININT1', arg: fixed(1) }],
  [0x4c, { name: 'LONG', arg: line() }],
  [0x4d, { name: 'BININT2', arg: fixed(2) }],
  [0x4e, { name: 'NONE', arg: none }],
  [0x50, { name: 'PERSID', arg: line() }],
  [0x51, { name: 'BINPERSID', arg: none }],
  [0x52, { name: 'REDUCE', arg: none }],
  [0x53, { name: 'STRING', arg: line() }],
  [0x54, { name: 'BINSTRING', arg: counted(4, true) }],
  [0x55, { name: 'SHORT_BINSTRING', arg: counted(1, true) }],
  [0x56, { name: 'UNICODE', arg: line() }],
  [0x58, { name: 'BINUNICODE', arg: counted(4, true) }],
  [0x61, { name: 'APPEND', arg: none }],
  [0x62, { name: 'BUILD', arg: none }],
  [0x63, { name: 'GLOBAL', arg: line(2) }],
  [0x64, { name: 'DICT', arg: none }],
  [0x7d, { name: 'EMPTY_DICT', arg: none }],
  [0x65, { name: 'APPENDS', arg: none }],
  [0x67, { name: 'GET', arg: line() }],
  [0x68, { name: 'BINGET', arg: fixed(1) }],
  [0x69, { name: 'INST', arg: line(2) }],
  [0x6a, { name: 'LONG_BINGET', arg: fixed(4) }],
  [0x6c, { name: 'LIST', arg: none }],
  [0x5d, { name: 'EMPTY_LIST', arg: none }],
  [0x6f, { name: 'OBJ', arg: none }],
  [0x70, { name: 'PUT', arg: line() }],
  [0x71, { name: 'BINPUT', arg: fixed(1) }],
  [0x72, { name: 'LONG_BINPUT', arg: fixed(4) }],
  [0x73, { name: 'SETITEM', arg: none }],
  [0x74, { name: 'TUPLE', arg: none }],
  [0x29, { name: 'EMPTY_TUPLE', arg: none }],
  [0x75, { name: 'SETITEMS', arg: none }],
  [0x47, { name: 'BINFLOAT', arg: fixed(8) }],
  [0x80, { name: 'PROTO', arg: fixed(1) }],
  [0x81, { name: 'NEWOBJ', arg: none }],
  [0x82, { name: 'EXT1', arg: fixed(1) }],
  [0x83, { name: 'EXT2', arg: fixed(2) }],
  [0x84, { name: 'EXT4', arg: fixed(4) }],
  [0x85, { name: 'TUPLE1', arg: none }],
  [0x86, { name: 'TUPLE2', arg: none }],
  [0x87, { name: 'TUPLE3', arg: none }],
  [0x88, { name: 'NEWTRUE', arg: none }],
  [0x89, { name: 'NEWFALSE', arg: none }],
  [0x8a, { name: 'LONG1', arg: counted(1) }],
  [0x8b, { name: 'LONG4', arg: counted(4) }],
  [0x42, { name: 'BINBYTES', arg: counted(4) }],
  [0x43, { name: 'SHORT_BINBYTES', arg: counted(1) }],
  [0x8c, { name: 'SHORT_BINUNICODE', arg: counted(1, true) }],
  [0x8d, { name: 'BINUNICODE8', arg: counted(8, true) }],
  [0x8e, { name: 'BINBYTES8', arg: counted(8) }],
  [0x8f, { name: 'EMPTY_SET', arg: none }],
  [0x90, { name: 'ADDITEMS', arg: none }],
  [0x91, { name: 'FROZENSET', arg: none }],
  [0x92, { name: 'NEWOBJ_EX', arg: none }],
  [0x93, { name: 'STACK_GLOBAL', arg: none }],
  [0x94, { name: 'MEMOIZE', arg: none }],
  [0x95, { name: 'FRAME', arg: fixed(8) }],
  [0x96, { name: 'BYTEARRAY8', arg: counted(8) }],
  [0x97, { name: 'NEXT_BUFFER', arg: none }],
  [0x98, { name: 'READONLY_BUFFER', arg: none }],
]);

/**
 * Callables whose import alone means the pickle can run code, open files or reach the network
 * when loaded. `*` = every name in the module (and its submodules).
 */
export const DANGEROUS_GLOBALS: Record<string, readonly string[] | '*'> = {
  os: '*',
  posix: '*',
  nt: '*',
  subprocess: '*',
  sys: '*',
  socket: '*',
  shutil: '*',
  pty: '*',
  webbrowser: '*',
  runpy: '*',
  importlib: '*',
  code: '*',
  ctypes: '*',
  commands: '*',
  multiprocessing: '*',
  asyncio: '*',
  telnetlib: '*',
  ftplib: '*',
  smtplib: '*',
  requests: '*',
  urllib: '*',
  'urllib2': '*',
  httplib: '*',
  'http.client': '*',
  aiohttp: '*',
  pydoc: '*',
  bdb: '*',
  pdb: '*',
  timeit: '*',
  marshal: '*',
  pickle: '*',
  _pickle: '*',
  dill: '*',
  builtins: ['eval', 'exec', 'execfile', 'compile', 'open', '__import__', 'getattr', 'setattr', 'delattr', 'globals', 'locals', 'breakpoint', 'input', 'vars', 'apply'],
  __builtin__: ['eval', 'exec', 'execfile', 'compile', 'open', 'file', '__import__', 'getattr', 'setattr', 'delattr', 'globals', 'locals', 'input', 'apply'],
  operator: ['attrgetter', 'methodcaller', 'itemgetter'],
  _operator: ['attrgetter', 'methodcaller', 'itemgetter'],
  functools: ['partial', 'reduce'],
  types: ['CodeType', 'FunctionType', 'LambdaType', 'MethodType'],
  platform: ['popen'],
  'torch.hub': '*',
  'torch.storage': ['_load_from_bytes'],
  'numpy.testing._private.utils': ['runstring'],
};

/** Globals that ordinary PyTorch / NumPy / scikit-learn checkpoints import. */
export const SAFE_GLOBALS: Record<string, readonly string[] | '*'> = {
  collections: ['OrderedDict', 'defaultdict', 'Counter', 'deque'],
  'torch._utils': ['_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3', '_rebuild_parameter', '_rebuild_parameter_with_state', '_rebuild_qtensor', '_rebuild_sparse_tensor', '_rebuild_device_tensor_from_numpy', '_rebuild_meta_tensor_no_storage', '_rebuild_wrapper_subclass', '_rebuild_nested_tensor'],
  'torch._tensor': ['_rebuild_from_type_v2', '_rebuild_from_type'],
  torch: [
    'FloatStorage', 'DoubleStorage', 'HalfStorage', 'BFloat16Storage', 'LongStorage', 'IntStorage', 'ShortStorage', 'CharStorage', 'ByteStorage', 'BoolStorage',
    'ComplexFloatStorage', 'ComplexDoubleStorage', 'QInt8Storage', 'QUInt8Storage', 'QInt32Storage', 'UntypedStorage', 'TypedStorage',
    'Size', 'device', 'dtype', 'float32', 'float16', 'bfloat16', 'float64', 'int64', 'int32', 'int8', 'uint8', 'bool', 'Tensor', 'per_tensor_affine',
  ],
  'torch.nn.parameter': ['Parameter'],
  'numpy.core.multiarray': ['_reconstruct', 'scalar'],
  'numpy._core.multiarray': ['_reconstruct', 'scalar'],
  numpy: ['ndarray', 'dtype'],
  'numpy.dtypes': '*',
  _codecs: ['encode'],
  codecs: ['encode'],
  copy_reg: ['_reconstructor'],
  copyreg: ['_reconstructor'],
  builtins: ['set', 'frozenset', 'slice', 'range', 'complex', 'bytearray', 'object', 'tuple', 'list', 'dict', 'int', 'float', 'bool', 'str', 'bytes'],
  __builtin__: ['set', 'frozenset', 'slice', 'xrange', 'complex', 'bytearray', 'object', 'tuple', 'list', 'dict', 'int', 'float', 'bool', 'str', 'unicode', 'long'],
};

function lookup(table: Record<string, readonly string[] | '*'>, module: string, name: string): boolean {
  // `a.b.c` is checked as `a.b.c`, `a.b` and `a` (a module listed with `*` covers its submodules).
  const parts = module.split('.');
  for (let i = parts.length; i > 0; i--) {
    const m = parts.slice(0, i).join('.');
    if (!Object.hasOwn(table, m)) continue;
    const names = table[m]!;
    if (names === '*') return true;
    if (i === parts.length && names.includes(name)) return true;
  }
  return false;
}

export type GlobalVerdict = 'dangerous' | 'safe' | 'unknown';

export function classifyGlobal(module: string, name: string): GlobalVerdict {
  // A qualified name (protocol 4: `hub.load` in `torch`) is the same as module `torch.hub`, name `load`.
  const dot = name.lastIndexOf('.');
  if (dot !== -1) {
    const inner = classifyGlobal(`${module}.${name.slice(0, dot)}`, name.slice(dot + 1));
    if (inner === 'dangerous') return inner;
  }
  if (lookup(DANGEROUS_GLOBALS, module, name)) return 'dangerous';
  // `getattr`-style names hidden behind a dotted name (`os.path` → `system`) are checked by the module rule above.
  if (lookup(SAFE_GLOBALS, module, name)) return 'safe';
  return 'unknown';
}
