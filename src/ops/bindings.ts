// Split bindings: how ops bind windows of tensors larger than one storage binding (runtime().bindingLimit).
//
// A storage binding holds at most bindingLimit bytes (128 MiB on many adapters, below GPT-2's 147 MiB
// embedding) and may start only at a multiple of minStorageBufferOffsetAlignment (256 bytes = 64 elements),
// though the buffer itself may be far larger. An op whose tensor does not fit one binding runs its kernel
// once per chunk of the work, binding only the part of the tensor that chunk touches:
//   - elementwise kernels take flat chunks whose starts are aligned (flatChunks + rangeOf), so each chunk is
//     the same kernel on a shorter array;
//   - kernels with structure (rows, matrix blocks) take a window of elements [start, start + count) that
//     may start anywhere: it is bound from the aligned element at or below `start`, and the kernel adds
//     `base` = start - that element (< 64) to its indices (windowOf, rowChunks).
// Elements are 4 bytes (f32, i32) for the kernels that split by flat chunks; matrix windows also take f16 operands.

import { runtime, type BufferRange } from '../gpu/runtime.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor.js';
import { fmt } from './util.js';

/** A binding of part of a tensor: the kernel's element i of the window is range element base + i. */
export interface Window {
  range: BufferRange;
  base: number;
}

/** Elements per alignment step (64 for 256-byte offset alignment). */
export function alignElements(): number {
  return runtime().limits.minStorageBufferOffsetAlignment / 4;
}

/** Elements one binding holds. */
export function bindingElements(): number {
  return Math.floor(runtime().bindingLimit / 4);
}

/** The most elements a window can cover wherever it starts (its binding may begin up to 63 elements earlier). */
export function windowElements(): number {
  return bindingElements() - (alignElements() - 1);
}

/** Whether the whole tensor fits one binding. */
export function fitsBinding(t: Tensor): boolean {
  return t.range.size <= runtime().bindingLimit;
}

/**
 * Elements [start, start + count) of t's memory, bound from the aligned element at or below start. f16 elements
 * are 2 bytes: their alignment step is twice as many elements (base < 128), and the size is rounded up to whole
 * 4-byte words. A window of count elements never spans more bytes than count f32 elements would.
 */
export function windowOf(t: Tensor, start: number, count: number): Window {
  const bytes = BYTES_PER_ELEMENT[t.dtype];
  const align = (alignElements() * 4) / bytes;
  const first = start - (start % align);
  const r = t.range;
  const size = Math.max(4, Math.ceil((bytes * (start + count - first)) / 4) * 4);
  return { range: { buf: r.buf, offset: r.offset + bytes * first, size }, base: start - first };
}

/** Elements [start, start + count) of t's memory, for a start that flatChunks made aligned (base 0); 4-byte elements. */
export function rangeOf(t: Tensor, start: number, count: number): BufferRange {
  if (t.dtype === 'f16') throw new TypeError(`rangeOf: ${fmt(t)} is f16; flat chunks index 4-byte elements`);
  const w = windowOf(t, start, count);
  if (w.base !== 0) throw new Error(`rangeOf: element ${start} of ${fmt(t)} is not at an aligned offset`);
  return w.range;
}

/**
 * Chunks [start, count) covering n elements, each fitting one binding, every start aligned. With `unit`,
 * chunk lengths are multiples of it where the limit allows (clipGradNorm keeps its fixed per-workgroup
 * blocks that way, and with them its exact sums). One chunk [0, n) when n elements fit.
 */
export function flatChunks(n: number, unit = 1): [number, number][] {
  const max = bindingElements();
  if (n <= max) return [[0, n]];
  const align = alignElements();
  const step = lcm(align, unit);
  const per = step <= max ? max - (max % step) : max - (max % align);
  const chunks: [number, number][] = [];
  for (let s = 0; s < n; s += per) chunks.push([s, Math.min(per, n - s)]);
  return chunks;
}

/**
 * Blocks [r0, rows) of `n` rows of `width` elements whose windows each fit one binding wherever they start:
 * as many rows per block as a window holds. Throws (naming `what`) if one row does not fit.
 */
export function rowChunks(what: string, n: number, width: number): [number, number][] {
  const per = Math.floor(windowElements() / width);
  if (per === 0) {
    throw new RangeError(
      `${what}: one row of ${width} elements (${4 * width} bytes, plus up to ${4 * (alignElements() - 1)} for offset alignment) ` +
        `does not fit one storage binding of ${runtime().bindingLimit} bytes`,
    );
  }
  const chunks: [number, number][] = [];
  for (let r = 0; r < n; r += per) chunks.push([r, Math.min(per, n - r)]);
  return chunks.length > 0 ? chunks : [[0, 0]];
}

function lcm(a: number, b: number): number {
  let [x, y] = [a, b];
  while (y) [x, y] = [y, x % y];
  return (a / x) * b;
}
