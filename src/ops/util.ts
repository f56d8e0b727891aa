// Helpers shared by ops: grids, strides, broadcasting, argument checks, kernel memoisation.

import { Kernel } from '../gpu/kernel.js';
import { runtime, type DispatchArgs } from '../gpu/runtime.js';
import type { DType, Shape, Tensor } from '../tensor.js';

export const MAX_RANK = 8;

/** A 2-D grid of `wg`-wide workgroups covering n invocations (x up to 65535, then y). */
export function grid1d(n: number, wg = 256): [number, number] {
  const groups = Math.ceil(n / wg);
  const max = runtime().limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/** Row-major strides of a contiguous tensor. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** NumPy broadcasting: align shapes on the right; each pair must be equal or contain a 1. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes [${a}] and [${b}] cannot be broadcast together (dimension ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of shape `from` as if it had the broadcast shape `to` (0 along broadcast dims). */
export function broadcastStrides(from: Shape, to: Shape): number[] {
  const s = stridesOf(from);
  return to.map((_, i) => {
    const j = i - (to.length - from.length);
    return j < 0 || from[j] === 1 ? 0 : s[j]!;
  });
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmt(t: Tensor): string {
  return `[${t.shape.join(',')}]`;
}

/** Throws unless every tensor has the dtype: "matmul: expected f32, got i32 for b [3,4]". */
export function expectDtype(op: string, dtype: DType, tensors: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== dtype) throw new TypeError(`${op}: expected ${dtype} for ${name}, got ${t.dtype} ${fmt(t)}`);
  }
}

/** Normalises a possibly negative dim against a rank, PyTorch style. */
export function normDim(op: string, dim: number, rank: number): number {
  const d = dim < 0 ? dim + rank : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(rank, 1)) throw new RangeError(`${op}: dim ${dim} is out of range for a ${rank}-d tensor`);
  return d;
}

export function checkRank(op: string, t: Tensor): void {
  if (t.ndim > MAX_RANK) throw new RangeError(`${op}: tensors of rank ${t.ndim} are not supported (max ${MAX_RANK})`);
}

/** One Kernel per variant key, built on first use (pipelines are then cached by the runtime). */
export function kernelCache<K extends string>(name: string, build: (key: K) => string): (key: K) => Kernel {
  const cache = new Map<K, Kernel>();
  return (key) => {
    let k = cache.get(key);
    if (!k) cache.set(key, (k = new Kernel(`${name}:${key}`, build(key))));
    return k;
  };
}

/** The one chokepoint, re-exported for ops. */
export function dispatch(kernel: Kernel, args: DispatchArgs): void {
  runtime().dispatch(kernel, args);
}
