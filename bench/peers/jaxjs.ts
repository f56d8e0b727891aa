// The jax-js peer: @jax-js/jax's webgpu device on navigator.gpu, as a matmul contender and a jitted GPT-2 training step.

import { readFileSync } from 'node:fs';
import type * as Jax from '@jax-js/jax';
import { LAYER_NORM_EPS, checkGpt2Spec, gpt2WeightShapes } from './gpt2_spec.js';
import { GpuErrorWatch, type Contender, type Gpt2StepSpec, type Peer, type PeerLoad, type TrainStepContender } from './types.js';

// Ownership (jax-js's rules): every array has a reference count; passing an array to any jax-js function (or a
// jitted one) consumes one reference, `.ref` adds one, `.dispose()` drops one, `data()` consumes its array. The
// functions below consume each argument exactly once, taking `.ref` before any earlier use.

type JaxArray = Jax.Array;
/** Parameters (and Adam moments) by Hugging Face state-dict name. */
type Params = Record<string, JaxArray>;

let lib: { jax: typeof Jax; errors: GpuErrorWatch } | null = null;

function loaded(): { jax: typeof Jax; errors: GpuErrorWatch } {
  if (!lib) throw new Error('jax-js: call load() first');
  return lib;
}

/**
 * Starts jax-js's webgpu device on navigator.gpu (its own GPUDevice from the shared adapter) and makes it the default
 * device. jax-js reads navigator.userAgent when its WebGPU backend loads (a Firefox check) and fails on a navigator
 * without one, as Node's navigator stand-in is; a missing userAgent is set to "Node.js/<version>" first.
 */
export async function load(): Promise<PeerLoad> {
  try {
    const nav = (globalThis as { navigator?: { gpu?: unknown; userAgent?: unknown } }).navigator;
    if (!nav?.gpu) return { ok: false, error: 'navigator.gpu is not defined' };
    if (typeof nav.userAgent !== 'string') Object.defineProperty(nav, 'userAgent', { value: `Node.js/${process.versions.node}`, configurable: true });
    const jax = await import('@jax-js/jax');
    const devices = await jax.init('webgpu');
    if (!devices.includes('webgpu')) return { ok: false, error: `jax-js started no webgpu device (devices: ${devices.join(', ')})` };
    jax.defaultDevice('webgpu');
    lib = { jax, errors: new GpuErrorWatch(jax.getWebGPUDevice()) };
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.resolve('@jax-js/jax')), 'utf8')) as { version: string };
    return { ok: true, version: `@jax-js/jax ${pkg.version}` };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0]! };
  }
}

/**
 * Submits the pending work behind `x` now, without waiting for it: jax-js is lazy and otherwise dispatches only when
 * something is read, holding every intermediate buffer until then. gpuBufferSync() prepares and submits the pending
 * kernels and consumes a reference, hence the .ref.
 */
function submit(x: JaxArray): void {
  x.ref.gpuBufferSync();
}

/** C = A·B with numpy.matmul on the webgpu device. */
export function matmulContender(M: number, K: number, N: number, a: Float32Array, b: Float32Array): Contender {
  const { jax, errors } = loaded();
  const np = jax.numpy;
  const check = errors.mark('jax-js matmul');
  const ta = np.array(a, { shape: [M, K] });
  const tb = np.array(b, { shape: [K, N] });
  // The newest product: kept until the next one is queued, so that drain() has something to wait on.
  let last: JaxArray | null = null;
  return {
    async validate() {
      const got = (await np.matmul(ta.ref, tb.ref).data()) as Float32Array;
      check();
      return got;
    },
    run() {
      const c = np.matmul(ta.ref, tb.ref);
      submit(c);
      last?.dispose();
      last = c;
    },
    // blockUntilReady waits for the array's kernels through a read queued after them (so after everything queued before).
    async drain() {
      await last?.blockUntilReady();
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
 * One GPT-2 training step (types.ts: Gpt2StepSpec) as one jitted function of (params, m, v, ids, bias corrections):
 * valueAndGrad of a pure loss, then Adam on every parameter, returning the loss and the new params, m and v. The bias
 * corrections 1/(1 - b^t) are computed in float64 on the host each step and passed as float32 scalars. Attention is
 * written out with matmul and softmax (as nn.dotProductAttention computes it) because dotProductAttention goes through
 * numpy.einsum, whose parser uses iterator helpers (Iterator.prototype.map), which Node 20 lacks.
 */
export async function gpt2TrainStep(spec: Gpt2StepSpec): Promise<TrainStepContender> {
  const { jax, errors } = loaded();
  const { numpy: np, nn, jit, valueAndGrad, tree } = jax;
  checkGpt2Spec(spec);
  const check = errors.mark('jax-js GPT-2 step');
  const { n_layer, n_embd: C, n_head: NH, vocab_size: V, B, T, lr, eps } = spec;
  const [b1, b2] = spec.betas;
  const HS = C / NH;
  const BT = B * T;
  const shapes = gpt2WeightShapes(spec);

  // [N, C] -> [N, C], over the last axis (centred variance, as torch).
  const layerNorm = (x: JaxArray, weight: JaxArray, bias: JaxArray): JaxArray => {
    const mean = x.ref.mean(-1, { keepdims: true });
    const xc = x.sub(mean);
    const variance = np.square(xc.ref).mean(-1, { keepdims: true });
    return xc.div(np.sqrt(variance.add(LAYER_NORM_EPS))).mul(weight).add(bias);
  };
  // Conv1D: [N, in]·[in, out] + [out].
  const conv1d = (x: JaxArray, weight: JaxArray, bias: JaxArray): JaxArray => np.matmul(x, weight).add(bias);

  // The mean shifted cross-entropy of the model on ids [B, T] (i32). Consumes p and ids.
  const loss = (p: Params, ids: JaxArray): JaxArray => {
    const wte = p['transformer.wte.weight']!;
    // x = wte[ids] + wpe[:T]   [B·T, C]
    let x = np.take(wte.ref, ids.ref, 0).add(p['transformer.wpe.weight']!.slice([0, T])).reshape([BT, C]);
    for (let i = 0; i < n_layer; i++) {
      const w = (name: string): JaxArray => p[`transformer.h.${i}.${name}`]!;
      // q, k, v: [B, NH, T, HS] each.
      const qkv = conv1d(layerNorm(x.ref, w('ln_1.weight'), w('ln_1.bias')), w('attn.c_attn.weight'), w('attn.c_attn.bias'))
        .reshape([B, T, 3, NH, HS])
        .transpose([2, 0, 3, 1, 4]);
      const scores = np.matmul(qkv.ref.slice(0), qkv.ref.slice(1).transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(HS)); // [B, NH, T, T]
      const probs = nn.softmax(np.where(np.tri(T, T, 0, { dtype: np.bool }), scores, -Infinity), -1);
      const y = np.matmul(probs, qkv.slice(2)).transpose([0, 2, 1, 3]).reshape([BT, C]);
      x = x.add(conv1d(y, w('attn.c_proj.weight'), w('attn.c_proj.bias')));
      const h = nn.gelu(conv1d(layerNorm(x.ref, w('ln_2.weight'), w('ln_2.bias')), w('mlp.c_fc.weight'), w('mlp.c_fc.bias'))); // gelu_new
      x = x.add(conv1d(h, w('mlp.c_proj.weight'), w('mlp.c_proj.bias')));
    }
    const logits = np.matmul(layerNorm(x, p['transformer.ln_f.weight']!, p['transformer.ln_f.bias']!), wte.transpose()); // [B·T, V]
    const logp = nn.logSoftmax(logits.reshape([B, T, V]).slice([], [0, T - 1]), -1); // [B, T-1, V]
    // Where the vocabulary index is the next token, [B, T-1, V]. (nn.oneHot gathers rows of eye(V), which the jitted
    // step materialises: V² floats, over the adapter's binding limit at V = 13317.)
    const isTarget = np.arange(V).equal(ids.slice([], [1]).reshape([B, T - 1, 1]));
    return np.where(isTarget, logp, 0).sum().mul(-1 / (B * (T - 1)));
  };

  const trainStep = jit((p: Params, m: Params, v: Params, ids: JaxArray, c1: JaxArray, c2: JaxArray) => {
    const [value, g] = valueAndGrad(loss)(tree.ref(p), ids) as [JaxArray, Params];
    const p2: Params = {};
    const m2: Params = {};
    const v2: Params = {};
    for (const [name] of shapes) {
      const gi = g[name]!;
      const mi = m[name]!.mul(b1).add(gi.ref.mul(1 - b1));
      const vi = v[name]!.mul(b2).add(np.square(gi).mul(1 - b2));
      p2[name] = p[name]!.sub(mi.ref.mul(c1.ref).div(np.sqrt(vi.ref.mul(c2.ref)).add(eps)).mul(lr));
      m2[name] = mi;
      v2[name] = vi;
    }
    c1.dispose();
    c2.dispose();
    return [value, p2, m2, v2];
  });

  let params: Params = {};
  let m: Params = {};
  let v: Params = {};
  for (const [name, shape] of shapes) {
    params[name] = np.array(spec.weights.get(name)!, { shape });
    m[name] = np.zeros(shape);
    v[name] = np.zeros(shape);
  }
  const ids = np.array(spec.ids, { shape: [B, T] }); // i32
  let t = 0;
  // The loss of the newest step, kept until the next one.
  let last: JaxArray | null = null;
  return {
    step() {
      t++;
      const c1 = np.full([], 1 / (1 - b1 ** t));
      const c2 = np.full([], 1 / (1 - b2 ** t));
      const [value, p2, m2, v2] = trainStep(params, m, v, ids.ref, c1, c2) as [JaxArray, Params, Params, Params];
      params = p2;
      m = m2;
      v = v2;
      submit(value);
      last?.dispose();
      last = value;
    },
    async lastLoss() {
      if (!last) throw new Error('jax-js: no step has run');
      const value = (await last.ref.data())[0]!;
      check();
      return value;
    },
    // Every output of the jitted step shares its kernels, so waiting on the loss waits for the whole step.
    async drain() {
      await last?.blockUntilReady();
      check();
    },
    dispose() {
      last?.dispose();
      tree.dispose([params, m, v, ids]);
      trainStep.dispose();
    },
  };
}

export const jaxjsPeer: Peer = { name: 'jax-js', load, matmulContender, gpt2TrainStep };
