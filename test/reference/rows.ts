// Float64 CPU references for the row-wise ops (softmax, log-softmax, cross-entropy, layer norm) and dropout's mask hash.

import { mix32 } from './hash.js';
import { binary } from './elementwise.js';

/** Softmax over the last axis (length C) of x + mask, mask broadcast to x's shape; max-subtracted in float64. */
export function softmax(x: Float64Array, shape: readonly number[], mask?: Float64Array, maskShape?: readonly number[]): Float64Array {
  const v = mask ? binary(x, shape, mask, maskShape!, (a, b) => a + b) : x;
  const C = shape[shape.length - 1]!;
  const out = new Float64Array(v.length);
  for (let base = 0; base < v.length; base += C) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, v[base + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(v[base + c]! - m);
    for (let c = 0; c < C; c++) out[base + c] = Math.exp(v[base + c]! - m) / s;
  }
  return out;
}

/** log softmax over rows of length C: v - max - log sum exp(v - max). */
export function logSoftmax(x: Float64Array, C: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += C) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[base + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[base + c]! - m);
    const shift = m + Math.log(s);
    for (let c = 0; c < C; c++) out[base + c] = x[base + c]! - shift;
  }
  return out;
}

/** torch.nn.functional.cross_entropy for logits [N, V] and integer targets [N]. */
export function crossEntropy(
  logits: Float64Array,
  V: number,
  targets: ArrayLike<number>,
  { ignoreIndex = -100, reduction = 'mean' }: { ignoreIndex?: number; reduction?: 'mean' | 'sum' | 'none' } = {},
): Float64Array {
  const logp = logSoftmax(logits, V);
  const losses = new Float64Array(targets.length);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    if (t === ignoreIndex) continue;
    losses[i] = -logp[i * V + t]!;
    sum += losses[i]!;
    count++;
  }
  if (reduction === 'none') return losses;
  return Float64Array.of(reduction === 'sum' ? sum : sum / count);
}

/** Mean and 1 / sqrt(biased variance + eps) of the row x[base .. base + C). */
function rowStats(x: ArrayLike<number>, base: number, C: number, eps: number): { mean: number; rstd: number } {
  let mean = 0;
  for (let c = 0; c < C; c++) mean += x[base + c]!;
  mean /= C;
  let variance = 0;
  for (let c = 0; c < C; c++) variance += (x[base + c]! - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(variance / C + eps) };
}

/** torch.nn.functional.layer_norm over rows of length C (biased variance); weight/bias [C] optional. */
export function layerNorm(x: Float64Array, C: number, weight: Float64Array | null, bias: Float64Array | null, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += C) {
    const { mean, rstd } = rowStats(x, base, C, eps);
    for (let c = 0; c < C; c++) out[base + c] = (x[base + c]! - mean) * rstd * (weight ? weight[c]! : 1) + (bias ? bias[c]! : 0);
  }
  return out;
}

/** d/dx, d/dweight, d/dbias of Σ dy·layer_norm(x) over rows of length C, in float64 (torch's formulas). */
export function layerNormBackward(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  C: number,
  eps: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let base = 0; base < x.length; base += C) {
    const { mean, rstd } = rowStats(x, base, C, eps);
    // g = dy·w; dx = rstd·(g - mean(g) - x̂·mean(g·x̂)).
    let gMean = 0;
    let gxMean = 0;
    for (let c = 0; c < C; c++) {
      const xh = (x[base + c]! - mean) * rstd;
      const g = dy[base + c]! * w[c]!;
      gMean += g / C;
      gxMean += (g * xh) / C;
      dw[c]! += dy[base + c]! * xh;
      db[c]! += dy[base + c]!;
    }
    for (let c = 0; c < C; c++) {
      const xh = (x[base + c]! - mean) * rstd;
      dx[base + c] = rstd * (dy[base + c]! * w[c]! - gMean - xh * gxMean);
    }
  }
  return { dx, dw, db };
}

/** kernels/dropout.ts's hash on the CPU: the 32 random bits that decide element i under `seed`. */
export function dropoutBits(seed: number, i: number): number {
  return mix32(mix32(i) ^ seed);
}

