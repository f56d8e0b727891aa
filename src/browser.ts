// webgpu-lm for browsers (and any runtime): tensors, autograd, WGSL kernels, models, tokenizers, sampling, training; no Node-only import.

export { getDevice, resetDevice, destroyDevice, DeviceLostError, NO_ADAPTER_HELP, type DeviceOptions, type Gpu } from './gpu/device.js';
export { init, shutdown, runtime, flush, sync, GpuError, Runtime } from './gpu/runtime.js';
export { capture, onReplay, StepGraph } from './gpu/graph.js';
export { Kernel } from './gpu/kernel.js';
export { formatBytes } from './gpu/pool.js';
export { Tensor, tensor, zeros, empty, tidy, keep, liveBuffers, liveBytes, type DType, type Shape, type TensorOptions } from './tensor.js';
export { backward, defineOp, noGrad, isGradEnabled, setGradEnabled, zeroGrad, type OpDef, type OpContext, type Grads } from './autograd.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export { matmulTiles, setMatmulTiles, saveMatmulTiles, describeTiles, type MatmulTileChoice, type AdapterIdentity } from './ops/matmul_tiles.js';
export { tuneMatmul, matmulTuneShapes, type TuneOptions, type TuneShape, type TuneCandidate, type TuneResult } from './ops/matmul_tune.js';
export { TILES, TILE_CANDIDATES, tilesProblem, type MatmulTiles } from '../kernels/matmul.js';
export * from './ops/shape.js';
export * from './ops/indexing.js';
export { AdamW, type AdamWOptions, type AdamWState } from './optim/adamw.js';
export { clipGradNorm } from './optim/clip.js';
export { autocast, isAutocastEnabled } from './amp.js';
export { GradScaler, type GradScalerOptions, type GradScalerState } from './optim/grad_scaler.js';
export * from './ops/softmax.js';
export * from './ops/attention.js';
export * from './ops/loss.js';
export * from './ops/norm.js';
export { dropout } from './ops/dropout.js';
export * from './random.js';
export { Module, parameter, isParameter } from './nn/module.js';
export { Linear, Conv1D, Embedding, LayerNorm, Dropout } from './nn/layers.js';
export { parseSafetensors, serializeSafetensors, toFloat32, toInt32, fromFloat32, type HostTensor, type WeightDtype } from './io/safetensors.js';
export { parsePytorch } from './io/pytorch.js';
export { parseWeights } from './io/weights.js';
export * from '../tokenizers/index.js';
export * from './generate/sampling.js';
export { GPT2LMHeadModel, GPT2Model, gpt2Config, sinusoidTable, type GPT2Config, type GPT2ForwardInput, type GPT2Output, type LayerPast } from './models/gpt2.js';
export { GPT2_PRESETS } from './models/presets.js';
export { gpt2FromStateDict, gpt2StateDict } from './models/state_dict.js';
export { gpt2FromFiles, gpt2Files, xlnetFromFiles, xlnetFiles, parseConfigJson } from './models/folder.js';
export {
  XLNetLMHeadModel,
  XLNetModel,
  xlnetConfig,
  XLNET_INFERENCE_CONFIG,
  xlnetFromStateDict,
  xlnetStateDict,
  relativePositionTables,
  type XLNetConfig,
  type XLNetForwardInput,
  type XLNetOutput,
  type XLNetMems,
} from './models/xlnet.js';
export { generate, type GenerateOptions } from './generate/generate.js';
export { sampleTexts, prefixIds, idsToText, type TextSamplingOptions } from './generate/text.js';
export {
  generateXLNet,
  sampleXLNetTexts,
  fillMasks,
  fillPieces,
  fillPositions,
  xlnetNextLogits,
  XLNET_DEFAULT_LENGTH,
  MAX_FILL_TOKENS,
  type XLNetTextSamplingOptions,
  type FillOptions,
  type FillCandidate,
  type FilledPosition,
  type FilledMask,
  type FillResult,
} from './generate/xlnet.js';
export { lossCurveSvg, lossCurveCsv, type CurvePoint } from './train/curve.js';
export { Trainer, GPT2_CHINESE_TRAIN_DEFAULTS, type TrainOptions, type TrainerState, type StepResult } from './train/trainer.js';
export { XLNetTrainer, XLNET_TRAIN_DEFAULTS, type XLNetTrainOptions, type XLNetTrainerState, type XLNetStepResult } from './train/xlnet_trainer.js';
export { warmupLinear, warmupCosine, warmupDecayToMin } from './optim/schedule.js';
export { parseCorpus } from '../datasets/articles.js';
export { buildPieces, buildSinglePieces, windowStarts, epochBatches, batchTokens, estimatedTotalSteps } from '../datasets/gpt2_chinese.js';
export {
  XLNetPretrainingData,
  sentenceStreamFromText,
  sentenceStreamFromArticles,
  batchifyStream,
  splitAAndB,
  sampleSpanMask,
  localPermutation,
  isXLNetStartPiece,
  plmCollate,
  type SentenceStream,
  type SentenceStreamOptions,
  type TokenizerWithSpecials,
  type XLNetRows,
  type SegmentSplit,
  type SpanUnit,
  type SpanMaskOptions,
  type LocalPermutation,
  type XLNetBatch,
  type XLNetPretrainOptions,
  type PlmCollatorOptions,
} from '../datasets/xlnet.js';
