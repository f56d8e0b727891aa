// The tfjs peer: @tensorflow/tfjs with tfjs-backend-webgpu on navigator.gpu, as a matmul contender and a GPT-2 training step.

import type * as TfCore from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { LAYER_NORM_EPS, checkGpt2Spec, gpt2WeightShapes } from './gpt2_spec.js';
import { GpuErrorWatch, type Contender, type Gpt2StepSpec, type Peer, type PeerLoad, type TrainStepContender } from './types.js';

type Tf = typeof TfCore;
type Tensor = TfCore.Tensor;

let lib: { tf: Tf; errors: GpuErrorWatch } | null = null;

function loaded(): { tf: Tf; errors: GpuErrorWatch } {
  if (!lib) throw new Error('tfjs: call load() first');
  return lib;
}

/**
 * Imports tfjs and tfjs-backend-webgpu and selects the webgpu backend. The backend registers itself only if
 * navigator.gpu exists when it is imported, so the caller defines navigator.gpu (the shared Dawn instance) before this.
 * @tensorflow/tfjs itself is imported for its gradients: tfjs-core alone registers none (minimize() would fail with
 * "gradient function not found"), the full package registers them all on the same engine.
 */
export async function load(): Promise<PeerLoad> {
  try {
    const core = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await core.setBackend('webgpu'))) return { ok: false, error: 'tf.setBackend("webgpu") returned false' };
    await core.ready();
    lib = { tf: core, errors: new GpuErrorWatch((core.backend() as WebGPUBackend).device) };
    // package.json pins @tensorflow/tfjs and tfjs-backend-webgpu to the same version as tfjs-core.
    return { ok: true, version: `@tensorflow/tfjs-backend-webgpu ${core.version_core}` };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0]! };
  }
}

/** C = A·B with tf.matMul. tfjs owns its buffers, so its output cannot be poisoned beforehand. */
export function matmulContender(M: number, K: number, N: number, a: Float32Array, b: Float32Array): Contender {
  const { tf, errors } = loaded();
  const check = errors.mark('tfjs matmul');
  const ta = tf.tensor2d(a, [M, K]);
  const tb = tf.tensor2d(b, [K, N]);
  // The newest product: kept until the next one is queued, so that drain() has something to read.
  let last: Tensor | null = null;
  return {
    async validate() {
      const c = tf.matMul(ta, tb);
      const got = (await c.data()) as Float32Array;
      c.dispose();
      check();
      return got;
    },
    run() {
      const c = tf.matMul(ta, tb);
      last?.dispose();
      last = c;
    },
    // Reading one element submits tfjs's pending commands and waits for every product queued before it.
    async drain() {
      if (!last) return;
      const one = tf.slice(last, [0, 0], [1, 1]);
      await one.data();
      one.dispose();
      check();
    },
    dispose() {
      last?.dispose();
      ta.dispose();
      tb.dispose();
    },
  };
}

/**
 * One GPT-2 training step (types.ts: Gpt2StepSpec) with tf.variable parameters, tf.train.adam and
 * optimizer.minimize. tfjs's Adam is the spec's update: m and v as torch's, then
 * p += -lr · (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), eps outside the square root like torch. The one
 * difference: b^t is a float32 variable (float32(b), multiplied by b each step) and 1 - b^t is taken in float32 on the
 * device, where torch uses float64 on the host; for b2 = 0.999 that makes 1 - b2^t 1.3e-5 relative small at t = 1
 * (1 - float32(0.999) = 0.000999987), so the first updates are ~6e-6 relative smaller than torch's.
 */
export async function gpt2TrainStep(spec: Gpt2StepSpec): Promise<TrainStepContender> {
  const { tf, errors } = loaded();
  checkGpt2Spec(spec);
  const check = errors.mark('tfjs GPT-2 step');
  const { n_layer, n_embd: C, n_head: NH, vocab_size: V, B, T } = spec;
  const HS = C / NH;
  const BT = B * T;
  const params = new Map(gpt2WeightShapes(spec).map(([name, shape]) => [name, tf.tidy(() => tf.variable(tf.tensor(spec.weights.get(name)!, shape)))]));
  const w = (name: string): TfCore.Variable => params.get(name)!;
  const ids = tf.tensor1d(spec.ids, 'int32'); // [B·T]
  // Targets: ids[:, 1:] flattened, [B·(T-1)].
  const targets = tf.tensor1d(
    Int32Array.from({ length: B * (T - 1) }, (_, i) => spec.ids[Math.floor(i / (T - 1)) * T + (i % (T - 1)) + 1]!),
    'int32',
  );
  // Causal mask added to the scores: 0 where key ≤ query, -1e9 above the diagonal (exp underflows to exactly 0). [T, T]
  const mask = tf.tensor2d(Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)), [T, T]);
  const optimizer = tf.train.adam(spec.lr, spec.betas[0], spec.betas[1], spec.eps);
  const varList = [...params.values()];

  // [N, C] -> [N, C], over the last axis.
  const layerNorm = (x: Tensor, prefix: string): Tensor => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, LAYER_NORM_EPS))), w(`${prefix}.weight`)), w(`${prefix}.bias`));
  };
  // Conv1D: [N, in]·[in, out] + [out].
  const conv1d = (x: Tensor, prefix: string): Tensor => tf.add(tf.matMul(x, w(`${prefix}.weight`)), w(`${prefix}.bias`));
  // gelu_new: 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))).
  const gelu = (x: Tensor): Tensor => tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI))), 1));
  // [B·T, C] -> [B, NH, T, HS]
  const heads = (x: Tensor): Tensor => tf.transpose(tf.reshape(x, [B, T, NH, HS]), [0, 2, 1, 3]);

  const loss = (): TfCore.Scalar => {
    // x = wte[ids] + wpe[:T]   [B·T, C]
    let x = tf.reshape(tf.add(tf.reshape(tf.gather(w('transformer.wte.weight'), ids), [B, T, C]), tf.slice(w('transformer.wpe.weight'), [0, 0], [T, C])), [BT, C]);
    for (let i = 0; i < n_layer; i++) {
      const h = `transformer.h.${i}.`;
      const [q, k, v] = tf.split(conv1d(layerNorm(x, `${h}ln_1`), `${h}attn.c_attn`), 3, 1).map(heads) as [Tensor, Tensor, Tensor];
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(HS)), mask); // [B, NH, T, T]
      const y = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v), [0, 2, 1, 3]), [BT, C]);
      x = tf.add(x, conv1d(y, `${h}attn.c_proj`));
      x = tf.add(x, conv1d(gelu(conv1d(layerNorm(x, `${h}ln_2`), `${h}mlp.c_fc`)), `${h}mlp.c_proj`));
    }
    const logits = tf.matMul(layerNorm(x, 'transformer.ln_f'), w('transformer.wte.weight'), false, true); // [B·T, V]
    const shifted = tf.reshape(tf.slice(tf.reshape(logits, [B, T, V]), [0, 0, 0], [B, T - 1, V]), [B * (T - 1), V]);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(targets, V, 1, 0, 'float32'), shifted, undefined, 0, tf.Reduction.MEAN) as TfCore.Scalar;
  };

  // The loss of the newest step, kept until the next one.
  let last: TfCore.Scalar | null = null;
  return {
    step() {
      const cost = optimizer.minimize(loss, true, varList)!;
      last?.dispose();
      last = cost;
    },
    async lastLoss() {
      if (!last) throw new Error('tfjs: no step has run');
      const value = (await last.data())[0]!;
      check();
      return value;
    },
    // Reading the newest loss submits everything recorded (tfjs submits its whole queue before a read) and waits for it;
    // once read it is cached on the host, and then nothing was recorded since the read that waited.
    async drain() {
      await last?.data();
      check();
    },
    dispose() {
      last?.dispose();
      optimizer.dispose();
      for (const p of varList) p.dispose();
      ids.dispose();
      targets.dispose();
      mask.dispose();
    },
  };
}

export const tfjsPeer: Peer = { name: 'tfjs', load, matmulContender, gpt2TrainStep };
