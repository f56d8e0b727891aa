// GPT-2 (GPT2LMHeadModel) with Hugging Face semantics and parameter names: pre-LN blocks, Conv1D projections, tied LM head, KV cache.
//
// Legend: B batch, T new tokens, P cached (past) tokens, S = P + T keys, C = n_embd, NH = n_head,
// HS = C / NH, V = vocab_size. Parameter names are HF's state_dict names ("transformer.h.0.attn.c_attn.weight").

import { autocastOperand } from '../amp.js';
import { causalAttention } from '../ops/attention.js';
import { dropout } from '../ops/dropout.js';
import { add, full, relu } from '../ops/elementwise.js';
import { embedding } from '../ops/indexing.js';
import { crossEntropy } from '../ops/loss.js';
import { alignElements, windowElements } from '../ops/bindings.js';
import { matmul } from '../ops/matmul.js';
import { cat, permute, reshape, slice } from '../ops/shape.js';
import { Conv1D, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { tensor, type Tensor } from '../tensor.js';
import { formatBytes } from '../gpu/pool.js';
import { runtime } from '../gpu/runtime.js';

/** The GPT2Config fields webgpu-lm reads (HF's names and defaults); other keys of config.json are kept as they are. */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; null means 4·n_embd. */
  n_inner: number | null;
  activation_function: string;
  layer_norm_epsilon: number;
  resid_pdrop: number;
  embd_pdrop: number;
  attn_pdrop: number;
  initializer_range: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | null;
  /** webgpu-lm extension: 'sinusoidal' uses fixed sin/cos positions (saved into wpe so HF can still load them). */
  position_embedding_type: 'learned' | 'sinusoidal';
  [key: string]: unknown;
}

const DEFAULTS: Omit<GPT2Config, 'model_type'> = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: null,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  initializer_range: 0.02,
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  tie_word_embeddings: true,
  bos_token_id: 50256,
  eos_token_id: 50256,
  position_embedding_type: 'learned',
};

/** HF's activation_function names. The GELUs are fused into c_fc's store (gelu's `approximate`); relu is its own op. */
const ACTIVATIONS: Record<string, 'tanh' | 'none' | 'relu'> = {
  gelu_new: 'tanh',
  gelu_pytorch_tanh: 'tanh',
  gelu: 'none',
  relu: 'relu',
};

/** A full config from a partial one (e.g. a parsed config.json): HF defaults filled in, then checked. */
export function gpt2Config(partial: Partial<GPT2Config> & Record<string, unknown> = {}): GPT2Config {
  const c = { ...DEFAULTS, ...partial, model_type: 'gpt2' } as GPT2Config;
  // transformers <= 2.x (GPT2-Chinese) configs may give n_ctx but not n_positions.
  if (partial.n_positions === undefined && typeof partial.n_ctx === 'number') c.n_positions = partial.n_ctx;
  for (const k of ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`GPT-2 config: ${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  if (c.n_embd % c.n_head !== 0) throw new Error(`GPT-2 config: n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
  if (!(c.activation_function in ACTIVATIONS)) {
    throw new Error(`GPT-2 config: activation_function "${c.activation_function}" is not supported (${Object.keys(ACTIVATIONS).join(', ')})`);
  }
  if (c.position_embedding_type !== 'learned' && c.position_embedding_type !== 'sinusoidal') {
    throw new Error(`GPT-2 config: position_embedding_type must be "learned" or "sinusoidal", got "${c.position_embedding_type}"`);
  }
  return c;
}

/** The fixed Transformer position table: pe[pos, 2i] = sin(pos / 10000^(2i/C)), pe[pos, 2i+1] = cos(same). [n_positions, C] */
export function sinusoidTable(positions: number, C: number): Float32Array {
  const pe = new Float32Array(positions * C);
  for (let pos = 0; pos < positions; pos++) {
    for (let i = 0; i < C; i += 2) {
      const angle = pos / 10000 ** (i / C);
      pe[pos * C + i] = Math.sin(angle);
      if (i + 1 < C) pe[pos * C + i + 1] = Math.cos(angle);
    }
  }
  return pe;
}

/** One layer's cached keys and values, each [B, NH, P, HS] (post-c_attn, bias included, before scaling), as HF's past_key_values. */
export interface LayerPast {
  key: Tensor;
  value: Tensor;
}

export interface GPT2ForwardInput {
  /** [B, T] i32 token ids. */
  inputIds: Tensor;
  /** [B, P + T], 1 = real token, 0 = padding (covers the cache too, as in HF). */
  attentionMask?: Tensor;
  /** [B, T] i32; default P + arange(T). Left-padded batches need cumsum(mask) - 1 (HF's generate does this). */
  positionIds?: Tensor;
  /** [B, T] i32; the loss predicts labels[:, t+1] from position t, ignoring -100 (HF's shift). */
  labels?: Tensor;
  pastKeyValues?: LayerPast[];
  useCache?: boolean;
  /** Logits for only the last this many positions (HF's logits_to_keep; 0, the default, keeps all). Sampling
   *  needs only the last: the LM head then reads the [V, C] embedding for one row instead of T. */
  logitsToKeep?: number;
}

export interface GPT2Output {
  /** [B, T, V] (or [B, logitsToKeep, V]) */
  logits: Tensor;
  /** 0-d mean cross-entropy over non-ignored shifted labels, when labels were given. */
  loss?: Tensor;
  /** Per layer, keys/values of all P + T positions, when useCache. */
  pastKeyValues?: LayerPast[];
}

class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;

  constructor(readonly config: GPT2Config, readonly layerIdx: number) {
    super();
    const C = config.n_embd;
    this.c_attn = new Conv1D(3 * C, C, config.initializer_range);
    // HF re-draws every c_proj from N(0, 0.02 / sqrt(2·n_layer)): the residual stream sums 2·n_layer of them.
    this.c_proj = new Conv1D(C, C, config.initializer_range / Math.sqrt(2 * config.n_layer));
  }

  /** residual + dropout(c_proj(attention(x))): the block's residual add is fused into c_proj's store. */
  forward(x: Tensor, past: LayerPast | undefined, keyPadding: Tensor | undefined, residual: Tensor): { out: Tensor; present: LayerPast } {
    const { n_head: NH, n_embd: C } = this.config;
    const [B, T] = x.shape as [number, number, number];
    const HS = C / NH;
    const qkv = this.c_attn.forward(x); // [B, T, 3C], blocks q | k | v, heads inside each block
    const heads = permute(reshape(qkv, [B, T, 3, NH, HS]), [2, 0, 3, 1, 4]); // [3, B, NH, T, HS]
    const part = (i: number): Tensor => reshape(slice(heads, 0, i, i + 1), [B, NH, T, HS]);
    const q = part(0);
    let k = part(1);
    let v = part(2);
    if (past) {
      k = cat([past.key, k], 2); // [B, NH, P + T, HS]
      v = cat([past.value, v], 2);
    }
    let scale = this.config.scale_attn_weights ? 1 / Math.sqrt(HS) : 1;
    if (this.config.scale_attn_by_inverse_layer_idx) scale /= this.layerIdx + 1;
    const attnDropout = this.training ? this.config.attn_pdrop : 0; // HF's attn_dropout, on the probabilities
    let o = causalAttention(q, k, v, { ...(keyPadding ? { keyPadding } : {}), scale, dropout: attnDropout }); // [B, NH, T, HS]
    o = reshape(permute(o, [0, 2, 1, 3]), [B, T, C]); // merge heads
    o = this.c_proj.forward(o, { dropout: this.training ? this.config.resid_pdrop : 0, residual }); // [B, T, C]
    return { out: o, present: { key: k, value: v } };
  }
}

class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;

  constructor(readonly config: GPT2Config) {
    super();
    const C = config.n_embd;
    const inner = config.n_inner ?? 4 * C;
    this.c_fc = new Conv1D(inner, C, config.initializer_range);
    this.c_proj = new Conv1D(C, inner, config.initializer_range / Math.sqrt(2 * config.n_layer));
  }

  /** residual + dropout(c_proj(act(c_fc(x)))), the activation and the residual add fused into the products' stores. */
  forward(x: Tensor, residual: Tensor): Tensor {
    const act = ACTIVATIONS[this.config.activation_function]!;
    const h = act === 'relu' ? relu(this.c_fc.forward(x)) : this.c_fc.forward(x, { gelu: act }); // [B, T, inner]
    return this.c_proj.forward(h, { dropout: this.training ? this.config.resid_pdrop : 0, residual });
  }
}

/** Pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(config: GPT2Config, layerIdx: number) {
    super();
    this.ln_1 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.attn = new GPT2Attention(config, layerIdx);
    this.ln_2 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.mlp = new GPT2MLP(config);
  }

  forward(x: Tensor, past: LayerPast | undefined, keyPadding: Tensor | undefined): { out: Tensor; present: LayerPast } {
    const a = this.attn.forward(this.ln_1.forward(x), past, keyPadding, x); // x + attn(ln_1(x))
    return { out: this.mlp.forward(this.ln_2.forward(a.out), a.out), present: a.present };
  }
}

/** The transformer trunk: HF's GPT2Model (wte, wpe, h.*, ln_f). */
export class GPT2Model extends Module {
  wte: Embedding;
  /** Learned positions, or (sinusoidal) a fixed table that is not a parameter: no gradient, no optimizer state. */
  wpe: Embedding | { weight: Tensor };
  h: GPT2Block[];
  ln_f: LayerNorm;

  constructor(readonly config: GPT2Config) {
    super();
    const { vocab_size: V, n_positions, n_embd: C, initializer_range: std } = config;
    this.wte = new Embedding(V, C, { std });
    if (config.position_embedding_type === 'sinusoidal') {
      const table = tensor(sinusoidTable(n_positions, C), [n_positions, C]);
      table.untrack();
      this.wpe = { weight: table };
    } else {
      this.wpe = new Embedding(n_positions, C, { std });
    }
    this.h = Array.from({ length: config.n_layer }, (_, i) => new GPT2Block(config, i));
    this.ln_f = new LayerNorm(C, config.layer_norm_epsilon);
  }
}

/**
 * Refuses, before anything is allocated, a model this adapter cannot run at all: a weight larger than one
 * buffer (maxBufferSize), or a vocabulary so large that one row of logits does not fit one storage binding
 * (the cross-entropy and the sampler read whole rows). Weights larger than one binding are fine, such as
 * GPT-2 124M's 147 MiB embedding where many adapters allow 128 MiB: the ops that bind them split their work.
 */
function checkFitsAdapter({ vocab_size: V, n_embd: C, n_positions: P, n_inner }: GPT2Config): void {
  const { maxBufferSize } = runtime().limits;
  const what = `GPT-2 (vocab_size ${V}, n_embd ${C}, n_positions ${P}) is too large for this adapter`;
  const weights = [['transformer.wte.weight', V], ['transformer.wpe.weight', P], ['c_fc.weight', n_inner ?? 4 * C]] as const;
  const [name, rows] = weights.reduce((a, b) => (b[1] > a[1] ? b : a));
  const bytes = rows * C * 4;
  if (bytes > maxBufferSize) {
    throw new RangeError(`${what}: ${name} [${rows}, ${C}] needs ${formatBytes(bytes)} in one buffer, and the adapter allows ${formatBytes(maxBufferSize)} (maxBufferSize)`);
  }
  if (V > windowElements()) {
    throw new RangeError(
      `${what}: one row of ${V} logits needs ${formatBytes(4 * V)} in one storage binding (plus up to ${4 * (alignElements() - 1)} bytes ` +
        `of offset alignment), over the ${formatBytes(runtime().bindingLimit)} the adapter allows`,
    );
  }
}

/** GPT2LMHeadModel: the trunk plus an LM head tied to wte (a separate `lm_head` only when tie_word_embeddings is false). */
export class GPT2LMHeadModel extends Module {
  readonly config: GPT2Config;
  transformer: GPT2Model;
  /** [V, C], no bias; null when tied to transformer.wte (the usual case). */
  lm_head: Linear | null;

  constructor(config: Partial<GPT2Config> = {}) {
    super();
    this.config = gpt2Config(config);
    checkFitsAdapter(this.config);
    this.transformer = new GPT2Model(this.config);
    const { vocab_size: V, n_embd: C, initializer_range: std } = this.config;
    this.lm_head = this.config.tie_word_embeddings ? null : new Linear(C, V, { bias: false, std });
  }

  /** How save() writes files; set by models/pretrained.ts (Node), so this file stays browser-clean. */
  static saver: ((model: GPT2LMHeadModel, dir: string) => Promise<void>) | null = null;

  /** Writes config.json + model.safetensors that Hugging Face loads (Node; in a browser use gpt2StateDict). */
  save(dir: string): Promise<void> {
    const saver = GPT2LMHeadModel.saver;
    if (!saver) return Promise.reject(new Error('save(dir) writes files, which needs Node; in a browser serialize gpt2StateDict(model) instead'));
    return saver(this, dir);
  }

  /** Frees every parameter, and the fixed sinusoid table if there is one. */
  override dispose(): void {
    super.dispose();
    this.transformer.wpe.weight.dispose();
  }

  /** [V, C]: the output embedding (wte when tied). */
  get outputEmbedding(): Tensor {
    return this.lm_head?.weight ?? this.transformer.wte.weight;
  }

  /** Runs the model; call it inside tidy() and run backward() in the same scope. */
  forward(input: GPT2ForwardInput): GPT2Output {
    const { inputIds, attentionMask, positionIds, labels, pastKeyValues, useCache, logitsToKeep = 0 } = input;
    const cfg = this.config;
    const t = this.transformer;
    if (inputIds.dtype !== 'i32' || inputIds.ndim !== 2) throw new Error(`GPT-2: inputIds must be i32 [B, T], got ${inputIds.dtype} [${inputIds.shape}]`);
    const [B, T] = inputIds.shape as [number, number];
    const P = pastKeyValues?.[0]?.key.shape[2] ?? 0;
    if (pastKeyValues && pastKeyValues.length !== cfg.n_layer) {
      throw new Error(`GPT-2: pastKeyValues has ${pastKeyValues.length} layers, the model has ${cfg.n_layer}`);
    }
    if (attentionMask && (attentionMask.ndim !== 2 || attentionMask.shape[0] !== B || attentionMask.shape[1] !== P + T)) {
      throw new Error(`GPT-2: attentionMask must be [B, P + T] = [${B}, ${P + T}], got [${attentionMask.shape}]`);
    }
    if (positionIds && (positionIds.dtype !== 'i32' || positionIds.shape.join() !== `${B},${T}`)) {
      throw new Error(`GPT-2: positionIds must be i32 [${B}, ${T}], got ${positionIds.dtype} [${positionIds.shape}]`);
    }
    if (labels && (labels.dtype !== 'i32' || labels.shape.join() !== `${B},${T}`)) {
      throw new Error(`GPT-2: labels must be i32 [${B}, ${T}], got ${labels.dtype} [${labels.shape}]`);
    }
    if (!Number.isInteger(logitsToKeep) || logitsToKeep < 0) throw new Error(`GPT-2: logitsToKeep must be an integer >= 0 (0 = all), got ${logitsToKeep}`);
    if (labels && logitsToKeep > 0) throw new Error('GPT-2: labels need the logits of every position; leave logitsToKeep at 0');
    if (!positionIds && P + T > cfg.n_positions) {
      throw new Error(`GPT-2: ${P + T} positions (${P} cached + ${T} new) exceed n_positions ${cfg.n_positions}; shorten the input or slide the window`);
    }

    // x = wte[ids] + wpe[pos]   [B, T, C]
    const pos = positionIds ?? tensor(Int32Array.from({ length: T }, (_, i) => P + i), [T], { dtype: 'i32' });
    let x = add(embedding(inputIds, t.wte.weight), embedding(pos, t.wpe.weight));
    x = dropout(x, cfg.embd_pdrop, this.training);
    const presents: LayerPast[] = [];
    t.h.forEach((block, i) => {
      const r = block.forward(x, pastKeyValues?.[i], attentionMask);
      x = r.out;
      presents.push(r.present);
    });
    x = t.ln_f.forward(x);
    if (logitsToKeep > 0 && logitsToKeep < T) x = slice(x, 1, T - logitsToKeep, T); // [B, logitsToKeep, C]
    const logits = matmul(autocastOperand(x), autocastOperand(this.outputEmbedding), { transB: true }); // [B, T or logitsToKeep, V] f32, no bias
    const out: GPT2Output = { logits };
    if (useCache) out.pastKeyValues = presents;
    if (labels) {
      // HF shifts: position t predicts labels[:, t + 1]. Rather than copying logits[:, :-1] ([B, T-1, V]),
      // shift the labels left and ignore the last position: the same mean over the same predictions.
      const shifted = T > 1 ? cat([slice(labels, 1, 1, T), full([B, 1], -100, 'i32')], 1) : full([B, 1], -100, 'i32');
      out.loss = crossEntropy(reshape(logits, [B * T, cfg.vocab_size]), reshape(shifted, [B * T]));
    }
    return out;
  }
}
