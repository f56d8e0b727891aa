// Indexing ops (forward + backward): indexSelect and embedding, row gathers whose gradient is a deterministic scatter-add.
//
// Out-of-range ids (< 0 or >= the size of the indexed dim) cannot be caught on the CPU without a
// read-back, so the kernel handles them: their output rows are zeros and they contribute no gradient.
// (PyTorch raises instead; clamping would silently train some other row.)

import { defineOp } from '../autograd.js';
import { GATHER_WGSL, SCATTER_ADD_WGSL, SCATTER_ROWS, WG } from '../../kernels/gather.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime, type BufferRange } from '../gpu/runtime.js';
import { empty, numel, type Shape, type Tensor } from '../tensor.js';
import { fitsBinding, flatChunks, rangeOf, rowChunks, windowOf } from './bindings.js';
import { dispatch, expectDtype, fmt, grid1d, normDim } from './util.js';

const gatherKernel = new Kernel('gather', GATHER_WGSL);
const scatterAddKernel = new Kernel('scatter_add', SCATTER_ADD_WGSL);

/** The table viewed as [outer, V, inner], V being the indexed dim. */
interface Rows {
  outer: number;
  V: number;
  inner: number;
}

function rowsAround(shape: Shape, dim: number): Rows {
  return { outer: numel(shape.slice(0, dim)), V: shape[dim]!, inner: numel(shape.slice(dim + 1)) };
}

/**
 * out [outer, N, inner] (given as `shape`) = x [outer, V, inner] at rows ids [N]. A table or output larger
 * than one binding (GPT-2's 147 MiB embedding) is read and written in flat chunks: every pair of an
 * output chunk and a table chunk is one launch, which writes the outputs whose row lies in that table chunk.
 */
function gather(x: Tensor, ids: Tensor, { V, inner }: Rows, shape: Shape, label: string): Tensor {
  const out = empty(shape, x.dtype, label);
  const outChunks = flatChunks(out.size);
  const xChunks = flatChunks(x.size);
  for (const [first, n] of outChunks) {
    for (const [x0, xn] of xChunks) {
      const part = outChunks.length * xChunks.length > 1 ? ` out elements ${first}..${first + n - 1} x elements ${x0}..${x0 + xn - 1}` : '';
      dispatch(gatherKernel, {
        buffers: [rangeOf(x, x0, xn), ids.range, rangeOf(out, first, n)],
        params: { n, N: ids.size, V, inner, first, x0, xn },
        grid: grid1d(n),
        label: `${label} x${fmt(x)} ids${fmt(ids)}${part}`,
      });
    }
  }
  return out;
}

/**
 * dx [outer, V, inner] (given as `shape`) = g [outer, N, inner] summed into rows ids [N], in n order. A dx
 * larger than one binding (GPT-2's embedding gradient) is summed in blocks of rows of one outer index each,
 * bound as windows: each element still has one writer that adds in n order, so the result is the same bits.
 * g and ids, activation-sized, are bound whole.
 */
function scatterAdd(g: Tensor, ids: Tensor, { outer, V, inner }: Rows, shape: Shape, label: string): Tensor {
  const dx = empty(shape, 'f32', label);
  runtime().clear(dx.range);
  const what = `${label} g${fmt(g)} ids${fmt(ids)} into [${shape}]`;
  // Column groups of WG fill grid x and overflow into z; row tiles go along y.
  const launch = (o0: number, v0: number, rows: number, cols: number, range: BufferRange, base: number, part: string): void => {
    const [gx, gz] = grid1d(cols, WG);
    dispatch(scatterAddKernel, {
      buffers: [g.range, ids.range, range],
      params: { N: ids.size, V, inner, cols, o0, v0, rows, base },
      grid: [gx, Math.ceil(rows / SCATTER_ROWS), gz],
      label: `${what}${part}`,
    });
  };
  if (fitsBinding(dx)) {
    launch(0, 0, V, outer * inner, dx.range, 0, '');
    return dx;
  }
  for (let o = 0; o < outer; o++) {
    for (const [v0, rows] of rowChunks(label, V, inner)) {
      const w = windowOf(dx, (o * V + v0) * inner, rows * inner);
      launch(o, v0, rows, inner, w.range, w.base, ` rows ${v0}..${v0 + rows - 1}${outer > 1 ? ` of outer ${o}` : ''}`);
    }
  }
  return dx;
}

// ---- indexSelect ----

const indexSelectOp = defineOp<[Tensor, Tensor], number>({
  name: 'indexSelect',
  forward([x, ids], dim) {
    const shape = x.shape.map((d, i) => (i === dim ? ids.size : d));
    return gather(x, ids, rowsAround(x.shape, dim), shape, 'index_select');
  },
  // out[..., n, ...] = x[..., ids[n], ...], so dx[..., v, ...] = sum over n with ids[n] = v of g[..., n, ...];
  // ids get no gradient.
  backward(g, { inputs: [x, ids], options: dim, needsGrad: [gx] }) {
    return [gx ? scatterAdd(g, ids, rowsAround(x.shape, dim), x.shape, 'index_select_backward') : null, null];
  },
});

/** torch.index_select: the entries of x at positions ids (i32, 1-D) along dim. Out-of-range ids give zeros. */
export function indexSelect(x: Tensor, dim: number, ids: Tensor): Tensor {
  expectDtype('indexSelect', 'i32', { ids });
  if (x.dtype === 'f16') throw new TypeError(`indexSelect: f16 is not supported yet (x ${fmt(x)}); use f32 or i32`);
  if (x.ndim === 0) throw new RangeError('indexSelect: x must have at least one dim, got a 0-d tensor');
  if (ids.ndim !== 1) throw new Error(`indexSelect: ids must be 1-D, got ids${fmt(ids)}`);
  return indexSelectOp([x, ids], normDim('indexSelect', dim, x.ndim));
}

// ---- embedding ----

const embeddingOp = defineOp<[Tensor, Tensor], undefined>({
  name: 'embedding',
  // ids [...] (e.g. [B, T]), weight [V, C] -> out [..., C]
  forward([ids, weight]) {
    const [V, C] = weight.shape as [number, number];
    return gather(weight, ids, { outer: 1, V, inner: C }, [...ids.shape, C], 'embedding');
  },
  // out[n, :] = weight[ids[n], :], so dweight[v, :] = sum over n with ids[n] = v of g[n, :]
  // (rows no id points at get 0); ids get no gradient.
  backward(g, { inputs: [ids, weight], needsGrad: [, gw] }) {
    const [V, C] = weight.shape as [number, number];
    return [null, gw ? scatterAdd(g, ids, { outer: 1, V, inner: C }, weight.shape, 'embedding_backward') : null];
  },
});

/**
 * torch.nn.functional.embedding: ids (i32, any shape [...], e.g. [B, T]) pick rows of weight [V, C];
 * out [..., C]. Ids outside 0..V-1 give zero rows and no gradient. The weight gradient is deterministic.
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  expectDtype('embedding', 'i32', { ids });
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D [V, C], got weight${fmt(weight)}`);
  if (weight.dtype === 'f16') throw new TypeError(`embedding: f16 is not supported yet (weight ${fmt(weight)}); use f32`);
  return embeddingOp([ids, weight], undefined);
}
