// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_), entirely on the GPU: the norm is never read back.

import { CLIP_SCALE_WGSL, NORM_FINAL_WGSL, SUMSQ_CHUNK, sumsqPartialWGSL } from '../../kernels/optim.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { Tensor, empty } from '../tensor.js';
import { flatChunks, rangeOf, windowOf } from '../ops/bindings.js';
import { launchElementwise } from '../ops/elementwise.js';
import { fmt, grid1d } from '../ops/util.js';

// 32 invocations folding 128 elements each: the tree's barriers walk 32 lanes, not 256. On lavapipe
// `npm run bench -- --quick --only clip --no-peers` (4M gradients) took 62–69 ms against 165 ms with 256.
const partialKernel = new Kernel('grad_norm_partial', sumsqPartialWGSL(32));
const finalKernel = new Kernel('grad_norm_final', NORM_FINAL_WGSL);
const scaleKernel = new Kernel('clip_scale', CLIP_SCALE_WGSL);

/**
 * total = sqrt(sum over all grads of sum(g^2)); every grad is scaled by min(1, maxNorm / (total + 1e-6)).
 * Returns the total norm before clipping as a 0-d tensor (read it only when you log).
 * Deterministic: fixed-size blocks of SUMSQ_CHUNK elements per workgroup, then one workgroup sums the blocks
 * in order. A gradient larger than one binding is read in flat chunks of whole blocks, which changes nothing;
 * only under a binding limit below SUMSQ_CHUNK elements (setBindingLimit) do the blocks shrink to the chunks.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const grads = [...params].map((p) => p.grad).filter((g): g is Tensor => g !== null);
  const rt = runtime();
  const chunks = grads.map((g) => flatChunks(g.size, SUMSQ_CHUNK));
  const total = chunks.flat().reduce((n, [, count]) => n + Math.ceil(count / SUMSQ_CHUNK), 0);
  const partial = empty([Math.max(total, 1)], 'f32', 'grad_norm_partial');
  const norm = empty([], 'f32', 'grad_norm');
  if (total === 0) rt.clear(partial.range);
  let offset = 0;
  grads.forEach((g, i) => {
    for (const [start, count] of chunks[i]!) {
      const blocks = Math.ceil(count / SUMSQ_CHUNK);
      const out = windowOf(partial, offset, blocks);
      rt.dispatch(partialKernel, {
        buffers: [rangeOf(g, start, count), out.range],
        params: { n: count, offset: out.base },
        grid: grid1d(blocks, 1),
        label: `grad_norm_partial g${fmt(g)}${chunks[i]!.length > 1 ? ` elements ${start}..${start + count - 1}` : ''}`,
      });
      offset += blocks;
    }
  });
  rt.dispatch(finalKernel, { buffers: [partial.range, norm.range], params: { n: Math.max(total, 1) }, grid: [1], label: 'grad_norm_final' });
  partial.dispose();
  for (const g of grads) launchElementwise(scaleKernel, [norm, g], g.size, { max_norm: maxNorm }, `clip_scale g${fmt(g)}`, { whole: [norm] });
  return norm;
}
