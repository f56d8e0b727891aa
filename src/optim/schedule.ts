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
