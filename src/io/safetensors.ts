// Safetensors read/write with every rule of the reference reader enforced, plus host-side dtype conversions.
//
// File layout (docs/gpt2.md §10):
//   bytes [0, 8)        N = u64 little-endian, the header length
//   bytes [8, 8+N)      UTF-8 JSON object: { "__metadata__"?: {str: str}, "<name>": {dtype, shape, data_offsets} }
//                       right-padded with spaces; data_offsets = [begin, end) relative to the data buffer
//   bytes [8+N, end)    the data buffer: every tensor, little-endian, row-major, packed with no holes
//
// Tensors are handed around as HostTensor: raw little-endian bytes plus dtype and shape. Typed-array views over
// those bytes assume a little-endian host, which is every platform WebGPU runs on.

/** The element types webgpu-lm reads; safetensors names them exactly like this. */
export type WeightDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/**
 * A tensor on the host: little-endian, row-major, exactly numel·size bytes. The parsers in src/io keep
 * `bytes.byteOffset` a multiple of the element size, so a typed-array view over it is always legal. Tensors may
 * share memory with the file they came from (and with each other, where a checkpoint tied them): treat as read-only.
 */
export interface HostTensor {
  dtype: WeightDtype;
  shape: number[];
  bytes: Uint8Array;
}

export const DTYPE_SIZE: Readonly<Record<WeightDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

function isWeightDtype(s: unknown): s is WeightDtype {
  return typeof s === 'string' && Object.hasOwn(DTYPE_SIZE, s);
}

/** Number of elements of `shape` ([] is a scalar: 1); throws on anything that is not a list of sizes. */
export function numelOf(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${what}: shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new Error(`${what}: shape ${JSON.stringify(shape)} has too many elements`);
  return n;
}

/**
 * `bytes` itself when it starts on a multiple of `align`, else an aligned copy: `new Float32Array(buf, off, n)`
 * throws when off % 4 ≠ 0, and files from other writers (or a pickle's storage records) need not be aligned.
 * The copy goes through the Uint8Array constructor because a Node Buffer's slice() is a view, not a copy.
 */
export function alignedBytes(bytes: Uint8Array, align: number): Uint8Array {
  return bytes.byteOffset % align === 0 ? bytes : new Uint8Array(bytes);
}

function checkTensor(t: HostTensor, what: string): number {
  if (!isWeightDtype(t.dtype)) throw new Error(`${what}: unknown dtype '${String(t.dtype)}'`);
  const n = numelOf(t.shape, what);
  const need = n * DTYPE_SIZE[t.dtype];
  if (t.bytes.byteLength !== need) {
    throw new Error(`${what}: shape [${t.shape.join(',')}] ${t.dtype} needs ${need} bytes but the tensor holds ${t.bytes.byteLength}`);
  }
  return n;
}

type TypedArrayOf<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

function viewAs<T>(bytes: Uint8Array, ctor: TypedArrayOf<T>): T {
  const b = alignedBytes(bytes, ctor.BYTES_PER_ELEMENT);
  return new ctor(b.buffer, b.byteOffset, b.byteLength / ctor.BYTES_PER_ELEMENT);
}

/**
 * IEEE half → single, bit for bit. f16 = 1 sign, 5 exponent (bias 15), 10 mantissa bits; f32 has bias 127,
 * so a normal number only re-biases the exponent (+112) and shifts the mantissa up 13 bits. Subnormal halves
 * (exponent 0, value mant·2^-24) are normal in f32: shift the mantissa until its leading 1 reaches the hidden
 * bit, lowering the exponent once per shift. Exponent 31 is inf (mantissa 0) or NaN (payload kept).
 */
function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = 113; // 2^-14 (the subnormal scale) is f32 exponent 113 once the leading 1 sits at bit 10
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/**
 * The tensor as float32. F32 comes back as a view of `t.bytes` (no copy) when aligned; every other dtype is
 * converted into a new array. F64 and 64-bit ints round to the nearest float32.
 */
export function toFloat32(t: HostTensor): Float32Array {
  const n = checkTensor(t, 'toFloat32');
  switch (t.dtype) {
    case 'F32':
      return viewAs(t.bytes, Float32Array);
    case 'F16': {
      const src = viewAs(t.bytes, Uint16Array);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = halfBitsToFloatBits(src[i]!);
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32, so widening is a 16-bit shift (subnormals, inf and NaN included).
      const src = viewAs(t.bytes, Uint16Array);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'I64': {
      // lo + hi·2^32 is exact in a double up to 2^53; the float32 store rounds it once.
      const w = viewAs(t.bytes, Int32Array);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = (w[2 * i]! >>> 0) + w[2 * i + 1]! * 4294967296;
      return out;
    }
    case 'F64':
      return Float32Array.from(viewAs(t.bytes, Float64Array));
    case 'I32':
      return Float32Array.from(viewAs(t.bytes, Int32Array));
    case 'I16':
      return Float32Array.from(viewAs(t.bytes, Int16Array));
    case 'I8':
      return Float32Array.from(viewAs(t.bytes, Int8Array));
    case 'U8':
      return Float32Array.from(t.bytes);
    case 'BOOL':
      return Float32Array.from(t.bytes, (b) => (b !== 0 ? 1 : 0));
  }
}

/** The tensor as int32: I32 as a view when aligned, narrower ints widened, I64 checked to fit. Floats are refused. */
export function toInt32(t: HostTensor): Int32Array {
  const n = checkTensor(t, 'toInt32');
  switch (t.dtype) {
    case 'I32':
      return viewAs(t.bytes, Int32Array);
    case 'I64': {
      // An int64 fits in int32 exactly when its high word is the sign extension of its low word.
      const w = viewAs(t.bytes, Int32Array);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const lo = w[2 * i]!;
        const hi = w[2 * i + 1]!;
        if (hi !== lo >> 31) {
          const value = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
          throw new Error(`toInt32: element ${i} of an I64 tensor is ${value}, outside the int32 range`);
        }
        out[i] = lo;
      }
      return out;
    }
    case 'I16':
      return Int32Array.from(viewAs(t.bytes, Int16Array));
    case 'I8':
      return Int32Array.from(viewAs(t.bytes, Int8Array));
    case 'U8':
      return Int32Array.from(t.bytes);
    case 'BOOL':
      return Int32Array.from(t.bytes, (b) => (b !== 0 ? 1 : 0));
    case 'F64':
    case 'F32':
    case 'F16':
    case 'BF16':
      throw new Error(`toInt32: the tensor is ${t.dtype}, a floating type; use toFloat32`);
  }
}

/** Wraps float32 data as an F32 HostTensor without copying: later writes to `data` show through. */
export function fromFloat32(data: Float32Array, shape: number[]): HostTensor {
  const n = numelOf(shape, 'fromFloat32');
  if (n !== data.length) throw new Error(`fromFloat32: shape [${shape.join(',')}] has ${n} elements but the data has ${data.length}`);
  return { dtype: 'F32', shape: [...shape], bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** The reference reader's limit: a bigger header is a corrupt length field (or a hostile file), never a real model. */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * The keys of the top-level JSON object, duplicates included (JSON.parse silently keeps only the last one).
 * Only called on text JSON.parse has accepted, so strings and brackets are known to be well formed.
 */
function topLevelKeys(json: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      const start = i;
      for (i++; json[i] !== '"'; i++) if (json[i] === '\\') i++;
      if (depth === 1 && expectKey) keys.push(JSON.parse(json.slice(start, i + 1)) as string);
      expectKey = false;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

interface Entry {
  name: string;
  dtype: WeightDtype;
  shape: number[];
  begin: number;
  end: number;
  nbytes: number;
}

function readEntry(name: string, info: unknown): Entry {
  const where = `safetensors: tensor '${name}'`;
  if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new Error(`${where}: its header entry is ${describeJson(info)}, not an object`);
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (!isWeightDtype(dtype)) {
    const known = Object.keys(DTYPE_SIZE).join(', ');
    throw new Error(`${where} has dtype ${JSON.stringify(dtype)}, which webgpu-lm does not read (it reads ${known})`);
  }
  if (!Array.isArray(shape)) throw new Error(`${where}: shape is ${describeJson(shape)}, not an array`);
  const nbytes = numelOf(shape as number[], where) * DTYPE_SIZE[dtype];
  const okOffset = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !okOffset(offsets[0]) || !okOffset(offsets[1]) || offsets[0] > offsets[1]) {
    throw new Error(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  return { name, dtype, shape: shape as number[], begin: offsets[0], end: offsets[1], nbytes };
}

/**
 * Parses a .safetensors file. Tensor bytes are views into `bytes` where aligned to their element size and copies
 * where not. The map is in data-buffer order.
 */
export function parseSafetensors(bytes: Uint8Array): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) throw new Error(`safetensors: the file is ${bytes.byteLength} bytes, too short to hold the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`safetensors: header length ${n} is over the 100,000,000-byte limit (corrupt length field, or not a safetensors file)`);
  const headerLen = Number(n);
  if (8 + headerLen > bytes.byteLength) {
    throw new Error(`safetensors: header length ${headerLen} runs past the end of the file (${bytes.byteLength - 8} bytes follow the length field): file truncated?`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new Error('safetensors: the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new Error(`safetensors: the header must be a JSON object starting with '{', but it starts with ${JSON.stringify(text.slice(0, 16))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new Error(`safetensors: the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('safetensors: the header must be a JSON object');

  const seen = new Set<string>();
  for (const key of topLevelKeys(text)) {
    if (seen.has(key)) throw new Error(`safetensors: the header names '${key}' twice`);
    seen.add(key);
  }

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new Error(`safetensors: __metadata__ is ${describeJson(info)}, not an object of strings`);
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== 'string') throw new Error(`safetensors: __metadata__ must map strings to strings, but '${k}' holds ${describeJson(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const e = readEntry(name, info);
    if (e.end - e.begin !== e.nbytes) {
      throw new Error(`safetensors: tensor '${name}' needs ${e.nbytes} bytes (shape [${e.shape.join(',')}] ${e.dtype}) but its offsets span ${e.end - e.begin}`);
    }
    entries.push(e);
  }

  // The data buffer must be tiled exactly: sorted by offsets, each tensor starts where the previous one ended,
  // the first at 0 and the last ending at the buffer's end. Holes or overlaps mean a corrupt (or crafted) header.
  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const e of entries) {
    if (e.begin > cursor) {
      const after = previous ? `after tensor '${previous}'` : 'at the start of the data buffer';
      throw new Error(`safetensors: ${e.begin - cursor} bytes ${after} belong to no tensor (hole before '${e.name}' at offset ${e.begin})`);
    }
    if (e.begin < cursor) throw new Error(`safetensors: tensor '${e.name}' [${e.begin}, ${e.end}) overlaps tensor '${previous}', which ends at ${cursor}`);
    cursor = e.end;
    previous = e.name;
  }
  if (cursor > dataLen) throw new Error(`safetensors: tensor '${previous}' ends at data offset ${cursor} but the data buffer has only ${dataLen} bytes: file truncated?`);
  if (cursor < dataLen) throw new Error(`safetensors: ${dataLen - cursor} bytes after the last tensor belong to no tensor`);

  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const view = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: alignedBytes(view, DTYPE_SIZE[e.dtype]) });
  }
  return { tensors, metadata };
}

/**
 * Position of each dtype in the reference writer's data order: its Dtype enum lists types by increasing
 * alignment (ties in a fixed order) and it writes the enum descending, so I64 precedes F64 and BF16 precedes F16.
 */
const WRITE_RANK: Readonly<Record<WeightDtype, number>> = { I64: 0, F64: 1, F32: 2, I32: 3, BF16: 4, F16: 5, I16: 6, I8: 7, U8: 8, BOOL: 9 };

/**
 * Writes a .safetensors file the way the reference writer does: tensors ordered by element size (largest first)
 * then name, so that with the header padded to a multiple of 8 every tensor starts aligned to its element size;
 * `__metadata__.format` defaults to "pt" because transformers refuses a file without it.
 */
export function serializeSafetensors(tensors: Map<string, HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`serializeSafetensors: metadata '${k}' must be a string`);
  }
  const meta = { format: 'pt', ...metadata };
  const order = [...tensors.entries()].sort(([an, a], [bn, b]) => WRITE_RANK[a.dtype] - WRITE_RANK[b.dtype] || (an < bn ? -1 : an > bn ? 1 : 0));

  // Built by hand, not with JSON.stringify of one object: JS objects put integer-like keys ("0", "12") first,
  // which would scramble the order the offsets were assigned in.
  const parts = [`"__metadata__":${JSON.stringify(meta)}`];
  let offset = 0;
  for (const [name, t] of order) {
    if (name === '__metadata__') throw new Error("serializeSafetensors: '__metadata__' is reserved and cannot name a tensor");
    checkTensor(t, `serializeSafetensors: tensor '${name}'`);
    const end = offset + t.bytes.byteLength;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLen = Math.ceil(json.byteLength / 8) * 8;

  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let at = 8 + headerLen;
  for (const [, t] of order) {
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}
