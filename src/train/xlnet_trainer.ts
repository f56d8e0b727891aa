// The XLNet pretraining loop (browser-clean): permutation-LM batches -> two-stream forward with carried memory -> clip -> Adam, as train_gpu.py.
//
// One optimizer step of the original (train_gpu.py + model_utils.get_train_op):
//   batch  = data.batch(epoch, step)              perm mask, target mapping, labels of B fixed rows (datasets/xlnet.ts)
//   loss   = mean CE over the real predict slots  (the query stream's output at each target, tied LM head)
//   mems'  = each layer's input, first reuse_len positions, last mem_len kept (no gradient)
//   clip the global gradient norm, then Adam (or AdamW without decay on LayerNorm weights and biases)
// with lr warmed up linearly and decayed ('poly' or 'cos') to lr · min_lr_ratio at train_steps.
// Step s+1's first half continues step s's first half in the same row, so the memory of step s is exactly the
// context that precedes step s+1; an epoch starts again at the beginning of the rows, with no memory.
// Every batch is a pure function of (seed, epoch, step) and the dropout seeds come from the global generator,
// whose state is saved with the memory, so a resumed run repeats the losses exactly.

import { noGrad } from '../autograd.js';
import { clipGradNorm } from '../optim/clip.js';
import { AdamW } from '../optim/adamw.js';
import { warmupDecayToMin } from '../optim/schedule.js';
import { getRngState, manualSeed, setRngState, type GeneratorState } from '../random.js';
import { fromFloat32, toFloat32, type HostTensor } from '../io/safetensors.js';
import { tensor, tidy, zeros, type Tensor } from '../tensor.js';
import type { XLNetLMHeadModel, XLNetMems } from '../models/xlnet.js';
import type { XLNetPretrainingData } from '../../datasets/xlnet.js';

/** The optimisation flags of train_gpu.py (its names in camelCase). */
export interface XLNetTrainOptions {
  /** Optimizer steps; the schedule ends here. */
  trainSteps: number;
  /** Peak learning rate. */
  learningRate: number;
  warmupSteps: number;
  decayMethod: 'poly' | 'cos';
  /** The learning rate ends at learningRate · minLrRatio. */
  minLrRatio: number;
  adamEpsilon: number;
  /** > 0: decoupled weight decay on everything but LayerNorm weights and biases. */
  weightDecay: number;
  /** Global gradient-norm clip (0 = off). */
  clip: number;
  /** Seeds the initialisation and dropout (the data has its own seed). */
  seed: number;
}

/** train_gpu.py's defaults. */
export const XLNET_TRAIN_DEFAULTS: XLNetTrainOptions = {
  trainSteps: 100_000,
  learningRate: 1e-4,
  warmupSteps: 0,
  decayMethod: 'poly',
  minLrRatio: 0.001,
  adamEpsilon: 1e-8,
  weightDecay: 0,
  clip: 1.0,
  seed: 0,
};

/** Where a run is: enough, with the weights, moments and memory, to resume it exactly. */
export interface XLNetTrainerState {
  /** Optimizer steps taken; the next batch is (epoch, step) = divmod(optimizerStep, stepsPerEpoch). */
  optimizerStep: number;
  /** The global generator (dropout seeds) at this point. */
  rng: GeneratorState;
}

export interface XLNetStepResult {
  /** Mean loss over the batch's predicted tokens, a 0-d tensor on the GPU (read it only when logging; dispose it). */
  loss: Tensor;
  /** B · seq_len tokens run through the model. */
  tokens: number;
  /** Predicted tokens (real predict slots) in the batch. */
  predictions: number;
  lr: number;
  /** Epoch of the batch (0-based). */
  epoch: number;
}

export class XLNetTrainer {
  readonly optimizer: AdamW;
  state: XLNetTrainerState;
  /** The memory carried into the next step: per layer [M, B, d]; null at the start of an epoch or without mem_len. */
  private mems: XLNetMems | null = null;
  private readonly useMems: boolean;

  /**
   * @param state   where to resume; a new run starts at step 0 with the global generator seeded from options.seed
   * @param carried the memory saved with that state (carried() of the run that saved it)
   */
  constructor(
    readonly model: XLNetLMHeadModel,
    readonly data: XLNetPretrainingData,
    readonly options: XLNetTrainOptions,
    state?: XLNetTrainerState,
    carried?: ReadonlyMap<string, HostTensor>,
  ) {
    const c = model.config;
    if (!Number.isInteger(options.trainSteps) || options.trainSteps < 1) throw new RangeError(`train_steps must be a positive integer, got ${options.trainSteps}`);
    if (c.bi_data !== data.rows.biData) {
      throw new Error(`the model's bi_data (${c.bi_data}) must match the data's (${data.rows.biData}): the backward rows need negated distances`);
    }
    this.useMems = (c.mem_len ?? 0) > 0;
    if (this.useMems && c.reuse_len !== data.reuseLen) {
      throw new Error(`the model's reuse_len (${c.reuse_len}) must equal the data's (${data.reuseLen}), or the memory would not precede the next step's tokens`);
    }
    const noDecay = new Set<Tensor>();
    for (const [name, p] of model.namedParameters()) if (name.includes('layer_norm') || name.endsWith('bias')) noDecay.add(p);
    this.optimizer = new AdamW(model.parameters(), { lr: options.learningRate, eps: options.adamEpsilon, weightDecay: options.weightDecay, noDecay });
    if (!state) manualSeed(options.seed);
    this.state = state ?? { optimizerStep: 0, rng: getRngState() };
    setRngState(this.state.rng);
    if (carried && carried.size > 0) this.mems = this.restoreMems(carried);
  }

  get done(): boolean {
    return this.state.optimizerStep >= this.options.trainSteps;
  }

  get stepsPerEpoch(): number {
    return this.data.stepsPerEpoch;
  }

  /** The learning rate of optimizer step s. */
  lrAt(step: number): number {
    const { learningRate, warmupSteps, trainSteps, minLrRatio, decayMethod } = this.options;
    return learningRate * warmupDecayToMin(step, warmupSteps, trainSteps, minLrRatio, decayMethod);
  }

  /** One optimizer step on the next batch. Records GPU work; reads nothing back. */
  step(): XLNetStepResult {
    if (this.done) throw new Error(`training: all ${this.options.trainSteps} steps are done`);
    const s = this.state.optimizerStep;
    const epoch = Math.floor(s / this.data.stepsPerEpoch);
    const k = s % this.data.stepsPerEpoch;
    if (k === 0) this.freeMems(); // a new pass starts at the beginning of the rows: nothing precedes it
    const b = this.data.batch(epoch, k);
    const { batchSize: B, seqLen: T, numPredict: P } = b;
    const lr = this.lrAt(s);
    let newMems: XLNetMems | undefined;
    const loss = tidy(() => {
      const out = this.model.forward({
        inputIds: tensor(b.inputIds, [B, T], { dtype: 'i32' }),
        ...(b.tokenTypeIds ? { tokenTypeIds: b.tokenTypeIds } : {}),
        permMask: b.permMask,
        targetMapping: b.targetMapping,
        numPredict: P,
        labels: tensor(b.labels, [B, P], { dtype: 'i32' }),
        ...(this.mems ? { mems: this.mems } : {}),
        useMems: this.useMems,
      });
      out.loss!.backward();
      newMems = out.mems;
      return out.loss!.detach();
    });
    tidy(() => {
      if (this.options.clip > 0) clipGradNorm(this.optimizer.params, this.options.clip);
      this.optimizer.lr = lr;
      this.optimizer.step();
    });
    this.model.zeroGrad();
    this.freeMems();
    this.mems = newMems ?? null;
    this.state.optimizerStep++;
    this.state.rng = getRngState();
    let predictions = 0;
    for (const label of b.labels) if (label !== -100) predictions++;
    return { loss, tokens: B * T, predictions, lr, epoch };
  }

  /** The training data as a checkpoint records it. */
  dataId(): Record<string, number> {
    const { rows, seqLen, reuseLen, numPredict, permSize, seed } = this.data;
    return { batchSize: rows.batchSize, rowLength: rows.length, seqLen, reuseLen, numPredict, permSize, seed };
  }

  /** The memory for a checkpoint: mems.<layer> [M, B, d]. */
  async carried(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [l, m] of (this.mems ?? []).entries()) out.set(`mems.${l}`, fromFloat32((await m.toArray()) as Float32Array, [...m.shape]));
    return out;
  }

  private restoreMems(carried: ReadonlyMap<string, HostTensor>): XLNetMems {
    const { n_layer: L, d_model: d } = this.model.config;
    return noGrad(() =>
      Array.from({ length: L }, (_, l) => {
        const h = carried.get(`mems.${l}`);
        if (!h || h.shape.length !== 3 || h.shape[1] !== this.data.batchSize || h.shape[2] !== d) {
          throw new Error(`checkpoint: the memory of layer ${l} is missing or not [M, ${this.data.batchSize}, ${d}]`);
        }
        const m = zeros(h.shape).upload(toFloat32(h));
        m.untrack();
        return m;
      }),
    );
  }

  private freeMems(): void {
    for (const m of this.mems ?? []) m.dispose();
    this.mems = null;
  }

  /** Frees the optimizer's moments and the carried memory. */
  dispose(): void {
    this.freeMems();
    this.optimizer.dispose();
  }
}
