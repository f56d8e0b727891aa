// The GPT-2 training loop (browser-clean): micro-batches -> accumulated gradients -> one clip -> AdamW with warm-up + decay.
//
// GPT2-Chinese's loop (gpt2.md §6) with its bugs fixed:
//   - gradients are clipped once per optimizer step, not after every micro-batch (which re-clipped partial sums);
//   - the reported loss is the mean over the step's micro-batches (not only the last one);
//   - an epoch ends with an optimizer step, so every epoch boundary is a clean point to checkpoint and resume.
// Every source of randomness is saved in TrainerState (data order is a pure function of (seed, epoch); dropout
// seeds come from the global generator, whose state is saved), so a resumed run repeats the losses exactly.

import { autocast } from '../amp.js';
import { noGrad } from '../autograd.js';
import { capture, type StepGraph } from '../gpu/graph.js';
import { add, clone, mul } from '../ops/elementwise.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { GradScaler } from '../optim/grad_scaler.js';
import { warmupCosine, warmupLinear } from '../optim/schedule.js';
import { getRngState, manualSeed, setRngState, type GeneratorState } from '../random.js';
import { keep, tidy, zeros, type Tensor } from '../tensor.js';
import type { GPT2LMHeadModel } from '../models/gpt2.js';
import { batchTokens, epochBatches, estimatedTotalSteps, type Batch } from '../../datasets/gpt2_chinese.js';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Peak learning rate (GPT2-Chinese: 1.5e-4). */
  lr: number;
  warmupSteps: number;
  stride: number;
  gradientAccumulation: number;
  maxGradNorm: number;
  weightDecay: number;
  /** AdamW epsilon (GPT2-Chinese: 1e-6). */
  adamEps: number;
  schedule: 'linear' | 'cosine';
  seed: number;
  /** Mixed precision (GPT2-Chinese's --fp16, apex O1): the products' operands in f16 under autocast, dynamic loss scaling. */
  fp16: boolean;
  /**
   * Run every step's JavaScript (true), instead of capturing the second step of each shape and replaying its GPU
   * commands from then on (gpu/graph.ts: the same bits, a fraction of the CPU time). Default false.
   */
  eagerSteps?: boolean;
}

export const GPT2_CHINESE_TRAIN_DEFAULTS: TrainOptions = {
  epochs: 5,
  batchSize: 8,
  lr: 1.5e-4,
  warmupSteps: 2000,
  stride: 768,
  gradientAccumulation: 1,
  maxGradNorm: 1.0,
  weightDecay: 0,
  adamEps: 1e-6,
  schedule: 'linear',
  seed: 42,
  fp16: false,
};

/** Where a run is, besides its weights and optimizer moments: enough to resume it exactly. */
export interface TrainerState {
  /** Epoch of the next micro-batch (0-based). */
  epoch: number;
  /** Index of the next micro-batch within that epoch. */
  batch: number;
  /** Optimizer steps taken so far. */
  optimizerStep: number;
  /** The global generator (dropout seeds) at this point. */
  rng: GeneratorState;
}

export interface StepResult {
  /** Mean loss of the step's micro-batches, a 0-d tensor on the GPU (read it only when logging; dispose it). */
  loss: Tensor;
  /** Tokens trained on in this step. */
  tokens: number;
  /** Learning rate used. */
  lr: number;
  /** Epoch the step belonged to. */
  epoch: number;
}

export class Trainer {
  readonly optimizer: AdamW;
  /** With options.fp16: the loss scale, skipping steps whose f16 gradients overflowed (all on the GPU). */
  readonly scaler: GradScaler | null;
  readonly totalSteps: number;
  readonly nCtx: number;
  state: TrainerState;
  private plan: Batch[];
  private readonly lengths: number[];
  /**
   * Per micro-batch count (the last step of an epoch may have fewer): input tensors the step reads, how many
   * eager steps ran with them, and the captured step once one has (the first step makes the optimizer's state).
   */
  private readonly shapes = new Map<number, { ids: Tensor[]; eager: number; graph: StepGraph<Tensor> | null }>();

  /**
   * @param pieces token pieces (datasets/gpt2_chinese.ts); windows are model.config.n_positions long
   * @param state  where to resume; a new run starts at epoch 0 with the global generator seeded from options.seed
   */
  constructor(readonly model: GPT2LMHeadModel, readonly pieces: readonly Int32Array[], readonly options: TrainOptions, state?: TrainerState) {
    this.nCtx = model.config.n_positions;
    this.lengths = pieces.map((p) => p.length);
    const totalTokens = this.lengths.reduce((a, b) => a + b, 0);
    if (pieces.length === 0 || totalTokens === 0) throw new Error('training: the corpus produced no tokens (is every article shorter than min_length?)');
    if (!this.lengths.some((n) => n >= this.nCtx)) {
      throw new Error(`training: no piece has n_ctx = ${this.nCtx} tokens (the longest has ${Math.max(...this.lengths)}); use fewer pieces, more text or a smaller n_ctx`);
    }
    this.totalSteps = Math.max(1, estimatedTotalSteps(totalTokens, options));
    this.optimizer = new AdamW(model.parameters(), { lr: options.lr, eps: options.adamEps, weightDecay: options.weightDecay });
    this.scaler = options.fp16 ? new GradScaler() : null;
    if (!state) manualSeed(options.seed);
    this.state = state ?? { epoch: 0, batch: 0, optimizerStep: 0, rng: getRngState() };
    setRngState(this.state.rng);
    this.plan = this.epochPlan(this.state.epoch);
    if (this.plan.length === 0) {
      throw new Error(`training: no full batch of ${options.batchSize} windows in any piece; lower --batch-size or --num-pieces`);
    }
  }

  private epochPlan(epoch: number): Batch[] {
    const { stride, batchSize, seed } = this.options;
    return epochBatches(this.lengths, { nCtx: this.nCtx, stride, batchSize, seed, epoch });
  }

  get done(): boolean {
    return this.state.epoch >= this.options.epochs;
  }

  /** Micro-batches in one epoch. */
  get batchesPerEpoch(): number {
    return this.plan.length;
  }

  /** The corpus this run trains on, as a checkpoint records it (pieces and tokens). */
  dataId(): { pieces: number; tokens: number } {
    return { pieces: this.pieces.length, tokens: this.lengths.reduce((a, b) => a + b, 0) };
  }

  /** The learning rate of optimizer step s. */
  lrAt(step: number): number {
    const f = this.options.schedule === 'cosine' ? warmupCosine : warmupLinear;
    return this.options.lr * f(step, this.options.warmupSteps, this.totalSteps);
  }

  /**
   * One optimizer step: up to gradientAccumulation micro-batches (fewer at the end of an epoch), each
   * forward + backward of loss / count; then clip, AdamW, zero the grads. Records GPU work; reads nothing back.
   * With fp16 the forward runs under autocast and backward starts from the scaled loss; the gradients are
   * unscaled before clipping, and the update is skipped (on the GPU) when they overflowed.
   */
  step(): StepResult {
    if (this.done) throw new Error('training: all epochs are done');
    const { gradientAccumulation, batchSize } = this.options;
    const epoch = this.state.epoch;
    const count = Math.min(gradientAccumulation, this.plan.length - this.state.batch);
    let shape = this.shapes.get(count);
    if (!shape) {
      shape = { ids: Array.from({ length: count }, () => keep(zeros([batchSize, this.nCtx], { dtype: 'i32' }))), eager: 0, graph: null };
      this.shapes.set(count, shape);
    }
    for (const ids of shape.ids) ids.upload(batchTokens(this.pieces, this.plan[this.state.batch++]!, this.nCtx));
    const lr = this.lrAt(this.state.optimizerStep);
    this.optimizer.lr = lr;
    let loss: Tensor;
    if (shape.graph) {
      loss = clone(shape.graph.replay());
    } else if (shape.eager > 0 && !this.options.eagerSteps) {
      shape.graph = capture(() => this.record(shape.ids));
      loss = clone(shape.graph.outputs);
    } else {
      loss = this.record(shape.ids);
      shape.eager++;
    }
    this.state.optimizerStep++;
    if (this.state.batch >= this.plan.length) {
      this.state.epoch++;
      this.state.batch = 0;
      if (!this.done) this.plan = this.epochPlan(this.state.epoch);
    }
    this.state.rng = getRngState();
    return { loss, tokens: count * batchSize * this.nCtx, lr, epoch };
  }

  /**
   * The GPU work of one optimizer step on micro-batches `inputs`: each forward + backward of loss / count, then
   * clip, AdamW, zero the grads. Returns the mean loss. Reads nothing back, so it can be captured (gpu/graph.ts).
   * With fp16 the forward runs under autocast and backward starts from the scaled loss; the gradients are
   * unscaled before clipping, and the update is skipped (on the GPU) when they overflowed.
   */
  private record(inputs: readonly Tensor[]): Tensor {
    const { maxGradNorm } = this.options;
    const count = inputs.length;
    let total: Tensor | null = null;
    for (const ids of inputs) {
      const loss = tidy(() => {
        const l = autocast(() => this.model.forward({ inputIds: ids, labels: ids }).loss!, this.scaler !== null);
        const part = mul(l, 1 / count);
        (this.scaler ? this.scaler.scale(part) : part).backward();
        return l.detach();
      });
      if (total) {
        const prev: Tensor = total;
        total = noGrad(() => add(prev, loss));
        prev.dispose();
        loss.dispose();
      } else {
        total = loss;
      }
    }
    tidy(() => {
      this.scaler?.unscale_(this.optimizer);
      if (maxGradNorm > 0) clipGradNorm(this.optimizer.params, maxGradNorm);
      if (this.scaler) {
        this.scaler.step(this.optimizer);
        this.scaler.update();
      } else {
        this.optimizer.step();
      }
    });
    this.model.zeroGrad();
    const mean = noGrad(() => mul(total!, 1 / count));
    total!.dispose();
    return mean;
  }

  /** Frees the optimizer's moments (and the loss scaler), and the captured steps with their inputs. */
  dispose(): void {
    for (const { ids, graph } of this.shapes.values()) {
      graph?.dispose();
      for (const t of ids) t.dispose();
    }
    this.shapes.clear();
    this.optimizer.dispose();
    this.scaler?.dispose();
  }
}
