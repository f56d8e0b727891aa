// AdamW (torch.optim.AdamW semantics) with one fused in-place WGSL update per parameter; state tensors live with the optimizer.

import { STEP_COUNT_WGSL, adamwWGSL } from '../../kernels/optim.js';
import { onReplay } from '../gpu/graph.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { launchElementwise } from '../ops/elementwise.js';
import { Tensor, tensor, zeros } from '../tensor.js';
import { fmt } from '../ops/util.js';

const adamwKernel = new Kernel('adamw', adamwWGSL(false));
const guardedKernel = new Kernel('adamw_guarded', adamwWGSL(true));
const stepCountKernel = new Kernel('adamw_step_count', STEP_COUNT_WGSL);

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Parameters that get no weight decay (XLNet and BERT exclude LayerNorm weights and biases). */
  noDecay?: Iterable<Tensor>;
}

/** Per-parameter state, as in torch's optimizer.state[p]: step count and the two moment buffers. */
export interface AdamWState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

export class AdamW {
  /** Set this before step() to follow a schedule (warm-up, decay). */
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly params: Tensor[];
  readonly noDecay: ReadonlySet<Tensor>;
  readonly state = new Map<Tensor, AdamWState>();

  /** Defaults are torch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. */
  constructor(params: Iterable<Tensor>, options: AdamWOptions = {}) {
    this.params = [...params];
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 1e-2;
    this.noDecay = new Set(options.noDecay ?? []);
    for (const p of this.params) {
      if (p.dtype !== 'f32') throw new TypeError(`AdamW: parameters must be f32, got ${p.dtype} ${fmt(p)}`);
    }
    if (!(this.lr >= 0) || !(this.eps >= 0) || this.betas.some((b) => !(b >= 0 && b < 1))) {
      throw new RangeError(`AdamW: invalid hyper-parameters lr=${this.lr} betas=${this.betas} eps=${this.eps}`);
    }
  }

  /**
   * Steps taken, counted on the GPU: made by the first guarded step (from the CPU counts, so a resumed run goes
   * on counting) and from then on the count the bias corrections use. Null until then.
   */
  gpuSteps: Tensor | null = null;

  /**
   * One update of every parameter that has a .grad (recorded into the current command encoder; no read-back).
   * With `guard` (dynamic loss scaling: optim/grad_scaler.ts), the whole step is skipped on the GPU when
   * guard.found[0] is nonzero: the step count then lives in gpuSteps and the bias corrections are formed on the
   * GPU (kernels/optim.ts); every state's CPU `step` counts the steps attempted until syncSteps() reads it back.
   */
  step(guard?: { found: Tensor }): void {
    const [beta1, beta2] = this.betas;
    if (guard && !this.gpuSteps) {
      const taken = Math.max(0, ...[...this.state.values()].map((s) => s.step));
      this.gpuSteps = tensor(Float32Array.of(taken), [1]);
      this.gpuSteps.untrack();
    }
    if (guard) runtime().dispatch(stepCountKernel, { buffers: [guard.found.range, this.gpuSteps!.range], grid: [1], label: 'adamw step count' });
    for (const p of this.params) {
      const g = p.grad;
      if (!g) continue;
      let s = this.state.get(p);
      if (!s) {
        // Moments start at zero and live as long as the optimizer (outside any tidy scope).
        s = { step: 0, expAvg: zeros(p.shape), expAvgSq: zeros(p.shape) };
        s.expAvg.untrack();
        s.expAvgSq.untrack();
        this.state.set(p, s);
      }
      s.step++;
      // A captured step (gpu/graph.ts) counts its steps at each replay; lr and the bias corrections are functions,
      // read again at each replay (set `lr` before it, as before step()).
      const state = s;
      onReplay(() => void state.step++);
      // Elementwise, so a parameter larger than one binding (GPT-2's embedding) is updated in flat chunks.
      const weightDecay = this.noDecay.has(p) ? 0 : this.weightDecay;
      const shared = { beta2, one_minus_beta1: 1 - beta1, one_minus_beta2: 1 - beta2, eps: this.eps, decay: () => 1 - this.lr * weightDecay };
      if (guard) {
        const params = { ...shared, lr: () => this.lr, log2_beta1: Math.log2(beta1), log2_beta2: Math.log2(beta2) };
        launchElementwise(guardedKernel, [g, p, s.expAvg, s.expAvgSq, guard.found, this.gpuSteps!], p.size, params, `adamw p${fmt(p)}`, {
          whole: [guard.found, this.gpuSteps!],
        });
        continue;
      }
      // Bias corrections in float64 on the CPU; only the final scalars go to the GPU.
      const params = { ...shared, step_size: () => this.lr / (1 - beta1 ** state.step), bc2_sqrt: () => Math.sqrt(1 - beta2 ** state.step) };
      launchElementwise(adamwKernel, [g, p, s.expAvg, s.expAvgSq], p.size, params, `adamw p${fmt(p)}`);
    }
  }

  /** After guarded steps: reads the GPU's step count into every state's `step` (for a checkpoint). */
  async syncSteps(): Promise<void> {
    if (!this.gpuSteps) return;
    const taken = await this.gpuSteps.item();
    for (const s of this.state.values()) s.step = taken;
  }

  /** Frees every parameter's .grad (set_to_none). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees the moment buffers (and the GPU step count). */
  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
    this.gpuSteps?.dispose();
    this.gpuSteps = null;
  }
}
