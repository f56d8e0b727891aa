// Layer normalisation (forward + backward): fused row kernels, and deterministic two-stage sums for dweight/dbias.

import { defineOp } from '../autograd.js';
import {
  COLUMN_WG,
  LAYERNORM_PARAM_PARTIALS_WGSL,
  LAYERNORM_PARAM_TOTALS_WGSL,
  layerNormBackwardWGSL,
  layerNormForwardWGSL,
  layerNormLayout,
} from '../../kernels/layernorm.js';
import { Kernel } from '../gpu/kernel.js';
import { empty, numel, type Shape, type Tensor } from '../tensor.js';
import { checkRank, dispatch, expectDtype, fmt, grid1d, kernelCache, sameShape } from './util.js';

type Affine = `${'w' | '-'}${'b' | '-'}`;
// Keyed by the affine flags and C (which fixes the workgroup size and the registers per invocation).
const forwardKernel = kernelCache<`${Affine}:${number}`>('layernorm_forward', (key) => {
  const [affine, C] = key.split(':') as [Affine, string];
  const { wg, per } = layerNormLayout(Number(C));
  return layerNormForwardWGSL(wg, per, affine[0] === 'w', affine[1] === 'b');
});
const backwardKernel = kernelCache<`${'w' | '-'}:${number}`>('layernorm_backward', (key) => {
  const [w, C] = key.split(':') as [string, string];
  const { wg, per } = layerNormLayout(Number(C));
  return layerNormBackwardWGSL(wg, per, w === 'w');
});
const partialsKernel = new Kernel('layernorm_param_partials', LAYERNORM_PARAM_PARTIALS_WGSL);
const totalsKernel = new Kernel('layernorm_param_totals', LAYERNORM_PARAM_TOTALS_WGSL);

/** Rows per block of the dweight/dbias partial sums: at least 32, more when needed to keep at most 1024 blocks. */
function rowsPerBlock(N: number): number {
  return Math.max(32, Math.ceil(N / 1024));
}

interface Options {
  /** x viewed as [N, C], C = numel(normalizedShape). */
  N: number;
  C: number;
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
}

// Inputs: [x], [x, weight], [x, bias] or [x, weight, bias], as flagged in the options.
const layerNormOp = defineOp<Tensor[], Options>({
  name: 'layer_norm',
  forward([x, ...affine], { N, C, eps, hasWeight, hasBias }, save) {
    const y = empty(x.shape, 'f32', 'layer_norm');
    const mean = empty([N], 'f32', 'layer_norm_mean');
    const rstd = empty([N], 'f32', 'layer_norm_rstd');
    dispatch(forwardKernel(`${hasWeight ? 'w' : '-'}${hasBias ? 'b' : '-'}:${C}`), {
      buffers: [x.range, ...affine.map((t) => t.range), y.range, mean.range, rstd.range],
      params: { rows: N, C, eps },
      grid: grid1d(N, 1),
      label: `layerNorm x${fmt(x)}`,
    });
    save(mean, rstd);
    return y;
  },
  // y = xhat * w + b with xhat = (x - mean) * rstd, rstd = (var + eps)^(-1/2), mean and var over the row (C).
  //   dx      = rstd * (ghat - mean_c(ghat) - xhat * mean_c(ghat * xhat)),   ghat = g * w
  //   dweight = sum_rows g * xhat,   dbias = sum_rows g
  backward(g, { inputs, options: { N, C, hasWeight, hasBias }, saved: [mean, rstd], needsGrad }) {
    const x = inputs[0];
    const weight = hasWeight ? inputs[1] : null;
    const wantW = hasWeight && needsGrad[1] === true;
    const wantB = hasBias && needsGrad[hasWeight ? 2 : 1] === true;
    let dx: Tensor | null = null;
    if (needsGrad[0]) {
      dx = empty(x.shape, 'f32', 'layer_norm_dx');
      dispatch(backwardKernel(`${weight ? 'w' : '-'}:${C}`), {
        buffers: [x.range, ...(weight ? [weight.range] : []), mean.range, rstd.range, g.range, dx.range],
        params: { rows: N, C },
        grid: grid1d(N, 1),
        label: `layerNorm_backward x${fmt(x)}`,
      });
    }
    let dweight: Tensor | null = null;
    let dbias: Tensor | null = null;
    if (wantW || wantB) {
      // Both sums come out of the same pass; the one nobody asked for is dropped.
      const rpb = rowsPerBlock(N);
      const blocks = Math.ceil(N / rpb);
      const pw = empty([blocks, C], 'f32', 'layer_norm_dweight_partial');
      const pb = empty([blocks, C], 'f32', 'layer_norm_dbias_partial');
      const columns = Math.ceil(C / COLUMN_WG);
      dispatch(partialsKernel, {
        buffers: [x.range, mean.range, rstd.range, g.range, pw.range, pb.range],
        params: { rows: N, C, rows_per_block: rpb },
        grid: [columns, blocks],
        label: `layerNorm_backward params x${fmt(x)}, ${blocks} blocks of ${rpb} rows`,
      });
      const affineShape = inputs[1].shape;
      dweight = empty(affineShape, 'f32', 'layer_norm_dweight');
      dbias = empty(affineShape, 'f32', 'layer_norm_dbias');
      dispatch(totalsKernel, {
        buffers: [pw.range, pb.range, dweight.range, dbias.range],
        params: { blocks, C },
        grid: [columns],
        label: `layerNorm_backward params totals [${C}]`,
      });
      pw.dispose();
      pb.dispose();
      if (!wantW) {
        dweight.dispose();
        dweight = null;
      }
      if (!wantB) {
        dbias.dispose();
        dbias = null;
      }
    }
    return [dx, ...(hasWeight ? [dweight] : []), ...(hasBias ? [dbias] : [])];
  },
});

/**
 * torch.nn.functional.layer_norm(x, normalizedShape, weight, bias, eps): normalises over the last
 * normalizedShape.length dims of x (for GPT-2, x [B,T,C] with normalizedShape [C], eps 1e-5), with the biased
 * variance; weight and bias (optional, each of shape normalizedShape) scale and shift the result.
 */
export function layerNorm(x: Tensor, normalizedShape: number | Shape, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const shape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  expectDtype('layerNorm', 'f32', { x });
  checkRank('layerNorm', x);
  if (shape.length === 0 || shape.length > x.ndim || !sameShape(x.shape.slice(x.ndim - shape.length), shape)) {
    throw new Error(`layerNorm: normalizedShape [${shape}] must be a non-empty suffix of the shape of x ${fmt(x)}`);
  }
  const C = numel(shape);
  if (C === 0) throw new RangeError(`layerNorm: normalizedShape [${shape}] has no elements`);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (!t) continue;
    expectDtype('layerNorm', 'f32', { [name]: t });
    if (!sameShape(t.shape, shape)) throw new Error(`layerNorm: ${name} ${fmt(t)} must have the shape normalizedShape [${shape}]`);
  }
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`layerNorm: eps must be a finite number >= 0, got ${eps}`);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return layerNormOp(inputs, { N: x.size / C, C, eps, hasWeight: !!weight, hasBias: !!bias });
}
