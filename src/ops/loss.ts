// Fused cross-entropy loss (forward + backward): log-softmax, target pick and reduction without materialising softmax.

import { defineOp } from '../autograd.js';
import {
  BACKWARD_COLUMNS,
  NAN_BITS,
  crossEntropyBackwardWGSL,
  crossEntropyReduceWGSL,
  crossEntropyRowsWGSL,
  type Reduction,
} from '../../kernels/cross_entropy.js';
import { rowWorkgroupSize } from '../../kernels/rows.js';
import { runtime } from '../gpu/runtime.js';
import { empty, numel, type Tensor } from '../tensor.js';
import { bindingElements, rowChunks, windowOf, type Window } from './bindings.js';
import { checkRank, dispatch, expectDtype, fmt, grid1d, kernelCache, sameShape } from './util.js';

const rowsKernel = kernelCache<`${number}`>('cross_entropy_rows', (wg) => crossEntropyRowsWGSL(Number(wg)));
const reduceKernel = kernelCache<'mean' | 'sum'>('cross_entropy_reduce', (r) => crossEntropyReduceWGSL(r === 'mean'));
const backwardKernel = kernelCache<Reduction>('cross_entropy_backward', crossEntropyBackwardWGSL);

export interface CrossEntropyOptions {
  /** Rows whose target is this get loss 0, no gradient, and are left out of the mean (default -100, as PyTorch/HF). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored rows (default), 'sum', or 'none' (one loss per row, 0 for ignored rows). */
  reduction?: Reduction;
}

/**
 * Blocks of rows [r0, r0 + rows) whose logits each fit one kernel binding: GPT-2's logits [B*T, 50257] outgrow
 * maxStorageBufferBindingSize (128 MiB on many adapters) at B*T = 668. One block when they fit.
 */
function rowBlocks(N: number, V: number): [number, number][] {
  return N * V <= bindingElements() ? [[0, N]] : rowChunks('crossEntropy', N, V);
}

/** Rows [r0, r0 + rows) of a row-major tensor with `width` 4-byte elements per row, as a window (its base is the kernel's lbase or rbase). */
function rowsWindow(t: Tensor, width: number, r0: number, rows: number): Window {
  return windowOf(t, width * r0, width * rows);
}

interface Options {
  ignoreIndex: number;
  reduction: Reduction;
  /** Rows N and classes V of logits viewed as [N, V]. */
  N: number;
  V: number;
  /** Row blocks [r0, rows) whose logits each fit one binding (rowBlocks). */
  blocks: [number, number][];
}

const crossEntropyOp = defineOp<[Tensor, Tensor], Options>({
  name: 'cross_entropy',
  forward([logits, targets], { ignoreIndex, reduction, N, V, blocks }, save) {
    const lse = empty([N], 'f32', 'cross_entropy_lse');
    const rowLoss = empty(targets.shape, 'f32', 'cross_entropy_loss');
    for (const [r0, rows] of blocks) {
      const l = rowsWindow(logits, V, r0, rows);
      const perRow = [targets, lse, rowLoss].map((t) => rowsWindow(t, 1, r0, rows));
      dispatch(rowsKernel(`${rowWorkgroupSize(V)}`), {
        buffers: [l.range, ...perRow.map((w) => w.range)],
        params: { rows, V, ignore_index: ignoreIndex, nan_bits: NAN_BITS, lbase: l.base, rbase: perRow[0]!.base },
        grid: grid1d(rows, 1),
        label: `crossEntropy logits${fmt(logits)} rows ${r0}..${r0 + rows - 1} targets${fmt(targets)}`,
      });
    }
    if (reduction === 'none') {
      save(lse);
      return rowLoss;
    }
    const out = empty([], 'f32', 'cross_entropy');
    const count = reduction === 'mean' ? empty([1], 'f32', 'cross_entropy_count') : null;
    dispatch(reduceKernel(reduction), {
      buffers: count ? [rowLoss.range, targets.range, out.range, count.range] : [rowLoss.range, targets.range, out.range],
      params: { rows: N, ignore_index: ignoreIndex, nan_bits: NAN_BITS },
      grid: [1],
      label: `crossEntropy ${reduction} over ${N} rows`,
    });
    rowLoss.dispose();
    save(lse, ...(count ? [count] : []));
    return out;
  },
  // loss_i = lse_i - logits_i,t  with  lse_i = log sum_j exp(logits_ij), so
  //   dloss_i / dlogits_ij = softmax_ij - [j = t_i],  softmax_ij = exp(logits_ij - lse_i) (recomputed, not stored),
  // times dL/dloss_i: g_i (none), g (sum), g / count (mean); ignored rows get 0. Targets get no gradient.
  backward(g, { inputs: [logits, targets], options: { ignoreIndex, reduction, V, blocks }, saved: [lse, count] }) {
    const dlogits = empty(logits.shape, 'f32', 'cross_entropy_backward');
    const maxGrid = runtime().limits.maxComputeWorkgroupsPerDimension;
    for (const [r0, rows] of blocks) {
      // Every per-row window starts at row r0 (the same base); dlogits' window is logits'.
      const l = rowsWindow(logits, V, r0, rows);
      const r = rowsWindow(targets, 1, r0, rows);
      const buffers = [l.range, r.range, rowsWindow(lse, 1, r0, rows).range];
      buffers.push(reduction === 'none' ? rowsWindow(g, 1, r0, rows).range : g.range);
      if (count) buffers.push(count.range);
      buffers.push(rowsWindow(dlogits, V, r0, rows).range);
      dispatch(backwardKernel(reduction), {
        buffers,
        params: { rows, V, ignore_index: ignoreIndex, nan_bits: NAN_BITS, lbase: l.base, rbase: r.base },
        grid: [Math.ceil(V / BACKWARD_COLUMNS), Math.min(rows, maxGrid), Math.ceil(rows / maxGrid)],
        label: `crossEntropy_backward logits${fmt(logits)} rows ${r0}..${r0 + rows - 1}`,
      });
    }
    return [dlogits, null];
  },
});

/**
 * torch.nn.functional.cross_entropy(logits, targets, ignore_index, reduction), fused.
 *
 * logits [..., V] (classes LAST, e.g. [B,T,V]; PyTorch puts them in dim 1 for >2-d input), targets i32 with
 * logits' leading shape ([B,T]) or flat [N]. Returns a 0-d tensor for 'mean'/'sum', the targets' shape for 'none'.
 * The mean divides by the number of non-ignored rows, counted on the GPU; with no such row it is NaN (as in
 * PyTorch) and every gradient is 0. A target outside [0, V) that is not ignoreIndex is never used as an index:
 * its row's loss (hence the mean) and gradient are NaN. Logits larger than one storage binding (GPT-2's
 * [B*T, 50257] soon are) are processed in blocks of rows.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, reduction = 'mean' } = options;
  expectDtype('crossEntropy', 'f32', { logits });
  expectDtype('crossEntropy', 'i32', { targets });
  checkRank('crossEntropy', logits);
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none') {
    throw new RangeError(`crossEntropy: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  }
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31) {
    throw new RangeError(`crossEntropy: ignoreIndex must be a 32-bit integer, got ${ignoreIndex}`);
  }
  if (logits.ndim === 0) throw new RangeError('crossEntropy: logits must have a class dimension, got a 0-d tensor');
  const lead = logits.shape.slice(0, -1);
  const V = logits.shape[logits.ndim - 1]!;
  const N = numel(lead);
  if (!sameShape(targets.shape, lead) && !(targets.ndim === 1 && targets.size === N)) {
    const expected = lead.length === 1 ? `[${N}]` : `[${lead}] or [${N}]`;
    throw new Error(`crossEntropy: logits ${fmt(logits)} and targets ${fmt(targets)} disagree on N (targets must be ${expected})`);
  }
  if (V === 0 && N > 0) throw new RangeError(`crossEntropy: logits ${fmt(logits)} have no classes`);
  return crossEntropyOp([logits, targets], { ignoreIndex, reduction, N, V, blocks: rowBlocks(N, V) });
}
