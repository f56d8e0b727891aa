// Reductions (forward + backward): sum, mean and max over axes; sumToShape for broadcasting gradients.

import { defineOp } from '../autograd.js';
import { MAX_BACKWARD_WGSL, reduceColumnsWGSL, reduceRowsWGSL, type ReduceOp } from '../../kernels/reduce.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { Tensor, empty, numel, type Shape } from '../tensor.js';
import { expand, mul } from './elementwise.js';
import { fitsBinding, rowChunks, windowElements, windowOf } from './bindings.js';
import { dispatch, expectDtype, fmt, grid1d, kernelCache, normDim } from './util.js';

const rowsKernel = kernelCache<ReduceOp>('reduce_rows', reduceRowsWGSL);
const columnsKernel = kernelCache<ReduceOp | `${ReduceOp}+acc`>('reduce_columns', (key) => reduceColumnsWGSL(key.slice(0, 3) as ReduceOp, key.endsWith('+acc')));
const maxBackwardKernel = new Kernel('max_backward', MAX_BACKWARD_WGSL);

/** Sorted, de-duplicated, non-negative axes; all axes when dim is undefined. */
function axesOf(op: string, dim: number | readonly number[] | undefined, rank: number): number[] {
  if (dim === undefined) return [...Array(rank).keys()];
  const list = typeof dim === 'number' ? [dim] : dim;
  return [...new Set(list.map((d) => normDim(op, d, rank)))].sort((a, b) => a - b);
}

/**
 * Reduces one contiguous run of axes [from, to] of x (viewed as [outer, R, inner]). Returns the keepdim shape.
 * An x larger than one binding is reduced in pieces (columnBlocks; rows in blocks of whole rows), with the
 * same order of operations per output, so the same bits.
 */
function reduceRun(op: ReduceOp, x: Tensor, from: number, to: number, scale: number): Tensor {
  const outer = numel(x.shape.slice(0, from));
  const R = numel(x.shape.slice(from, to + 1));
  const inner = numel(x.shape.slice(to + 1));
  const shape = x.shape.map((d, i) => (i >= from && i <= to ? 1 : d));
  const out = empty(shape, 'f32', op);
  const label = `${op} x${fmt(x)} dims ${from}..${to}`;
  const whole = fitsBinding(x) && fitsBinding(out);
  if (inner === 1) {
    for (const [r0, rows] of whole ? [[0, outer]] : rowChunks(label, outer, R)) {
      const xw = windowOf(x, r0 * R, rows * R);
      const ow = windowOf(out, r0, rows);
      dispatch(rowsKernel(op), {
        buffers: [xw.range, ow.range],
        params: { rows, R, scale, xbase: xw.base, obase: ow.base },
        grid: grid1d(rows, 1),
        label: whole ? label : `${label} rows ${r0}..${r0 + rows - 1}`,
      });
    }
  } else if (whole) {
    dispatch(columnsKernel(op), { buffers: [x.range, out.range], params: { outer, R, inner, cols: inner, scale, xbase: 0, obase: 0 }, grid: grid1d(outer * inner), label });
  } else {
    const [rc, jc] = columnBlocks(inner);
    for (let o = 0; o < outer; o++) {
      for (let j0 = 0; j0 < inner; j0 += jc) {
        const cols = Math.min(jc, inner - j0);
        const ow = windowOf(out, o * inner + j0, cols);
        for (let r0 = 0; r0 === 0 || r0 < R; r0 += rc) {
          const rows = Math.min(rc, R - r0);
          const xw = windowOf(x, (o * R + r0) * inner + j0, Math.max(rows - 1, 0) * inner + cols);
          dispatch(columnsKernel(r0 === 0 ? op : `${op}+acc`), {
            buffers: [xw.range, ow.range],
            params: { outer: 1, R: rows, inner, cols, scale: r0 + rc >= R ? scale : 1, xbase: xw.base, obase: ow.base },
            grid: grid1d(cols),
            label: `${label} outer ${o} rows ${r0}..${r0 + rows - 1} cols ${j0}..${j0 + cols - 1}`,
          });
        }
      }
    }
  }
  return out;
}

/**
 * Blocks [rows, cols] of one outer index's x [R, inner] whose windows fit one binding (a block of r rows
 * and c columns spans (r - 1)·inner + c elements): all the columns of as many rows as fit, or, when one row
 * is too long, a single row at a time in blocks of columns.
 */
function columnBlocks(inner: number): [number, number] {
  const L = windowElements();
  if (inner > L) return [1, L];
  return [Math.max(1, Math.floor((L - inner) / inner) + 1), inner];
}

/** Reduces all `axes` (keepdim shape), one contiguous run of axes per kernel launch. */
function reduceAxes(op: ReduceOp, x: Tensor, axes: readonly number[], scale: number): Tensor {
  let cur = x;
  // Last run first, so earlier axis numbers stay valid (keepdim keeps the rank anyway).
  const runs: [number, number][] = [];
  for (const a of axes) {
    const last = runs[runs.length - 1];
    if (last && last[1] === a - 1) last[1] = a;
    else runs.push([a, a]);
  }
  runs.reverse().forEach(([from, to], i) => {
    const next = reduceRun(op, cur, from, to, i === runs.length - 1 ? scale : 1);
    if (cur !== x) cur.dispose();
    cur = next;
  });
  if (cur === x) cur = Tensor.view(x, x.shape);
  return cur;
}

interface ReduceOptions {
  op: 'sum' | 'mean' | 'max';
  axes: number[];
  keepdim: boolean;
}

function outShape(shape: Shape, axes: readonly number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

const reduceOp = defineOp<[Tensor], ReduceOptions>({
  name: 'reduce',
  forward([x], { op, axes, keepdim }) {
    expectDtype(op, 'f32', { x });
    const R = axes.reduce((n, a) => n * x.shape[a]!, 1);
    if (op === 'max' && R === 0) throw new Error(`max: cannot reduce over an empty dimension of x${fmt(x)}`);
    const kept = reduceAxes(op === 'max' ? 'max' : 'sum', x, axes, op === 'mean' ? 1 / R : 1);
    if (keepdim) return kept;
    const out = Tensor.view(kept, outShape(x.shape, axes, false));
    kept.dispose();
    return out;
  },
  // sum: dx = g broadcast back over the reduced axes; mean: the same / R;
  // max: dx = g at the (first) arg-max of each reduced slice, 0 elsewhere.
  backward(g, { inputs: [x], out, options: { op, axes } }) {
    const keptShape = outShape(x.shape, axes, true);
    const gk = Tensor.view(g, keptShape);
    if (op === 'sum') {
      const dx = expand(gk, x.shape);
      gk.dispose();
      return [dx];
    }
    if (op === 'mean') {
      const R = axes.reduce((n, a) => n * x.shape[a]!, 1);
      const e = expand(gk, x.shape);
      gk.dispose();
      const dx = mul(e, 1 / R);
      e.dispose();
      return [dx];
    }
    gk.dispose();
    // max over several axes: view x as [outer, R, inner] only works for one contiguous run.
    const from = axes[0]!;
    const to = axes[axes.length - 1]!;
    if (to - from + 1 !== axes.length) throw new Error('max backward: reduced axes must be contiguous');
    const outer = numel(x.shape.slice(0, from));
    const R = numel(x.shape.slice(from, to + 1));
    const inner = numel(x.shape.slice(to + 1));
    const dx = empty(x.shape, 'f32', 'max_backward');
    runtime().clear(dx.range);
    dispatch(maxBackwardKernel, {
      buffers: [x.range, out.range, g.range, dx.range],
      params: { outer, R, inner },
      grid: grid1d(outer * inner),
      label: `max_backward x${fmt(x)}`,
    });
    return [dx];
  },
});

/** torch.sum(x, dim, keepdim): over all elements when dim is undefined. */
export function sum(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return reduceOp([x], { op: 'sum', axes: axesOf('sum', dim, x.ndim), keepdim });
}

/** torch.mean(x, dim, keepdim). */
export function mean(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return reduceOp([x], { op: 'mean', axes: axesOf('mean', dim, x.ndim), keepdim });
}

/** torch.amax(x, dim, keepdim): the maximum values; the gradient goes to the first maximal element. */
export function max(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  const axes = axesOf('max', dim, x.ndim);
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1]! + 1) throw new Error(`max: reduced dims must be adjacent, got [${axes}]`);
  return reduceOp([x], { op: 'max', axes, keepdim });
}

/** Sums g over the dimensions along which a tensor of `shape` was broadcast to g's shape. Returns g itself if none. */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  const kept = reduceOp([g], { op: 'sum', axes, keepdim: true });
  const out = Tensor.view(kept, shape);
  kept.dispose();
  return out;
}
