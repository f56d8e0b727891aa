// webgpu-lm: tensors, autograd and WGSL kernels for training and sampling language models on WebGPU.

export { getDevice, resetDevice, destroyDevice, DeviceLostError, NO_ADAPTER_HELP, type DeviceOptions, type Gpu } from './gpu/device.js';
export { init, shutdown, runtime, flush, sync, GpuError, Runtime } from './gpu/runtime.js';
export { Kernel } from './gpu/kernel.js';
export { formatBytes } from './gpu/pool.js';
export { Tensor, tensor, zeros, empty, tidy, keep, liveBuffers, liveBytes, type DType, type Shape, type TensorOptions } from './tensor.js';
export { backward, defineOp, noGrad, isGradEnabled, setGradEnabled, zeroGrad, type OpDef, type OpContext, type Grads } from './autograd.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export * from './ops/shape.js';
export * from './ops/indexing.js';
export { AdamW, type AdamWOptions, type AdamWState } from './optim/adamw.js';
export { clipGradNorm } from './optim/clip.js';
export * from './ops/softmax.js';
export * from './ops/loss.js';
export * from './ops/norm.js';
export * from './ops/dropout.js';
export * from './random.js';
export { Module, parameter, isParameter } from './nn/module.js';
export { Linear, Embedding, LayerNorm, Dropout } from './nn/layers.js';
