// Shape ops (forward + backward): reshape and friends (free views), permute/transpose, slice/narrow, cat.
//
// Tensors are always contiguous row-major, so reshape only relabels the shape of the same memory, while
// every op that reorders elements runs a kernel (kernels/shape.ts) that moves 32-bit words: f32 and i32
// both work, and the result is bit-exact.

import { defineOp } from '../autograd.js';
import { COPY_ROWS_WGSL, PAD_WGSL, STRIDED_GATHER_WGSL, TILE, TRANSPOSE_TILED_WGSL } from '../../kernels/shape.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { Tensor, empty, numel, type Shape } from '../tensor.js';
import { checkRank, dispatch, fmt, grid1d, normDim, stridesOf } from './util.js';

const permuteKernel = new Kernel('permute', STRIDED_GATHER_WGSL);
const transposeTiledKernel = new Kernel('transpose_tiled', TRANSPOSE_TILED_WGSL);
const copyRowsKernel = new Kernel('copy_rows', COPY_ROWS_WGSL);
const padKernel = new Kernel('pad', PAD_WGSL);

/** The kernels copy 32-bit words; f16 (2-byte) elements would need their own. */
function expect32(op: string, t: Tensor, name = 'x'): void {
  if (t.dtype === 'f16') throw new TypeError(`${op}: f16 is not supported yet (${name} ${fmt(t)}); use f32 or i32`);
}

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

// ---- reshape (a view) ----

/** `shape` with its one -1 filled in so that it holds n elements; throws naming both shapes otherwise. */
function resolveShape(op: string, x: Tensor, shape: Shape): number[] {
  const free = shape.reduce((c, d) => c + (d === -1 ? 1 : 0), 0);
  if (free > 1) throw new Error(`${op}: only one dimension can be -1, got [${shape}]`);
  for (const d of shape) {
    if (d !== -1 && !(Number.isInteger(d) && d >= 0)) throw new Error(`${op}: invalid size ${d} in [${shape}]`);
  }
  const known = prod(shape.filter((d) => d !== -1));
  const out = [...shape];
  if (free === 1) {
    if (known === 0 || x.size % known !== 0) throw new Error(`${op}: cannot reshape x${fmt(x)} (${x.size} elements) to [${shape}]`);
    out[shape.indexOf(-1)] = x.size / known;
  } else if (known !== x.size) {
    throw new Error(`${op}: cannot reshape x${fmt(x)} (${x.size} elements) to [${shape}] (${known} elements)`);
  }
  return out;
}

const reshapeOp = defineOp<[Tensor], Shape>({
  name: 'reshape',
  forward([x], shape) {
    return Tensor.view(x, shape);
  },
  // dx = g read with x's shape (reshape moves no elements)
  backward(g, { inputs: [x] }) {
    return [Tensor.view(g, x.shape)];
  },
});

/** torch.reshape: the same elements with another shape; one size may be -1 (inferred). Shares memory. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  return reshapeOp([x], resolveShape('reshape', x, shape));
}

/** torch.Tensor.view: an alias of reshape (tensors are always contiguous, so it never copies). */
export const view = reshape;

/** torch.flatten: merges dims startDim..endDim into one. */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim('flatten', startDim, x.ndim);
  const e = normDim('flatten', endDim, x.ndim);
  if (s > e) throw new RangeError(`flatten: startDim ${startDim} comes after endDim ${endDim} for x${fmt(x)}`);
  return reshape(x, [...x.shape.slice(0, s), prod(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** torch.unsqueeze: inserts a dim of size 1 at `dim` (in -(rank+1)..rank). */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim('unsqueeze', dim, x.ndim + 1);
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

/** torch.squeeze: drops `dim` if it has size 1 (unchanged otherwise), or every size-1 dim when dim is undefined. */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normDim('squeeze', dim, x.ndim);
  return reshape(x, x.shape[d] === 1 ? x.shape.filter((_, i) => i !== d) : x.shape);
}

// ---- permute / transpose ----

/**
 * The same permutation on fewer dims: size-1 dims are dropped and input dims that stay next to each
 * other in the output are merged. [B,T,NH,HS] -> (0,2,1,3) stays rank 4, but [B,T,C] -> (0,2,1) with B = 1
 * becomes the plain 2-D transpose [T,C] -> (1,0), and any permutation that only moves size-1 dims
 * becomes the identity (rank <= 1).
 */
function simplifyPermutation(shape: Shape, perm: readonly number[]): { shape: number[]; perm: number[] } {
  const runs: number[][] = [];
  for (const d of perm) {
    if (shape[d] === 1) continue;
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1] === d - 1) last.push(d);
    else runs.push([d]);
  }
  const inInputOrder = [...runs].sort((a, b) => a[0]! - b[0]!);
  return {
    shape: inInputOrder.map((run) => prod(run.map((d) => shape[d]!))),
    perm: runs.map((run) => inInputOrder.indexOf(run)),
  };
}

function launchPermute(x: Tensor, perm: readonly number[]): Tensor {
  const out = empty(perm.map((d) => x.shape[d]!), x.dtype, 'permute');
  if (x.size === 0) return out;
  const label = `permute x${fmt(x)} dims [${perm}]`;
  const s = simplifyPermutation(x.shape, perm);
  if (s.perm.every((d, i) => d === i)) {
    runtime().copy(x.range, out.range);
    return out;
  }
  // After merging, swapping the last two dims of any tensor reads [1,0] (2-D) or [0,2,1] (a batch of 2-D).
  const lastTwo = s.perm.join() === '1,0' || s.perm.join() === '0,2,1';
  const [M, N] = s.shape.slice(-2) as [number, number];
  const B = s.shape.length === 3 ? s.shape[0]! : 1;
  const grid: [number, number, number] = [Math.ceil(N / TILE), Math.ceil(M / TILE), B];
  if (lastTwo && grid.every((g) => g <= runtime().limits.maxComputeWorkgroupsPerDimension)) {
    dispatch(transposeTiledKernel, { buffers: [x.range, out.range], params: { M, N }, grid, label });
    return out;
  }
  const sx = stridesOf(s.shape);
  dispatch(permuteKernel, {
    buffers: [x.range, out.range],
    params: { n: x.size, rank: s.perm.length, shape: s.perm.map((d) => s.shape[d]!), sx: s.perm.map((d) => sx[d]!) },
    grid: grid1d(x.size),
    label,
  });
  return out;
}

const permuteOp = defineOp<[Tensor], number[]>({
  name: 'permute',
  forward([x], perm) {
    return launchPermute(x, perm);
  },
  // Out's dim i is x's dim perm[i], so dx = g permuted by the inverse: x's dim perm[i] is g's dim i.
  backward(g, { options: perm }) {
    const inverse = new Array<number>(perm.length);
    perm.forEach((d, i) => (inverse[d] = i));
    return [launchPermute(g, inverse)];
  },
});

/**
 * torch.permute: out dim i is x's dim dims[i] (negative dims count from the end). E.g. attention splits
 * heads with permute(reshape(q, [B, T, NH, HS]), [0, 2, 1, 3]) -> [B, NH, T, HS].
 */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  expect32('permute', x);
  checkRank('permute', x);
  if (dims.length !== x.ndim) throw new Error(`permute: x${fmt(x)} has ${x.ndim} dims but the permutation [${dims}] has ${dims.length}`);
  const perm = dims.map((d) => normDim('permute', d, x.ndim));
  if (new Set(perm).size !== perm.length) throw new Error(`permute: [${dims}] repeats a dim; it must be a permutation of 0..${x.ndim - 1}`);
  return permuteOp([x], perm);
}

/** torch.transpose: swaps dims dim0 and dim1. */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const perm = [...x.shape.keys()];
  const a = normDim('transpose', dim0, x.ndim);
  const b = normDim('transpose', dim1, x.ndim);
  [perm[a], perm[b]] = [perm[b]!, perm[a]!];
  return permute(x, perm);
}

// ---- slice / narrow ----

/** x viewed as [outer, D, inner] around `dim`. */
function around(shape: Shape, dim: number): { outer: number; D: number; inner: number } {
  return { outer: numel(shape.slice(0, dim)), D: shape[dim]!, inner: numel(shape.slice(dim + 1)) };
}

/** dst[r·dstStride + dstOffset + j] = src[r·srcStride + srcOffset + j] for r < rows, j < width (see COPY_ROWS_WGSL). */
function copyRows(
  src: Tensor,
  dst: Tensor,
  rows: number,
  width: number,
  at: { srcStride: number; srcOffset: number; dstStride: number; dstOffset: number },
  label: string,
): void {
  const n = rows * width;
  dispatch(copyRowsKernel, { buffers: [src.range, dst.range], params: { n, width, ...at }, grid: grid1d(n), label });
}

interface SliceOptions {
  dim: number;
  start: number;
  end: number;
}

function launchSlice(x: Tensor, { dim, start, end }: SliceOptions): Tensor {
  const { outer, D, inner } = around(x.shape, dim);
  const width = (end - start) * inner;
  const out = empty(x.shape.map((d, i) => (i === dim ? end - start : d)), x.dtype, 'slice');
  copyRows(x, out, outer, width, { srcStride: D * inner, srcOffset: start * inner, dstStride: width, dstOffset: 0 }, `slice x${fmt(x)} dim ${dim} [${start}:${end}]`);
  return out;
}

const sliceOp = defineOp<[Tensor], SliceOptions>({
  name: 'slice',
  forward([x], options) {
    return launchSlice(x, options);
  },
  // out = x[..., start:end, ...], so dx = g placed at start:end along dim and 0 elsewhere.
  backward(g, { inputs: [x], options: { dim, start, end } }) {
    const { outer, D, inner } = around(x.shape, dim);
    const dx = empty(x.shape, 'f32', 'slice_backward');
    const n = outer * D * inner;
    dispatch(padKernel, {
      buffers: [g.range, dx.range],
      params: { n, dstWidth: D * inner, width: (end - start) * inner, offset: start * inner },
      grid: grid1d(n),
      label: `slice_backward g${fmt(g)} into [${x.shape}] dim ${dim} [${start}:${end}]`,
    });
    return [dx];
  },
});

/**
 * x[..., start:end, ...] along `dim` (a copy). Negative start/end count from the end of the dim; end
 * defaults to its size. Unlike Python slicing, out-of-range bounds throw instead of being clipped.
 * E.g. slice(logits, 1, -1) keeps the last position of [B, T, V]: [B, 1, V].
 */
export function slice(x: Tensor, dim: number, start: number, end?: number): Tensor {
  expect32('slice', x);
  if (x.ndim === 0) throw new RangeError('slice: cannot slice a 0-d tensor');
  const d = normDim('slice', dim, x.ndim);
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  const e = end === undefined ? size : end < 0 ? end + size : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > size || s > e) {
    throw new RangeError(`slice: [${start}:${end ?? ''}] is out of range for dim ${dim} of x${fmt(x)} (size ${size})`);
  }
  return sliceOp([x], { dim: d, start: s, end: e });
}

/** torch.narrow: `length` elements along `dim` from `start`. */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim('narrow', dim, x.ndim);
  const s = start < 0 ? start + (x.shape[d] ?? 0) : start;
  return slice(x, d, s, s + length);
}

// ---- cat ----

const catOp = defineOp<Tensor[], number>({
  name: 'cat',
  forward(xs, dim) {
    const first = xs[0]!;
    const { outer, inner } = around(first.shape, dim);
    const total = xs.reduce((n, x) => n + x.shape[dim]!, 0);
    const out = empty(first.shape.map((d, i) => (i === dim ? total : d)), first.dtype, 'cat');
    let offset = 0;
    for (const x of xs) {
      const width = x.shape[dim]! * inner;
      copyRows(x, out, outer, width, { srcStride: width, srcOffset: 0, dstStride: total * inner, dstOffset: offset * inner }, `cat x${fmt(x)} into ${fmt(out)} at ${offset} of dim ${dim}`);
      offset += x.shape[dim]!;
    }
    return out;
  },
  // out = [x0; x1; ...] along dim, so dx_i = g[..., offset_i : offset_i + size_i, ...].
  backward(g, { inputs, options: dim, needsGrad }) {
    let offset = 0;
    return inputs.map((x, i) => {
      const start = offset;
      offset += x.shape[dim]!;
      return needsGrad[i] ? launchSlice(g, { dim, start, end: offset }) : null;
    });
  },
});

/**
 * torch.cat: joins tensors along `dim`; all shapes must agree except along dim. E.g. XLNet puts its
 * memory in front of the segment: cat([mems [M, B, C], h [T, B, C]], 0) -> [M + T, B, C].
 */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('cat: expected at least one tensor');
  const first = tensors[0]!;
  expect32('cat', first, 'tensor 0');
  if (first.ndim === 0) throw new RangeError('cat: cannot concatenate 0-d tensors; unsqueeze them first');
  const d = normDim('cat', dim, first.ndim);
  tensors.forEach((t, i) => {
    if (t.dtype !== first.dtype) throw new TypeError(`cat: tensor ${i} is ${t.dtype} ${fmt(t)} but tensor 0 is ${first.dtype} ${fmt(first)}`);
    const agree = t.ndim === first.ndim && t.shape.every((n, j) => j === d || n === first.shape[j]);
    if (!agree) throw new Error(`cat: tensor ${i} has shape ${fmt(t)} but tensor 0 has ${fmt(first)}; all dims except ${d} must match`);
  });
  return catOp([...tensors], d);
}

/** Alias of cat (torch.concat). */
export const concat = cat;
