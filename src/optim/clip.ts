// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_), entirely on the GPU: the norm is never read back.

import { CLIP_SCALE_WGSL, NORM_FINAL_WGSL, SUMSQ_CHUNK, SUMSQ_PARTIAL_WGSL } from '../../kernels/optim.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { Tensor, empty } from '../tensor.js';
import { fmt, grid1d } from '../ops/util.js';

const partialKernel = new Kernel('grad_norm_partial', SUMSQ_PARTIAL_WGSL);
const finalKernel = new Kernel('grad_norm_final', NORM_FINAL_WGSL);
const scaleKernel = new Kernel('clip_scale', CLIP_SCALE_WGSL);

/**
 * total = sqrt(sum over all grads of sum(g^2)); every grad is scaled by min(1, maxNorm / (total + 1e-6)).
 * Returns the total norm before clipping as a 0-d tensor (read it only when you log).
 * Deterministic: fixed-size chunks per workgroup, then one workgroup sums the chunks in order.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const grads = [...params].map((p) => p.grad).filter((g): g is Tensor => g !== null);
  const rt = runtime();
  const chunks = grads.map((g) => Math.ceil(g.size / SUMSQ_CHUNK));
  const total = chunks.reduce((a, b) => a + b, 0);
  const partial = empty([Math.max(total, 1)], 'f32', 'grad_norm_partial');
  const norm = empty([], 'f32', 'grad_norm');
  if (total === 0) rt.clear(partial.range);
  let offset = 0;
  grads.forEach((g, i) => {
    rt.dispatch(partialKernel, {
      buffers: [g.range, partial.range],
      params: { n: g.size, offset },
      grid: grid1d(chunks[i]!, 1),
      label: `grad_norm_partial g${fmt(g)}`,
    });
    offset += chunks[i]!;
  });
  rt.dispatch(finalKernel, { buffers: [partial.range, norm.range], params: { n: Math.max(total, 1) }, grid: [1], label: 'grad_norm_final' });
  partial.dispose();
  for (const g of grads) {
    rt.dispatch(scaleKernel, { buffers: [norm.range, g.range], params: { n: g.size, max_norm: maxNorm }, grid: grid1d(g.size), label: `clip_scale g${fmt(g)}` });
  }
  return norm;
}
