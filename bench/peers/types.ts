// What every WebGPU peer (tfjs, jax-js) implements for the side-by-side bench: loading, a matmul contender, one GPT-2 training
// step; and the watch on a peer's device that turns the WebGPU errors it only logs into exceptions.

/** The outcome of loading a peer onto navigator.gpu: its version, or why it cannot run. */
export type PeerLoad = { ok: true; version: string } | { ok: false; error: string };

/**
 * One implementation of C = A·B under test (A [M, K], B [K, N], row-major): `validate` computes C once and returns it
 * ([M, N]), `run` enqueues one product without waiting, `drain` waits until the GPU has finished everything enqueued,
 * `dispose` frees everything.
 */
export interface Contender {
  validate(): Promise<Float32Array>;
  run(): void;
  drain(): Promise<void>;
  dispose(): void;
}

/**
 * The sizes, weights, batch and optimizer of one GPT-2 training step; every implementation does the same math on it:
 *
 * - forward: pre-LN GPT-2 blocks (layer_norm eps 1e-5), causal softmax attention scaled by 1/sqrt(head size), GELU tanh
 *   approximation (gelu_new), no dropout, LM head tied to wte (logits = h·wteᵀ);
 * - loss: mean cross-entropy of logits[:, :-1] against ids[:, 1:] (Hugging Face's shift) over B·(T-1) positions;
 * - backward through everything, then Adam with bias correction on every parameter (torch AdamW with weight decay 0):
 *   m = b1·m + (1-b1)·g; v = b2·v + (1-b2)·g²; p -= lr·(m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps); no gradient clipping.
 */
export interface Gpt2StepSpec {
  n_layer: number;
  n_embd: number;
  n_head: number;
  n_positions: number;
  vocab_size: number;
  B: number;
  T: number;
  /** Hugging Face GPT2LMHeadModel state-dict names and layouts (gpt2_spec.ts: gpt2WeightShapes); Conv1D weights are [in, out]. */
  weights: Map<string, Float32Array>;
  /** [B, T] token ids; the inputs and (shifted) the labels. */
  ids: Int32Array;
  lr: number;
  betas: [number, number];
  eps: number;
  /** Must be 0 when given (plain Adam); the peers refuse anything else. */
  weightDecay?: number;
}

/** Enqueues one full training step per `step()` (no read-back); `lastLoss` reads the loss of the most recent step. */
export interface TrainStepContender {
  step(): void;
  lastLoss(): Promise<number>;
  drain(): Promise<void>;
  dispose(): void;
}

/** A peer library: load it first; the other two throw if it is not loaded. */
export interface Peer {
  name: string;
  load(): Promise<PeerLoad>;
  matmulContender(M: number, K: number, N: number, a: Float32Array, b: Float32Array): Contender;
  gpt2TrainStep(spec: Gpt2StepSpec): Promise<TrainStepContender>;
}

/**
 * Collects the uncaptured WebGPU errors of a peer's device. The libraries log such errors (a binding over the adapter's
 * limit, say) and go on, reading back garbage; a contender marks the watch when created and checks it after each read.
 */
export class GpuErrorWatch {
  readonly #errors: string[] = [];

  constructor(device: GPUDevice) {
    device.addEventListener('uncapturederror', (e) => this.#errors.push((e as GPUUncapturedErrorEvent).error.message.split('\n')[0]!));
  }

  /** A check that throws the first error raised after this call, prefixed with `what`. */
  mark(what: string): () => void {
    const from = this.#errors.length;
    return () => {
      const error = this.#errors[from];
      if (error !== undefined) throw new Error(`${what}: WebGPU error: ${error}`);
    };
  }
}
