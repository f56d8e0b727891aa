// Layers with PyTorch's parameter names, shapes and default initialisation: Linear, Conv1D (Hugging Face), Embedding, LayerNorm, Dropout.

import { autocastOperand } from '../amp.js';
import { dropout } from '../ops/dropout.js';
import { embedding } from '../ops/indexing.js';
import { addmm, linear, type Epilogue } from '../ops/matmul.js';
import { layerNorm } from '../ops/norm.js';
import { rand, randn } from '../random.js';
import { zeros, type Tensor } from '../tensor.js';
import { full } from '../ops/elementwise.js';
import { Module, initial, parameter } from './module.js';

/** y = x Wᵀ + b.   x: [..., inFeatures] -> y: [..., outFeatures]; weight [out, in], bias [out]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  /**
   * Init as torch.nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) from the global generator; with `std`,
   * as Hugging Face's _init_weights instead: W ~ N(0, std), b = 0.
   */
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean; std?: number } = {}) {
    super();
    const k = 1 / Math.sqrt(inFeatures);
    const { std } = options;
    const ws = [outFeatures, inFeatures];
    this.weight = parameter(initial(ws, () => (std === undefined ? rand(ws, { low: -k, high: k }) : randn(ws, { std }))));
    if (options.bias === false) this.bias = null;
    else this.bias = parameter(initial([outFeatures], () => (std === undefined ? rand([outFeatures], { low: -k, high: k }) : zeros([outFeatures]))));
  }

  /** `epilogue` (residual + dropout(gelu(y))) is fused into the product's store (ops/matmul.ts). Under autocast() x and W are read as f16. */
  forward(x: Tensor, epilogue?: Epilogue): Tensor {
    return linear(autocastOperand(x), autocastOperand(this.weight), this.bias ?? undefined, epilogue);
  }
}

/**
 * Hugging Face's Conv1D (transformers.pytorch_utils): a linear layer whose weight is stored [in, out], so
 * y = x·W + b.  x: [..., nx] -> y: [..., nf]; weight [nx, nf], bias [nf]. Init as HF: W ~ N(0, 0.02), b = 0.
 */
export class Conv1D extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly nf: number, readonly nx: number, std = 0.02) {
    super();
    this.weight = parameter(initial([nx, nf], () => randn([nx, nf], { std })));
    this.bias = parameter(initial([nf], () => zeros([nf])));
  }

  /** `epilogue` (residual + dropout(gelu(y))) is fused into the product's store (ops/matmul.ts). Under autocast() x and W are read as f16. */
  forward(x: Tensor, epilogue?: Epilogue): Tensor {
    return addmm(this.bias, autocastOperand(x), autocastOperand(this.weight), epilogue);
  }
}

/** A lookup table. ids: [...] i32 -> [..., embeddingDim]; weight [numEmbeddings, embeddingDim], init N(0, std = 1). */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, options: { std?: number } = {}) {
    super();
    const shape = [numEmbeddings, embeddingDim];
    this.weight = parameter(initial(shape, () => randn(shape, { std: options.std ?? 1 })));
  }

  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}

/** Normalises over the last dim: x: [..., C]; weight (gamma) = 1, bias (beta) = 0 at init. */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly normalizedShape: number, readonly eps = 1e-5) {
    super();
    this.weight = parameter(initial([normalizedShape], () => full([normalizedShape], 1)));
    this.bias = parameter(initial([normalizedShape], () => zeros([normalizedShape])));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/** Zeroes each element with probability p while training (scaling the rest by 1/(1-p)); identity in eval(). */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
