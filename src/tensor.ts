// Tensor: a shape, a dtype and a GPU buffer (refcounted storage), plus the autograd fields; scopes that free intermediates.

import { runtime, type BufferRange } from './gpu/runtime.js';
import type { GpuBuffer } from './gpu/pool.js';
import { backward } from './autograd.js';
import type { GradFn } from './autograd.js';

export type DType = 'f32' | 'i32' | 'f16';
export type Shape = readonly number[];
export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, i32: 4, f16: 2 };

/** A pooled GPU buffer shared by a tensor and its views (reshape, detach); back to the pool at refs = 0. */
class Storage {
  refs = 1;
  constructor(readonly buf: GpuBuffer, readonly byteLength: number) {}
  release(): void {
    if (--this.refs === 0) runtime().pool.release(this.buf);
  }
}

/** Open scopes, innermost last. Every tensor made while a scope is open belongs to the innermost one. */
const scopes: Set<Tensor>[] = [];

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  requiresGrad: boolean;
  /** dL/dthis after backward(), for tensors with requiresGrad and no gradFn (leaves). Lives as long as the tensor. */
  grad: Tensor | null = null;
  /** How this tensor was computed (null for leaves and for results made under noGrad). */
  gradFn: GradFn | null = null;
  private storage: Storage | null;
  private scope: Set<Tensor> | null = null;

  /** Internal: ops make tensors with empty() or Tensor.view(); users call tensor()/zeros()/.... */
  constructor(storage: Storage, shape: Shape, dtype: DType, requiresGrad = false) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
    this.requiresGrad = requiresGrad;
    const s = scopes[scopes.length - 1];
    if (s) {
      s.add(this);
      this.scope = s;
    }
  }

  get ndim(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storage === null;
  }

  /** The buffer range to bind in a kernel. Throws a clear error if the tensor was disposed. */
  get range(): BufferRange {
    const s = this.storage;
    if (!s) {
      throw new Error(
        `webgpu-lm: a disposed tensor was used (${describe(this)}). It was freed by dispose() or by the end of a tidy() ` +
          'scope; return it from the scope or keep() it to use it later.',
      );
    }
    return { buf: s.buf, offset: 0, size: s.byteLength };
  }

  /** Frees the GPU memory now (and the .grad). Safe to call twice. */
  dispose(): void {
    if (!this.storage) return;
    this.storage.release();
    this.storage = null;
    this.scope?.delete(this);
    this.scope = null;
    this.grad?.dispose();
    this.grad = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Copies the data to the CPU: the only read-back. Submits all recorded GPU work first. */
  async toArray(): Promise<Float32Array | Int32Array> {
    const range = this.range;
    // An empty tensor still owns a 4-byte buffer (WebGPU has no empty bindings); it reads back as no elements.
    const bytes = this.size === 0 ? new ArrayBuffer(0) : await runtime().read({ ...range, size: this.size * BYTES_PER_ELEMENT[this.dtype] });
    if (this.dtype === 'i32') return new Int32Array(bytes);
    if (this.dtype === 'f32') return new Float32Array(bytes);
    return halfToFloat(new Uint16Array(bytes));
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item(): tensor has ${this.size} elements (shape [${this.shape}]), expected 1`);
    return (await this.toArray())[0]!;
  }

  /** Overwrites this tensor's data from the CPU (same element count and dtype), like torch's copy_. */
  upload(data: Float32Array | Int32Array | Uint16Array): this {
    const want = this.dtype === 'f32' ? Float32Array : this.dtype === 'i32' ? Int32Array : Uint16Array;
    if (!(data instanceof want) || data.length !== this.size) {
      throw new Error(`upload(): tensor ${describe(this)} needs a ${want.name} of ${this.size} values, got a ${data.constructor.name} of ${data.length}`);
    }
    if (this.size > 0) runtime().write(this.range, data);
    return this;
  }

  /** Backpropagates from this tensor: fills .grad of every leaf with requiresGrad it depends on. */
  backward(gradient?: Tensor): void {
    backward(this, gradient);
  }

  /** A tensor sharing this one's memory, cut off from the autograd graph. */
  detach(): Tensor {
    return Tensor.view(this, this.shape);
  }

  toString(): string {
    return `Tensor(${describe(this)})`;
  }

  /** Internal: a new tensor sharing this storage with another shape (same element count). */
  static view(src: Tensor, shape: Shape, requiresGrad = false): Tensor {
    const s = src.storage;
    if (!s) void src.range; // throws the disposed-tensor error
    s!.refs++;
    return new Tensor(s!, shape, src.dtype, requiresGrad);
  }

  /** Internal: moves this tensor out of any scope (it now lives until dispose()). */
  untrack(): void {
    this.scope?.delete(this);
    this.scope = null;
  }

  /** Internal: moves this tensor into the innermost open scope (or out of all scopes if none is open). */
  retrack(): void {
    this.untrack();
    const s = scopes[scopes.length - 1];
    if (s && this.storage) {
      s.add(this);
      this.scope = s;
    }
  }
}

/** "[2,3] f32 (made by matmul)": used in error messages. */
export function describe(t: Tensor): string {
  return `[${t.shape.join(',')}] ${t.dtype}${t.gradFn ? ` (made by ${t.gradFn.name})` : ''}`;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(',')}]: sizes must be non-negative integers`);
    n *= d;
  }
  return n;
}

/** An uninitialised tensor from the pool (kernels write every element before anyone reads it). */
export function empty(shape: Shape, dtype: DType = 'f32', label = 'tensor'): Tensor {
  const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
  const buf = runtime().pool.acquire(bytes, label);
  // Bindings are whole 4-byte words (an odd number of f16 elements ends mid-word); an empty tensor still owns one.
  return new Tensor(new Storage(buf, Math.max(4, Math.ceil(bytes / 4) * 4)), shape, dtype);
}

type Nested = number | readonly Nested[];
export type TensorData = number | ArrayLike<number> | readonly Nested[] | Float32Array | Int32Array | Uint16Array;

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

/** Makes a tensor from CPU data: tensor([1, 2, 3]), tensor([[1, 2], [3, 4]]), tensor(float32Array, [2, 3]). */
export function tensor(data: TensorData, shape?: Shape, options: TensorOptions = {}): Tensor {
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (typeof data === 'number') {
    flat = [data];
    inferred = [];
  } else if (ArrayBuffer.isView(data)) {
    flat = data;
    inferred = [data.length];
  } else {
    ({ flat, shape: inferred } = flatten(data as readonly Nested[]));
  }
  const finalShape = shape ?? inferred;
  if (numel(finalShape) !== flat.length) {
    throw new Error(`tensor(): ${flat.length} values do not fill shape [${finalShape.join(',')}] (${numel(finalShape)} elements)`);
  }
  const dtype = options.dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint16Array ? 'f16' : 'f32');
  if (dtype === 'f16' && !(data instanceof Uint16Array)) {
    throw new Error('tensor(): f16 data must be given as a Uint16Array of IEEE half bits');
  }
  const typed =
    dtype === 'i32' ? Int32Array.from(flat) : dtype === 'f32' ? (flat instanceof Float32Array ? flat : Float32Array.from(flat)) : (flat as Uint16Array);
  if (dtype === 'i32') {
    for (let i = 0; i < flat.length; i++) {
      if (typed[i] !== flat[i]) throw new Error(`tensor(): value ${flat[i]} at index ${i} is not a 32-bit integer (dtype i32)`);
    }
  }
  const t = empty(finalShape, dtype, 'tensor()');
  if (typed.length > 0) runtime().write(t.range, typed);
  t.requiresGrad = options.requiresGrad ?? false;
  return t;
}

/** A tensor of zeros (a GPU clear, no upload). */
export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  const t = empty(shape, options.dtype ?? 'f32', 'zeros()');
  runtime().clear(t.range);
  t.requiresGrad = options.requiresGrad ?? false;
  return t;
}

function flatten(data: readonly Nested[]): { flat: number[]; shape: number[] } {
  const shape: number[] = [];
  let level: Nested = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0] as Nested;
  }
  const flat: number[] = [];
  const walk = (x: Nested, depth: number): void => {
    if (depth === shape.length) {
      if (typeof x !== 'number') throw new Error('tensor(): ragged nested array');
      flat.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) throw new Error('tensor(): ragged nested array');
    for (const y of x) walk(y, depth + 1);
  };
  walk(data, 0);
  return { flat, shape };
}

/** IEEE 754 half bits -> float32. */
function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i]!;
    const sign = x & 0x8000 ? -1 : 1;
    const exp = (x >> 10) & 0x1f;
    const frac = x & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

// ---- scopes ----

/** Tensors inside a value returned from a scope: a tensor, or arrays / plain objects / Maps holding tensors. */
export function collect(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, out);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out);
  }
}

/**
 * Runs fn and disposes every tensor made inside it except those it returns (which move to the enclosing
 * scope) and those passed to keep(). fn must be synchronous: a training step records GPU work, it does
 * not wait for it.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy(fn): fn returned a Promise; keep the scope synchronous and read results after it');
  } finally {
    scopes.pop();
    const returned = new Set<Tensor>();
    // On an exception nothing is returned: everything made inside is freed.
    collect(result, returned);
    for (const t of scope) if (!returned.has(t)) t.dispose();
    // Only this scope's tensors move out; a returned parameter made outside any scope stays unscoped.
    for (const t of returned) if (scope.has(t)) t.retrack();
  }
  return result as T;
}

/** Exempts a tensor from the current scope: it lives until dispose(). Returns it. */
export function keep<T extends Tensor>(t: T): T {
  t.untrack();
  return t;
}

/** Number of GPU buffers held by tensors (not counting the pool's free buffers). */
export function liveBuffers(): number {
  return runtime().pool.live;
}

/** Bytes of GPU memory held by tensors. */
export function liveBytes(): number {
  return runtime().pool.liveBytes;
}
