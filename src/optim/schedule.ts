// Learning-rate schedules: the multiplier of the base lr at optimizer step s (0-based), as transformers' schedulers.

/**
 * Warm-up then linear decay (transformers' WarmupLinearSchedule / get_linear_schedule_with_warmup, GPT2-Chinese):
 *   s < warmup:  s / warmup
 *   otherwise:   max(0, (total - s) / (total - warmup))
 */
export function warmupLinear(step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** Warm-up then half a cosine down to 0 (get_cosine_schedule_with_warmup). */
export function warmupCosine(step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/**
 * XLNet's schedule (model_utils.get_train_op): linear warm-up from 0, then a decay over the remaining steps to
 * minRatio · lr, either linear (TF polynomial_decay with power 1, 'poly') or half a cosine (TF cosine_decay with
 * alpha = minRatio, 'cos'). After totalSteps it stays at minRatio.
 *   s < warmup:  s / warmup
 *   otherwise:   minRatio + (1 - minRatio) · f(p),  p = min(1, (s - warmup) / (total - warmup)),
 *                f(p) = 1 - p ('poly') or (1 + cos(pi p)) / 2 ('cos')
 */
export function warmupDecayToMin(step: number, warmupSteps: number, totalSteps: number, minRatio: number, method: 'poly' | 'cos'): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const p = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  const f = method === 'cos' ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
  return minRatio + (1 - minRatio) * f;
}
