// Layers with PyTorch's parameter names, shapes and default initialisation: Linear, Embedding, LayerNorm, Dropout.

import { dropout } from '../ops/dropout.js';
import { embedding } from '../ops/indexing.js';
import { linear } from '../ops/matmul.js';
import { layerNorm } from '../ops/norm.js';
import { rand, randn } from '../random.js';
import { zeros, type Tensor } from '../tensor.js';
import { full } from '../ops/elementwise.js';
import { Module, parameter } from './module.js';

/** y = x Wᵀ + b.   x: [..., inFeatures] -> y: [..., outFeatures]; weight [out, in], bias [out]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  /** Init as torch.nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) from the global generator. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean } = {}) {
    super();
    const k = 1 / Math.sqrt(inFeatures);
    this.weight = parameter(rand([outFeatures, inFeatures], { low: -k, high: k }));
    this.bias = options.bias === false ? null : parameter(rand([outFeatures], { low: -k, high: k }));
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias ?? undefined);
  }
}

/** A lookup table. ids: [...] i32 -> [..., embeddingDim]; weight [numEmbeddings, embeddingDim], init N(0, 1). */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number) {
    super();
    this.weight = parameter(randn([numEmbeddings, embeddingDim]));
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
    this.weight = parameter(full([normalizedShape], 1));
    this.bias = parameter(zeros([normalizedShape]));
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
