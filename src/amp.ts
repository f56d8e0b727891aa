// Automatic mixed precision (torch.autocast): inside autocast(), the projections read their input and weight as f16.
//
// What runs in f16 follows apex's O1 / torch.autocast's lists, cut to what this framework's kernels do: matrix
// products (Linear, Conv1D, the LM head) take f16 operands, so their saved activations and weight copies are half the
// bytes; products and sums stay f32 (kernels/matmul.ts), and so does everything else (layer norms, softmax,
// attention, the loss). Parameters stay f32 (the master weights): cast() rounds a copy each forward and its
// gradient comes back to f32. f16 gradients under- and overflow, so train with a GradScaler (optim/grad_scaler.ts).

import { cast } from './ops/elementwise.js';
import type { Tensor } from './tensor.js';

let active = false;

/** Runs fn with the matrix products' operands in f16; nests, and restores the previous setting on exit or throw. */
export function autocast<T>(fn: () => T, enabled = true): T {
  const prev = active;
  active = enabled;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

export function isAutocastEnabled(): boolean {
  return active;
}

/** x as a matrix product's operand: rounded to f16 inside autocast(), itself outside. */
export function autocastOperand(x: Tensor): Tensor {
  return active && x.dtype === 'f32' ? cast(x, 'f16') : x;
}
