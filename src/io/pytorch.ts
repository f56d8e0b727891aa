// PyTorch checkpoints (torch.save, zip and legacy formats) → state dict, through a restricted unpickler that runs no code.
//
// A pickle is a program for a small stack machine: opcodes push values, build tuples/dicts, and — the dangerous
// part — GLOBAL names any Python callable and REDUCE calls it with arguments. `pickle.load` of a hostile file can
// therefore call os.system. This unpickler knows only the handful of globals a state dict needs, refuses every
// other name the moment the pickle mentions it, and "calls" the allowed ones by running the TS code below.
//
// How torch.save stores a tensor: the pickle holds
//   _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
// where `storage` is not pickled inline: the pickler emits a *persistent id*, a tuple the loader resolves itself
// (BINPERSID). The raw storage bytes live outside the pickle:
//
//   zip format (torch >= 1.6): a zip archive (entries stored uncompressed) laid out as
//     <archive>/data.pkl        the pickle; persistent id = ('storage', FloatStorage, key, location, numel)
//     <archive>/data/<key>      numel·size raw little-endian bytes of that storage
//     <archive>/version, <archive>/byteorder (newer torch)
//   <archive> is the file name torch.save was given, minus its extension, so it varies: we find data.pkl.
//
//   legacy format (torch < 1.6, e.g. GPT2-Chinese-era checkpoints): five pickles back to back, then raw data:
//     1. the magic number 0x1950a86a20f9469cfc6c      2. the protocol version 1001
//     3. sys_info {protocol_version, little_endian, type_sizes}
//     4. the object; persistent id = ('storage', FloatStorage, root_key, location, numel, view_metadata)
//        with view_metadata None, or (view_key, offset, numel) for a slice of the root storage
//     5. the list of root storage keys, in the order their data follows
//   then for each key: an int64 little-endian element count, followed by count·size raw bytes.

import { unzipSync } from 'fflate';
import { DTYPE_SIZE, alignedBytes, type HostTensor, type WeightDtype } from './safetensors.js';

/** The storage classes a persistent id can name, and the element type each holds. */
const STORAGE_DTYPES: Readonly<Record<string, WeightDtype>> = {
  'torch.DoubleStorage': 'F64',
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
};

/** The callables a state dict needs; REDUCE implements each one below. */
const CALLABLES = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter']);

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** A global the allowlist accepted, by its dotted name. */
class PyGlobal {
  constructor(readonly name: string) {}
}

/**
 * A typed storage: `numel` elements of `dtype`. Legacy files deliver the bytes after the pickle that refers to
 * them, so they are filled in later; a legacy view reads a slice of its root storage instead.
 */
class Storage {
  bytes: Uint8Array | undefined;
  constructor(
    readonly dtype: WeightDtype,
    readonly numel: number,
    readonly key: string,
    readonly root?: { storage: Storage; offset: number },
  ) {}

  data(): Uint8Array {
    if (this.root) {
      const es = DTYPE_SIZE[this.dtype];
      const base = this.root.storage.data();
      const begin = this.root.offset * es;
      if (begin + this.numel * es > base.byteLength) {
        throw new Error(`pytorch: storage view '${this.key}' [${this.root.offset}, +${this.numel}) runs past its root storage '${this.root.storage.key}'`);
      }
      return base.subarray(begin, begin + this.numel * es);
    }
    if (!this.bytes) throw new Error(`pytorch: storage '${this.key}' is used by a tensor but the file holds no data for it`);
    return this.bytes;
  }
}

/** What _rebuild_tensor_v2 returns: a strided window onto a storage, turned into a HostTensor at the end. */
class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

type PersistentLoad = (pid: unknown) => unknown;

const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE', 0x28: 'MARK',
  0x73: 'SETITEM', 0x75: 'SETITEMS', 0x61: 'APPEND', 0x65: 'APPENDS', 0x58: 'BINUNICODE', 0x8d: 'BINUNICODE8',
  0x8c: 'SHORT_BINUNICODE', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2', 0x8a: 'LONG1', 0x47: 'BINFLOAT',
  0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x74: 'TUPLE',
  0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE', 0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x63: 'GLOBAL',
  0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x51: 'BINPERSID', 0x2e: 'STOP',
};

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return 'a tuple or list';
  if (v instanceof TensorRef) return 'a tensor';
  if (v instanceof Storage) return 'a storage';
  if (v instanceof PyGlobal) return v.name;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `the ${typeof v} ${String(v)}`;
}

function isIntList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/**
 * The allowed callables, implemented in TS. Nothing reaches Python semantics beyond what is written here.
 */
function callGlobal(fn: PyGlobal, args: unknown[]): unknown {
  switch (fn.name) {
    case 'collections.OrderedDict':
      // Pickled as OrderedDict() followed by SETITEMS; a JS Map keeps insertion order just the same.
      if (args.length !== 0) throw new Error('collections.OrderedDict is only rebuilt empty (items follow as SETITEMS)');
      return new Map();
    case 'torch._utils._rebuild_tensor_v2': {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]); the last three only
      // matter for autograd, which a loaded state dict does not carry.
      const [storage, offset, size, stride] = args;
      if (args.length < 6 || args.length > 7) throw new Error(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
      if (!(storage instanceof Storage)) throw new Error(`_rebuild_tensor_v2: the storage argument is ${describe(storage)}`);
      if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new Error(`_rebuild_tensor_v2: storage offset ${describe(offset)} is not a non-negative integer`);
      if (!isIntList(size) || !isIntList(stride) || size.length !== stride.length) {
        throw new Error(`_rebuild_tensor_v2: size ${JSON.stringify(size)} and stride ${JSON.stringify(stride)} must be equal-length lists of non-negative integers`);
      }
      return new TensorRef(storage, offset as number, size, stride);
    }
    case 'torch._utils._rebuild_parameter':
      // (data, requires_grad, backward_hooks): an nn.Parameter is its data tensor plus autograd flags.
      if (!(args[0] instanceof TensorRef)) throw new Error(`_rebuild_parameter: expected a tensor, got ${describe(args[0])}`);
      return args[0];
    default:
      throw new Error(`${fn.name} is a storage type, not something a checkpoint calls`);
  }
}

/** The global `module.name` if the allowlist has it; anything else stops the load right here, before any call. */
function resolveGlobal(module: string, name: string, at: string): PyGlobal {
  const full = `${module}.${name}`;
  if (CALLABLES.has(full) || Object.hasOwn(STORAGE_DTYPES, full)) return new PyGlobal(full);
  throw new Error(`refusing to load: the pickle asks for ${full}, which a model checkpoint never needs — it may be malicious (${at})`);
}

const utf8 = new TextDecoder('utf-8');

/**
 * Runs one pickle (from `start` to its STOP opcode) on the restricted machine. `where` names the pickle in errors;
 * `persistentLoad` resolves BINPERSID ids (storages). Returns the pickled value and the offset just past STOP.
 */
function unpickle(bytes: Uint8Array, start: number, where: string, persistentLoad: PersistentLoad): { value: unknown; end: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = []; // stack heights at each MARK; TUPLE/SETITEMS/APPENDS take everything above the last
  const memo = new Map<number, unknown>();
  let pos = start;
  let op = 0;
  let opAt = start;

  function fail(problem: string): never {
    const opName = op < 0 ? '' : `${OPCODE_NAMES[op] ?? `opcode 0x${op.toString(16)}`} `;
    throw new Error(`pytorch: ${where}: ${problem} (${opName}at byte ${opAt})`);
  }
  const need = (n: number): number => {
    if (pos + n > bytes.byteLength) fail(`truncated: needs ${n} more bytes, the file has ${bytes.byteLength - pos}`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => bytes[need(1)]!;
  const u32 = (): number => dv.getUint32(need(4), true);
  const u64 = (): number => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is impossibly large`);
    return Number(v);
  };
  const str = (n: number): string => {
    const at = need(n);
    return utf8.decode(bytes.subarray(at, at + n));
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('truncated: a GLOBAL name has no terminating newline');
    const s = str(end - pos);
    pos++;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || stack.length === marks[marks.length - 1]) fail('malformed: the stack is empty');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('malformed: the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const mark = marks.pop();
    if (mark === undefined) fail('malformed: no MARK to pop to');
    return stack.splice(mark);
  };
  const dictOnTop = (): Map<unknown, unknown> => {
    const d = top();
    if (!(d instanceof Map)) fail(`malformed: items set on ${describe(d)}, not a dict`);
    return d;
  };
  const listOnTop = (): unknown[] => {
    const l = top();
    if (!Array.isArray(l)) fail(`malformed: items appended to ${describe(l)}, not a list`);
    return l;
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`malformed: memo slot ${i} was never stored`);
    return memo.get(i);
  };

  for (;;) {
    opAt = pos;
    op = -1;
    if (pos >= bytes.byteLength) fail('truncated: the pickle ends before its STOP opcode');
    op = bytes[pos++]!;
    switch (op) {
      case 0x80: { // PROTO: torch.save writes protocol 2; 3-5 only add opcodes handled here
        const v = u8();
        if (v > 5) fail(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: // FRAME: a length hint for buffered readers; the whole file is already in memory
        need(8);
        break;
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        dictOnTop().set(k, v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) fail('malformed: SETITEMS with an odd number of items');
        const d = dictOnTop();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        listOnTop().push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = listOnTop();
        for (const v of items) l.push(v);
        break;
      }
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x4a: stack.push(dv.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(dv.getUint16(need(2), true)); break; // BININT2
      case 0x8a: { // LONG1: n-byte little-endian two's complement (the legacy magic number is 80 bits)
        const n = u8();
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
        if (n > 0 && bytes[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: stack.push(dv.getFloat64(need(8), false)); break; // BINFLOAT is big-endian, unlike everything else
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x63: { // GLOBAL "module\nname\n": checked against the allowlist before anything else happens
        const module = line();
        stack.push(resolveGlobal(module, line(), `${where}, byte ${opAt}`));
        break;
      }
      case 0x93: { // STACK_GLOBAL: module and name come from the stack (protocol 4)
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('malformed: STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module, name, `${where}, byte ${opAt}`));
        break;
      }
      case 0x52: { // REDUCE: callable(*args), only for allowlisted callables implemented in TS
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PyGlobal)) fail(`malformed: REDUCE calls ${describe(fn)}`);
        if (!Array.isArray(args)) fail(`malformed: REDUCE arguments are ${describe(args)}, not a tuple`);
        try {
          stack.push(callGlobal(fn, args));
        } catch (e) {
          fail((e as Error).message);
        }
        break;
      }
      case 0x62: { // BUILD: sets an object's state. An OrderedDict state dict carries `_metadata` (per-module
        // version numbers for load hooks) this way; we need none of it. Anything else would be a real object.
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map)) fail(`refusing to set the state of ${describe(obj)} to ${describe(state)}`);
        break;
      }
      case 0x51: stack.push(persistentLoad(pop())); break; // BINPERSID
      case 0x2e: { // STOP
        const value = pop();
        return { value, end: pos };
      }
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not one torch.save writes: the file is corrupt, or not a PyTorch checkpoint`);
    }
  }
}

function storageDtype(cls: unknown, where: string): WeightDtype {
  const dtype = cls instanceof PyGlobal ? STORAGE_DTYPES[cls.name] : undefined;
  if (!dtype) throw new Error(`pytorch: ${where}: a persistent id names ${describe(cls)}, not a storage type`);
  return dtype;
}

/** Fails unless `pid` is a tuple ('storage', <storage class>, key, location, numel, ...more). */
function storagePid(pid: unknown, where: string, arity: number): unknown[] {
  if (!Array.isArray(pid) || pid[0] !== 'storage') {
    const what = Array.isArray(pid) && pid[0] === 'module' ? 'a pickled nn.Module class (save model.state_dict() instead)' : describe(pid);
    throw new Error(`pytorch: ${where}: expected a storage persistent id, got ${what}`);
  }
  if (pid.length !== arity || typeof pid[2] !== 'string' || !Number.isSafeInteger(pid[4]) || (pid[4] as number) < 0) {
    throw new Error(`pytorch: ${where}: malformed storage persistent id ${JSON.stringify(pid.map((x) => describe(x)))}`);
  }
  return pid;
}

/** Element (i, j, ...) of a strided view lives at offset + Σ index·stride; copy them out in row-major order. */
function gather(data: Uint8Array, es: number, offset: number, size: number[], stride: number[], n: number): Uint8Array {
  const out = new Uint8Array(n * es);
  const index = new Array<number>(size.length).fill(0);
  let src = offset;
  for (let i = 0; i < n; i++) {
    for (let b = 0; b < es; b++) out[i * es + b] = data[src * es + b]!;
    for (let d = size.length - 1; d >= 0; d--) {
      index[d]!++;
      src += stride[d]!;
      if (index[d]! < size[d]!) break;
      src -= stride[d]! * size[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** Turns a rebuilt tensor into a HostTensor: a view of its storage when row-major contiguous, a copy otherwise. */
function materialise(name: string, t: TensorRef): HostTensor {
  const { storage, offset, size, stride } = t;
  const es = DTYPE_SIZE[storage.dtype];
  const n = size.reduce((a, b) => a * b, 1);
  // A fresh shape array: pickles memoise size tuples, so two tensors may hold the very same one.
  const shape = [...size];
  if (n === 0) return { dtype: storage.dtype, shape, bytes: new Uint8Array(0) };
  let last = offset;
  for (let d = 0; d < size.length; d++) last += (size[d]! - 1) * stride[d]!;
  if (last >= storage.numel) {
    throw new Error(`pytorch: tensor '${name}' (offset ${offset}, size [${size.join(',')}], stride [${stride.join(',')}]) reads past its ${storage.numel}-element storage '${storage.key}'`);
  }
  const data = storage.data();
  // Row-major contiguous: each stride is the product of the sizes after it (size-1 dims may carry any stride).
  let expected = 1;
  let contiguous = true;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) contiguous = false;
    expected *= size[d]!;
  }
  const bytes = contiguous ? alignedBytes(data.subarray(offset * es, (offset + n) * es), es) : gather(data, es, offset, size, stride, n);
  return { dtype: storage.dtype, shape, bytes };
}

function toStateDict(value: unknown): Map<string, HostTensor> {
  if (!(value instanceof Map)) throw new Error(`pytorch: the checkpoint holds ${describe(value)}, not a state dict (a dict of name → tensor)`);
  const out = new Map<string, HostTensor>();
  for (const [name, v] of value) {
    if (typeof name !== 'string') throw new Error(`pytorch: the state dict has a key that is ${describe(name)}, not a string`);
    if (!(v instanceof TensorRef)) throw new Error(`pytorch: state dict entry '${name}' holds ${describe(v)}, not a tensor`);
    out.set(name, materialise(name, v));
  }
  return out;
}

function parseZip(bytes: Uint8Array): Map<string, HostTensor> {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new Error(`pytorch: the zip archive cannot be read (${(e as Error).message}): the file is truncated or corrupt`);
  }
  const pkls = Object.keys(files).filter((f) => f === 'data.pkl' || f.endsWith('/data.pkl'));
  if (pkls.length !== 1) {
    const listing = Object.keys(files).slice(0, 8).join(', ');
    const problem = pkls.length === 0 ? 'has no data.pkl' : `has ${pkls.length} data.pkl entries`;
    throw new Error(`pytorch: the zip archive ${problem}, so it is not a torch.save checkpoint (entries: ${listing || 'none'})`);
  }
  const pkl = pkls[0]!;
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const byteorder = files[`${prefix}byteorder`];
  if (byteorder && utf8.decode(byteorder).trim() !== 'little') throw new Error('pytorch: the checkpoint was saved big-endian, which is not supported');

  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    const [, cls, key, , numel] = storagePid(pid, pkl, 5) as [string, unknown, string, unknown, number];
    const known = storages.get(key);
    if (known) return known;
    const dtype = storageDtype(cls, pkl);
    const record = `${prefix}data/${key}`;
    const file = files[record];
    if (!file) throw new Error(`pytorch: the pickle refers to storage '${key}' but the archive has no ${record}`);
    const nbytes = numel * DTYPE_SIZE[dtype];
    if (file.byteLength !== nbytes) {
      throw new Error(`pytorch: storage file ${record} has ${file.byteLength} bytes but ${numel} ${dtype} elements need ${nbytes}`);
    }
    const storage = new Storage(dtype, numel, key);
    storage.bytes = file;
    storages.set(key, storage);
    return storage;
  };
  return toStateDict(unpickle(files[pkl]!, 0, pkl, persistentLoad).value);
}

function parseLegacy(bytes: Uint8Array): Map<string, HostTensor> {
  const noIds: PersistentLoad = () => {
    throw new Error('pytorch: only the main pickle of a legacy file may refer to storages');
  };
  const magic = unpickle(bytes, 0, 'legacy magic number', noIds);
  if (magic.value !== LEGACY_MAGIC) {
    throw new Error(`pytorch: the file starts with a pickle of ${describe(magic.value)}, not the torch.save magic number: not a PyTorch checkpoint`);
  }
  const protocol = unpickle(bytes, magic.end, 'legacy protocol version', noIds);
  if (protocol.value !== LEGACY_PROTOCOL) throw new Error(`pytorch: legacy protocol version ${describe(protocol.value)} is not ${LEGACY_PROTOCOL}`);
  const sysInfo = unpickle(bytes, protocol.end, 'legacy sys_info', noIds);
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get('little_endian') !== true) {
    throw new Error('pytorch: the legacy sys_info does not say little_endian: True (big-endian checkpoints are not supported)');
  }

  // Root storages and views share one key space, as in torch's loader.
  const storages = new Map<string, Storage>();
  const where = 'legacy main pickle';
  const persistentLoad = (pid: unknown): Storage => {
    const [, cls, rootKey, , numel, view] = storagePid(pid, where, 6) as [string, unknown, string, unknown, number, unknown];
    const dtype = storageDtype(cls, where);
    let root = storages.get(rootKey);
    if (!root) {
      root = new Storage(dtype, numel, rootKey);
      storages.set(rootKey, root);
    }
    if (view === null) return root;
    if (!Array.isArray(view) || view.length !== 3 || typeof view[0] !== 'string' || !isIntList(view.slice(1))) {
      throw new Error(`pytorch: ${where}: malformed view metadata for storage '${rootKey}'`);
    }
    const [viewKey, offset, viewNumel] = view as [string, number, number];
    let v = storages.get(viewKey);
    if (!v) {
      v = new Storage(dtype, viewNumel, viewKey, { storage: root, offset });
      storages.set(viewKey, v);
    }
    return v;
  };
  const main = unpickle(bytes, sysInfo.end, where, persistentLoad);
  const keyList = unpickle(bytes, main.end, 'legacy storage key list', noIds);
  if (!Array.isArray(keyList.value) || !keyList.value.every((k) => typeof k === 'string')) {
    throw new Error(`pytorch: the legacy storage key list is ${describe(keyList.value)}, not a list of strings`);
  }

  let pos = keyList.end;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keyList.value as string[]) {
    const storage = storages.get(key);
    if (!storage || storage.root) throw new Error(`pytorch: the legacy storage key list names '${key}', which no tensor uses as a root storage`);
    if (pos + 8 > bytes.byteLength) throw new Error(`pytorch: the file ends at byte ${bytes.byteLength}, inside the element count of storage '${key}': truncated`);
    const count = dv.getBigInt64(pos, true);
    if (count !== BigInt(storage.numel)) throw new Error(`pytorch: storage '${key}' should hold ${storage.numel} elements but its record says ${count}`);
    pos += 8;
    const nbytes = storage.numel * DTYPE_SIZE[storage.dtype];
    if (pos + nbytes > bytes.byteLength) {
      throw new Error(`pytorch: storage '${key}' needs ${nbytes} bytes at byte ${pos} but the file has ${bytes.byteLength - pos} left: truncated`);
    }
    storage.bytes = bytes.subarray(pos, pos + nbytes);
    pos += nbytes;
  }
  // Like torch.load, bytes after the last storage are not looked at.
  return toStateDict(main.value);
}

/**
 * Reads a torch.save checkpoint — the zip format (PyTorch >= 1.6) or the legacy one — holding a state dict, and
 * returns its tensors under their stored names (buffers such as 'attn.bias' included). Tensors that shared a
 * storage in the file share memory here. Refuses, without running anything, a pickle that names any global a
 * state dict does not need.
 */
export function parsePytorch(bytes: Uint8Array): Map<string, HostTensor> {
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return parseZip(bytes);
  if (bytes[0] === 0x80) return parseLegacy(bytes);
  throw new Error('pytorch: the file is neither a zip archive (torch >= 1.6) nor a pickle (legacy torch.save)');
}
