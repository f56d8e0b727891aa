// Dynamic loss scaling (torch.amp.GradScaler) on the GPU: the scale, its growth tracker and the inf/NaN flag are never read back.
//
// f16 gradients underflow to 0 below 2^-24 and overflow above 65504. Scaling the loss by S scales every gradient by
// S, lifting small ones into range; before the update they are divided by S again. S starts large (2^16); a step
// whose gradients hold an inf or NaN is skipped (AdamW's guarded step) and S halves; after growthInterval clean
// steps S doubles. Per step, as with torch:
//   scaler.scale(loss).backward();  scaler.unscale_(opt);  clipGradNorm(...);  scaler.step(opt);  scaler.update();
// Kernels: kernels/optim.ts (UNSCALE_WGSL, SCALE_UPDATE_WGSL). Reference: test/grad_scaler.test.ts (torch's rules).

import { SCALE_UPDATE_WGSL, UNSCALE_WGSL } from '../../kernels/optim.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { launchElementwise, mul } from '../ops/elementwise.js';
import { fmt } from '../ops/util.js';
import { tensor, zeros, type Tensor } from '../tensor.js';
import type { AdamW } from './adamw.js';

const unscaleKernel = new Kernel('grad_unscale', UNSCALE_WGSL);
const updateKernel = new Kernel('grad_scale_update', SCALE_UPDATE_WGSL);

export interface GradScalerOptions {
  /** Defaults are torch's: 2^16, 2, 0.5, 2000. */
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
}

/** The scaler's state as a checkpoint keeps it (read with state(), restored with load()). */
export interface GradScalerState {
  scale: number;
  growthTracker: number;
}

export class GradScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  /** The current scale S, 0-d f32 (read it only when logging). */
  readonly scaleTensor: Tensor;
  /** Clean steps since the scale last changed, 0-d f32. */
  readonly tracker: Tensor;
  /** Nonzero when this step's gradients held an inf or NaN, [1] i32. */
  readonly found: Tensor;
  private unscaled = false;

  constructor(options: GradScalerOptions = {}) {
    const { initScale = 2 ** 16, growthFactor = 2, backoffFactor = 0.5, growthInterval = 2000 } = options;
    if (!(initScale > 0 && Number.isFinite(initScale))) throw new RangeError(`GradScaler: initScale must be a positive number, got ${initScale}`);
    if (!(growthFactor > 1)) throw new RangeError(`GradScaler: growthFactor must be > 1, got ${growthFactor}`);
    if (!(backoffFactor > 0 && backoffFactor < 1)) throw new RangeError(`GradScaler: backoffFactor must be in (0, 1), got ${backoffFactor}`);
    if (!(Number.isInteger(growthInterval) && growthInterval >= 1)) throw new RangeError(`GradScaler: growthInterval must be a positive integer, got ${growthInterval}`);
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
    this.scaleTensor = tensor(Float32Array.of(initScale), []);
    this.tracker = zeros([]);
    this.found = zeros([1], { dtype: 'i32' });
    for (const t of [this.scaleTensor, this.tracker, this.found]) t.untrack();
  }

  /** loss · S (backward then gives gradients scaled by S). */
  scale(loss: Tensor): Tensor {
    return mul(loss, this.scaleTensor);
  }

  /** Divides every gradient by S and flags an inf or NaN among them. Once per step, before clipping. */
  unscale_(optimizer: AdamW): void {
    if (this.unscaled) throw new Error('GradScaler: unscale_() was already called since the last update()');
    const rt = runtime();
    rt.clear(this.found.range);
    for (const p of optimizer.params) {
      const g = p.grad;
      if (!g) continue;
      launchElementwise(unscaleKernel, [this.scaleTensor, this.found, g], g.size, {}, `grad_unscale g${fmt(g)}`, { whole: [this.scaleTensor, this.found] });
    }
    this.unscaled = true;
  }

  /** The optimizer's update, skipped on the GPU if the gradients held an inf or NaN (unscales first if needed). */
  step(optimizer: AdamW): void {
    if (!this.unscaled) this.unscale_(optimizer);
    optimizer.step({ found: this.found });
  }

  /** Backs S off after an inf/NaN, or grows it after growthInterval clean steps. Ends the step. */
  update(): void {
    if (!this.unscaled) throw new Error('GradScaler: update() without unscale_() or step() in this step');
    runtime().dispatch(updateKernel, {
      buffers: [this.scaleTensor.range, this.tracker.range, this.found.range],
      params: { growth: this.growthFactor, backoff: this.backoffFactor, interval: this.growthInterval },
      grid: [1],
      label: 'grad_scale_update',
    });
    this.unscaled = false;
  }

  /** Reads the scale and the tracker back (for a checkpoint or a log line). */
  async state(): Promise<GradScalerState> {
    return { scale: await this.scaleTensor.item(), growthTracker: await this.tracker.item() };
  }

  /** Restores a saved state. */
  load(s: GradScalerState): void {
    this.scaleTensor.upload(Float32Array.of(s.scale));
    this.tracker.upload(Float32Array.of(s.growthTracker));
  }

  dispose(): void {
    for (const t of [this.scaleTensor, this.tracker, this.found]) t.dispose();
  }
}
