// Dropout (forward + backward) with a counter-based GPU RNG: the mask is regenerated from the seed, never stored.

import { defineOp } from '../autograd.js';
import { DROPOUT_WGSL } from '../../kernels/dropout.js';
import { Kernel } from '../gpu/kernel.js';
import { nextSeed } from '../random.js';
import { empty, type Tensor } from '../tensor.js';
import { launchElementwise } from './elementwise.js';
import { expectDtype, fmt } from './util.js';

const dropoutKernel = new Kernel('dropout', DROPOUT_WGSL);

export interface DropoutOptions {
  p: number;
  seed: number;
}

/** The keep threshold of drop probability p: element i is kept when its hash >= threshold (kernels/dropout.ts). */
export function dropoutThreshold(p: number): number {
  // p * 2^32 rounds to 2^32 only for p within 2^-33 of 1; clamp so it still fits a u32.
  return Math.min(Math.round(p * 2 ** 32), 2 ** 32 - 1);
}

/**
 * out = x * mask(seed) / (1 - p), elementwise; the same call with g gives the backward (also of a dropout fused
 * into a matmul's store, which hashes the same flat indices).
 */
export function dropoutLaunch(x: Tensor, { p, seed }: DropoutOptions, label: string): Tensor {
  const out = empty(x.shape, 'f32', label);
  launchElementwise(dropoutKernel, [x, out], x.size, { seed, threshold: dropoutThreshold(p), scale: 1 / (1 - p) }, `${label} x${fmt(x)} p=${p}`);
  return out;
}

const dropoutOp = defineOp<[Tensor], DropoutOptions>({
  name: 'dropout',
  forward([x], options) {
    return dropoutLaunch(x, options, 'dropout');
  },
  // y = x * m / (1 - p) with the mask m fixed by the seed  =>  dx = g * m / (1 - p): the forward kernel on g.
  backward(g, { options }) {
    return [dropoutLaunch(g, options, 'dropout_backward')];
  },
});

/**
 * torch.nn.functional.dropout(x, p, training): zeroes each element with probability p and scales the kept
 * ones by 1 / (1 - p). `seed` (a u32) fixes the mask; by default each call draws one with nextSeed(), so
 * manualSeed() makes a run repeatable. With p = 0 or training = false it returns x itself (no copy, and the
 * gradient passes straight through), like PyTorch.
 */
export function dropout(x: Tensor, p = 0.5, training = true, seed?: number): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  expectDtype('dropout', 'f32', { x });
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
    throw new RangeError(`dropout: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  if (p === 0 || !training) return x;
  return dropoutOp([x], { p, seed: seed ?? nextSeed() });
}
