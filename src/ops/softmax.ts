// Softmax and log-softmax over the last axis (forward + backward), with an optional additive mask: y = softmax(x + mask).

import { defineOp } from '../autograd.js';
import { rowWorkgroupSize } from '../../kernels/rows.js';
import { softmaxBackwardWGSL, softmaxForwardWGSL } from '../../kernels/softmax.js';
import { empty, numel, type Tensor } from '../tensor.js';
import { sumToShape } from './reduce.js';
import { broadcastShapes, broadcastStrides, checkRank, dispatch, expectDtype, fmt, grid1d, kernelCache, normDim, sameShape } from './util.js';

type Variant = 'softmax' | 'log_softmax';
const PUBLIC_NAME: Record<Variant, string> = { softmax: 'softmax', log_softmax: 'logSoftmax' };

const forwardKernel = kernelCache<`${Variant}:${'masked' | 'plain'}:${number}`>('softmax_forward', (key) => {
  const [variant, mode, wg] = key.split(':') as [Variant, string, string];
  return softmaxForwardWGSL(Number(wg), variant === 'log_softmax', mode === 'masked');
});
const backwardKernel = kernelCache<`${Variant}:${number}`>('softmax_backward', (key) => {
  const [variant, wg] = key.split(':') as [Variant, string];
  return softmaxBackwardWGSL(Number(wg), variant === 'log_softmax');
});

/** x viewed as [N, C] rows over its last axis. Throws for any other dim (move that axis last first). */
function rowsOf(op: string, x: Tensor, dim: number): { N: number; C: number } {
  if (x.ndim === 0) throw new RangeError(`${op}: x must have at least one dimension, got a 0-d tensor`);
  const d = normDim(op, dim, x.ndim);
  if (d !== x.ndim - 1) {
    throw new RangeError(`${op}: only the last dim is supported (got dim ${dim} of x ${fmt(x)}); move that axis last first`);
  }
  checkRank(op, x);
  const C = x.shape[x.ndim - 1]!;
  return { N: numel(x.shape.slice(0, -1)), C };
}

function launchForward(variant: Variant, x: Tensor, mask: Tensor | null): Tensor {
  const { N, C } = rowsOf(PUBLIC_NAME[variant], x, -1);
  const y = empty(x.shape, 'f32', variant);
  const wg = rowWorkgroupSize(C);
  if (!mask) {
    dispatch(forwardKernel(`${variant}:plain:${wg}`), {
      buffers: [x.range, y.range],
      params: { rows: N, C },
      grid: grid1d(N, 1),
      label: `${variant} x${fmt(x)}`,
    });
    return y;
  }
  // Strides that read the mask as if it had x's shape: leading dims pick the row's mask base, the last the column.
  const strides = broadcastStrides(mask.shape, x.shape);
  dispatch(forwardKernel(`${variant}:masked:${wg}`), {
    buffers: [x.range, mask.range, y.range],
    params: {
      rows: N,
      C,
      lead_rank: x.ndim - 1,
      mask_col: strides[x.ndim - 1]!,
      lead_shape: x.shape.slice(0, -1),
      mask_strides: strides.slice(0, -1),
    },
    grid: grid1d(N, 1),
    label: `${variant} x${fmt(x)} mask${fmt(mask)}`,
  });
  return y;
}

function launchBackward(variant: Variant, y: Tensor, g: Tensor): Tensor {
  const { N, C } = rowsOf(PUBLIC_NAME[variant], y, -1);
  const dx = empty(y.shape, 'f32', `${variant}_backward`);
  dispatch(backwardKernel(`${variant}:${rowWorkgroupSize(C)}`), {
    buffers: [y.range, g.range, dx.range],
    params: { rows: N, C },
    grid: grid1d(N, 1),
    label: `${variant}_backward y${fmt(y)}`,
  });
  return dx;
}

const softmaxOp = defineOp<[Tensor], Variant>({
  name: 'softmax',
  forward([x], variant) {
    expectDtype(PUBLIC_NAME[variant], 'f32', { x });
    return launchForward(variant, x, null);
  },
  // softmax:      y_i = e^(x_i) / sum_j e^(x_j),  dy_i/dx_k = y_i ([i = k] - y_k)  =>  dx = y * (g - sum_j g_j y_j)
  // log-softmax:  y_i = x_i - log sum_j e^(x_j),  dy_i/dx_k = [i = k] - softmax_k     =>  dx = g - exp(y) * sum_j g_j
  backward(g, { out, options: variant }) {
    return [launchBackward(variant, out, g)];
  },
});

const maskedSoftmaxOp = defineOp<[Tensor, Tensor], undefined>({
  name: 'masked_softmax',
  forward([x, mask]) {
    expectDtype('softmax', 'f32', { x, mask });
    checkRank('softmax', mask);
    const shape = broadcastShapes('softmax', x.shape, mask.shape);
    if (!sameShape(shape, x.shape)) {
      throw new Error(`softmax: mask ${fmt(mask)} must broadcast to the shape of x ${fmt(x)}, but together they give [${shape}]`);
    }
    return launchForward('softmax', x, mask);
  },
  // y = softmax(x + mask): d(x + mask)/dx = d(x + mask)/dmask = 1, so dmask is dx summed over the dims the
  // mask was broadcast along.
  backward(g, { inputs: [, mask], out, needsGrad: [wantX, wantMask] }) {
    const dx = launchBackward('softmax', out, g);
    const dmask = wantMask ? sumToShape(dx, mask.shape) : null;
    if (!wantX && dmask !== dx) dx.dispose();
    return [wantX ? dx : null, dmask];
  },
});

/**
 * torch.softmax(x + mask, dim) over the last axis (dim must name it).
 *
 * `mask` is ADDITIVE and must broadcast to x's shape (scores [B,NH,T,T] with a mask [B,1,1,T] or [T,T]).
 * Masked positions hold a large finite negative (HF uses -1e30 or finfo(f32).min); they get probability 0.
 * x + mask is clamped to -FLT_MAX, so even finfo.min + finfo.min stays finite. A fully masked row (every
 * x + mask equal after rounding, e.g. all -1e30) gives the uniform distribution 1/C, as PyTorch does with a
 * finite mask: never NaN. (-inf masks are not supported: WGSL may assume infinities do not occur.)
 */
export function softmax(x: Tensor, dim = -1, mask?: Tensor): Tensor {
  rowsOf('softmax', x, dim);
  return mask ? maskedSoftmaxOp([x, mask], undefined) : softmaxOp([x], 'softmax');
}

/** torch.log_softmax(x, dim) over the last axis: x - max - log sum exp(x - max), in one fused kernel. */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  rowsOf('logSoftmax', x, dim);
  return softmaxOp([x], 'log_softmax');
}
