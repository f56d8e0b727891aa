// Float64 references for torch.optim.AdamW (one step) and torch.nn.utils.clip_grad_norm_.

export interface AdamRef {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  step: number;
}

export function adamwStep(s: AdamRef, g: Float64Array, lr: number, b1: number, b2: number, eps: number, wd: number): void {
  s.step++;
  const bc1 = 1 - b1 ** s.step;
  const bc2 = 1 - b2 ** s.step;
  for (let i = 0; i < s.p.length; i++) {
    s.p[i] = s.p[i]! * (1 - lr * wd);
    s.m[i] = s.m[i]! + (1 - b1) * (g[i]! - s.m[i]!);
    s.v[i] = b2 * s.v[i]! + (1 - b2) * g[i]! * g[i]!;
    s.p[i] = s.p[i]! - (lr / bc1) * (s.m[i]! / (Math.sqrt(s.v[i]!) / Math.sqrt(bc2) + eps));
  }
}

/** Returns the total norm and scales the grads in place, as torch does. */
export function clipGradNorm(grads: Float64Array[], maxNorm: number): number {
  let sq = 0;
  for (const g of grads) for (const x of g) sq += x * x;
  const total = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
  return total;
}
