// XLNet with Hugging Face semantics (XLNetLMHeadModel): two-stream relative attention, Transformer-XL memory, post-LN blocks. Browser-clean.
//
// Spec: docs/xlnet.md (math, names, masks), reproduced from HF's modeling_xlnet.py (transformers 4.36):
//   h0 = word_embedding[ids]                       content stream [B, T, d]
//   g0 = mask_emb                                  query stream [B, P, d], only with a target mapping
//   per layer: h = FF(LN(h + O·attn(h; keys = [mem; h]))),  g = FF(LN(g + O·attn(g; same keys, no self)))
//   logits = (g or h)·word_embeddingᵀ + lm_loss.bias
// Attention score of query i and key j (key j in the concatenation [mems; current], K = M + T keys):
//   ((q_i + r_w_bias)·k_j + (q_i + r_r_bias)·kr(M + i - j) + (q_i + r_s_bias)·seg_embed[s_ij]) / sqrt(dh) - 1e30·blocked_ij
// with kr(dist) the relative sinusoid of the distance projected by r, s_ij = 1 when i and j are in different
// segments (memory counts as segment 0). The core (scores, masks, softmax, values) is one fused op,
// src/ops/rel_attention.ts: the position term reads a table of every distance instead of HF's rel-shift, and the
// query stream attends only from its P slots (HF scatters them to all T positions and gathers back).
// Internally batch-major [B, T, d]; mems are HF's sequence-first [M, B, d] (each layer's input), detached.

import { crossEntropy } from '../ops/loss.js';
import { dropout } from '../ops/dropout.js';
import { add, expand, relu } from '../ops/elementwise.js';
import { embedding } from '../ops/indexing.js';
import { linear, matmul } from '../ops/matmul.js';
import { cat, permute, reshape, slice } from '../ops/shape.js';
import { relAttentionPlan, relativeAttention, type RelAttentionPlan } from '../ops/rel_attention.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Module, initial, parameter, withoutInit } from '../nn/module.js';
import { fromFloat32, type HostTensor } from '../io/safetensors.js';
import { expectComplete, uploadStateDict } from './state_dict.js';
import { randn } from '../random.js';
import { tensor, zeros, type Tensor } from '../tensor.js';

/** The config fields that shape the math (HF XLNetConfig names and class defaults). */
export interface XLNetConfig {
  model_type: 'xlnet';
  vocab_size: number;
  d_model: number;
  n_layer: number;
  n_head: number;
  /** d_model / n_head. */
  d_head: number;
  d_inner: number;
  /** 'gelu' is the exact erf GELU in HF; 'gelu_new' the tanh form; 'relu'. */
  ff_activation: string;
  /** 'bi' (every key visible unless masked) or 'uni' (Transformer-XL causal). */
  attn_type: 'bi' | 'uni';
  layer_norm_eps: number;
  /** One rate for every dropout (embeddings, positions, attention probabilities, projections). */
  dropout: number;
  /** Positions of memory kept per layer; null or 0 keeps everything (HF). */
  mem_len: number | null;
  /** Only the first reuse_len positions of a call enter the memory (pretraining); null = all. */
  reuse_len: number | null;
  use_mems_eval: boolean;
  use_mems_train: boolean;
  /** The second half of the batch runs backwards: its relative distances are negated. Needs an even batch. */
  bi_data: boolean;
  /** > 0: distances are clamped to [-clamp_len, clamp_len]. */
  clamp_len: number;
  /** 'uni' only: every query sees the same number of keys. */
  same_length: boolean;
  initializer_range: number;
  tie_word_embeddings: boolean;
  pad_token_id: number;
  bos_token_id: number;
  eos_token_id: number;
}

const DEFAULTS: XLNetConfig = {
  model_type: 'xlnet',
  vocab_size: 32000,
  d_model: 1024,
  n_layer: 24,
  n_head: 16,
  d_head: 64,
  d_inner: 4096,
  ff_activation: 'gelu',
  attn_type: 'bi',
  layer_norm_eps: 1e-12,
  dropout: 0.1,
  mem_len: 512,
  reuse_len: null,
  use_mems_eval: true,
  use_mems_train: false,
  bi_data: false,
  clamp_len: -1,
  same_length: false,
  initializer_range: 0.02,
  tie_word_embeddings: true,
  pad_token_id: 5,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** HF's ff_activation names. The GELUs are fused into layer_1's store (gelu's `approximate`); relu is its own op. */
const ACTIVATIONS: Record<string, 'none' | 'tanh' | 'relu'> = {
  gelu: 'none',
  gelu_new: 'tanh',
  relu: 'relu',
};

/** A full config from a partial one (a parsed config.json): HF defaults filled in (n_token, hidden_size aliases), then checked. */
export function xlnetConfig(partial: Partial<XLNetConfig> & Record<string, unknown> = {}): XLNetConfig {
  const c = { ...DEFAULTS, ...partial, model_type: 'xlnet' } as XLNetConfig;
  if (partial.vocab_size === undefined && typeof partial.n_token === 'number') c.vocab_size = partial.n_token;
  if (partial.d_model === undefined && typeof partial.hidden_size === 'number') c.d_model = partial.hidden_size;
  for (const k of ['vocab_size', 'd_model', 'n_layer', 'n_head', 'd_inner'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`XLNet config: ${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  if (c.d_model % c.n_head !== 0) throw new Error(`XLNet config: d_model ${c.d_model} is not divisible by n_head ${c.n_head}`);
  if (partial.d_head !== undefined && partial.d_head !== c.d_model / c.n_head) {
    throw new Error(`XLNet config: d_head ${partial.d_head} must equal d_model / n_head = ${c.d_model / c.n_head}`);
  }
  c.d_head = c.d_model / c.n_head;
  if (c.d_head % 4 !== 0) throw new Error(`XLNet config: d_head ${c.d_head} must be a multiple of 4 (the attention kernel reads heads as vec4s)`);
  if (!(c.ff_activation in ACTIVATIONS)) throw new Error(`XLNet config: ff_activation "${c.ff_activation}" is not supported (${Object.keys(ACTIVATIONS).join(', ')})`);
  if (c.attn_type !== 'bi' && c.attn_type !== 'uni') throw new Error(`XLNet config: attn_type must be "bi" or "uni", got "${c.attn_type}"`);
  if (!c.tie_word_embeddings) throw new Error('XLNet config: only tied word embeddings are supported (HF always ties lm_loss.weight)');
  return c;
}

/**
 * Config fields that only shape pretraining, with the values a model used for inference has (Hugging Face's
 * released XLNet configs have them). reuse_len caches only a call's first positions (generation would lose
 * context); bi_data negates the distances of the second half of the batch (a batch of one would be refused).
 * A final model is saved with these, and the CLI's generate and fill apply them to a training checkpoint.
 */
export const XLNET_INFERENCE_CONFIG: Readonly<Pick<XLNetConfig, 'reuse_len' | 'bi_data'>> = { reuse_len: null, bi_data: false };

/** One layer's memory: that layer's input for the last positions, sequence-first [M, B, d], no gradient. */
export type XLNetMems = Tensor[];

export interface XLNetForwardInput {
  /** [B, T] i32 token ids. */
  inputIds: Tensor;
  /** [B, T] segment ids (only equality matters: 0 A, 1 B, 2 CLS, 3 pad). Host data: it shapes the scores. */
  tokenTypeIds?: ArrayLike<number>;
  /** [B, T], 1 = real token, 0 = padding. Host data: it becomes the attention mask. */
  attentionMask?: ArrayLike<number>;
  /** [B, T, T], 1 = query i may not see token j. Host data. */
  permMask?: ArrayLike<number>;
  /** [B, P, T] one-hot rows (all-zero rows are padding slots): the positions the query stream predicts. */
  targetMapping?: ArrayLike<number>;
  /** P, the number of predict slots, when targetMapping is given. */
  numPredict?: number;
  /** Per layer [M, B, d], from an earlier call's output. */
  mems?: XLNetMems;
  /** [B, P] (or [B, T] without targetMapping) i32; -100 is ignored. No shift: each row predicts its own label. */
  labels?: Tensor;
  /** Return new mems; default use_mems_train / use_mems_eval by mode, as HF. */
  useMems?: boolean;
}

export interface XLNetOutput {
  /** [B, P, V] with a target mapping, else [B, T, V]. */
  logits: Tensor;
  /** Mean cross-entropy over non-ignored labels. */
  loss?: Tensor;
  mems?: XLNetMems;
}

/** N(0, std) parameter of a given shape (HF's _init_weights for XLNet's raw tensors). */
const normal = (shape: number[], std: number): Tensor => parameter(initial(shape, () => randn(shape, { std })));

/** HF XLNetRelativeAttention: q, k, v, o, r [d, n, dh]; the three biases [n, dh]; seg_embed [2, n, dh]; post-LN. */
class XLNetRelativeAttention extends Module {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  r: Tensor;
  r_r_bias: Tensor;
  r_s_bias: Tensor;
  r_w_bias: Tensor;
  seg_embed: Tensor;
  layer_norm: LayerNorm;

  constructor(readonly config: XLNetConfig) {
    super();
    const { d_model: d, n_head: n, d_head: dh, initializer_range: std } = config;
    this.q = normal([d, n, dh], std);
    this.k = normal([d, n, dh], std);
    this.v = normal([d, n, dh], std);
    this.o = normal([d, n, dh], std);
    this.r = normal([d, n, dh], std);
    this.r_r_bias = normal([n, dh], std);
    this.r_s_bias = normal([n, dh], std);
    this.r_w_bias = normal([n, dh], std);
    this.seg_embed = normal([2, n, dh], std);
    this.layer_norm = new LayerNorm(d, config.layer_norm_eps);
  }

  /** x [B, L, d] · W [d, n, dh] -> heads [B, n, L, dh]. */
  private heads(x: Tensor, w: Tensor): Tensor {
    const { d_model: d, n_head: n, d_head: dh } = this.config;
    const [B, L] = x.shape as [number, number];
    return permute(reshape(matmul(x, reshape(w, [d, n * dh])), [B, L, n, dh]), [0, 2, 1, 3]);
  }

  /**
   * HF's rel_attn_core for queries q [B, n, Q, dh] (the content stream's T tokens, or the query stream's P slots,
   * as the plan says) against keys k, values v [B, n, K, dh] and the projected distance tables kr [NT, n, R, dh].
   * The three biases and the segment embedding enter here; everything else is the fused op. -> [B, n, Q, dh]
   */
  private core(q: Tensor, k: Tensor, v: Tensor, kr: Tensor, plan: RelAttentionPlan): Tensor {
    const { n_head: n, d_head: dh } = this.config;
    const [B, , Q] = q.shape as [number, number, number];
    const bias = (b: Tensor): Tensor => reshape(b, [1, n, 1, dh]);
    const stack = (b: Tensor): Tensor => reshape(add(q, bias(b)), [1, B, n, Q, dh]);
    const qq = cat([stack(this.r_w_bias), stack(this.r_r_bias)], 0); // [2, B, n, Q, dh]
    // Segment term per query row: (q + r_s_bias)·seg_embed[same, different]   [B, n, Q, 2]
    const efs = plan.seg ? matmul(add(q, bias(this.r_s_bias)), reshape(permute(this.seg_embed, [1, 0, 2]), [1, n, 2, dh]), { transB: true }) : null;
    return relativeAttention(qq, k, v, kr, efs, plan, { scale: 1 / Math.sqrt(dh), dropout: this.training ? this.config.dropout : 0 });
  }

  /** attn_vec [B, n, L, dh] through o (used transposed: out[c] = Σ_{h,e} av[h,e]·o[c,h,e]), residual, LayerNorm. */
  private post(residual: Tensor, av: Tensor): Tensor {
    const { d_model: d, n_head: n, d_head: dh } = this.config;
    const [B, , L] = av.shape as [number, number, number];
    const merged = reshape(permute(av, [0, 2, 1, 3]), [B, L, n * dh]);
    let out = matmul(merged, reshape(this.o, [d, n * dh]), { transB: true });
    out = dropout(out, this.config.dropout, this.training);
    return this.layer_norm.forward(add(out, residual));
  }

  forward(h: Tensor, g: Tensor | null, ctx: LayerContext): { h: Tensor; g: Tensor | null } {
    const { d_model: d, n_head: n, d_head: dh } = this.config;
    const keysIn = ctx.mem ? cat([permute(ctx.mem, [1, 0, 2]), h], 1) : h; // [B, K, d]
    const k = this.heads(keysIn, this.k);
    const v = this.heads(keysIn, this.v);
    // Distance tables [R, d] projected by r -> [NT, n, R, dh], shared by both streams.
    const kr = cat(ctx.pos.map((table) => reshape(permute(reshape(matmul(table, reshape(this.r, [d, n * dh])), [table.shape[0]!, n, dh]), [1, 0, 2]), [1, n, table.shape[0]!, dh])), 0);
    const hOut = this.post(h, this.core(this.heads(h, this.q), k, v, kr, ctx.content));
    if (!g || !ctx.slots) return { h: hOut, g: null };
    // Query stream: each slot attends from its target position, with the content stream's keys, not seeing itself.
    return { h: hOut, g: this.post(g, this.core(this.heads(g, this.q), k, v, kr, ctx.slots)) };
  }
}

/** HF XLNetFeedForward: LN(x + dropout(layer_2(dropout(act(layer_1(x)))))). */
class XLNetFeedForward extends Module {
  layer_norm: LayerNorm;
  layer_1: Linear;
  layer_2: Linear;

  constructor(readonly config: XLNetConfig) {
    super();
    const { d_model: d, d_inner: di, initializer_range: std } = config;
    this.layer_norm = new LayerNorm(d, config.layer_norm_eps);
    this.layer_1 = new Linear(d, di, { std });
    this.layer_2 = new Linear(di, d, { std });
  }

  /** layer_norm(x + dropout(layer_2(dropout(act(layer_1(x)))))), the activations, dropouts and residual add fused into the products' stores. */
  forward(x: Tensor): Tensor {
    const p = this.training ? this.config.dropout : 0;
    const act = ACTIVATIONS[this.config.ff_activation]!;
    const f = act === 'relu' ? dropout(relu(this.layer_1.forward(x)), p) : this.layer_1.forward(x, { gelu: act, dropout: p }); // [B, T, d_inner]
    return this.layer_norm.forward(this.layer_2.forward(f, { dropout: p, residual: x }));
  }
}

/** What every layer of one call shares: the distance tables, both streams' masks (packed once), this layer's memory. */
interface LayerContext {
  mem: Tensor | null;
  pos: Tensor[];
  /** The content stream: rows 0..T-1, each sees itself. */
  content: RelAttentionPlan;
  /** The query stream: each slot at its target position (-1 for a padding slot); null without a target mapping. */
  slots: RelAttentionPlan | null;
}

class XLNetLayer extends Module {
  rel_attn: XLNetRelativeAttention;
  ff: XLNetFeedForward;

  constructor(config: XLNetConfig) {
    super();
    this.rel_attn = new XLNetRelativeAttention(config);
    this.ff = new XLNetFeedForward(config);
  }

  forward(h: Tensor, g: Tensor | null, ctx: LayerContext): { h: Tensor; g: Tensor | null } {
    const a = this.rel_attn.forward(h, g, ctx);
    return { h: this.ff.forward(a.h), g: a.g ? this.ff.forward(a.g) : null };
  }
}

/** HF XLNetModel: word_embedding, mask_emb [1, 1, d], layer.*. No final LayerNorm (each layer ends in one). */
export class XLNetModel extends Module {
  word_embedding: Embedding;
  mask_emb: Tensor;
  layer: XLNetLayer[];

  constructor(readonly config: XLNetConfig) {
    super();
    const { vocab_size: V, d_model: d, initializer_range: std } = config;
    this.word_embedding = new Embedding(V, d, { std });
    this.mask_emb = normal([1, 1, d], std);
    this.layer = Array.from({ length: config.n_layer }, () => new XLNetLayer(config));
  }
}

/**
 * The relative distances a call needs, as sinusoids [R, d]: rows p = 0..R-1 hold distance K - p (bi: R = K + T,
 * down to -T + 1; uni: R = K + 1, down to 0), clamped to ±clamp_len, with sin in the first d/2 columns and cos in
 * the rest. With bi_data the second half of the batch gets a table of negated distances. Computed as HF does in
 * f32: inv_freq = 1 / 10000^(2k/d), angle = f32(pos · inv_freq).
 */
export function relativePositionTables(T: number, K: number, config: XLNetConfig): Float32Array[] {
  const { d_model: d, attn_type, clamp_len, bi_data } = config;
  const R = attn_type === 'bi' ? K + T : K + 1;
  const half = d / 2;
  const invFreq = Float32Array.from({ length: half }, (_, k) => 1 / Math.fround(10000 ** Math.fround((2 * k) / d)));
  const table = (sign: number): Float32Array => {
    const out = new Float32Array(R * d);
    for (let p = 0; p < R; p++) {
      let pos = sign * (K - p);
      if (clamp_len > 0) pos = Math.max(-clamp_len, Math.min(clamp_len, pos));
      for (let k = 0; k < half; k++) {
        const angle = Math.fround(pos * invFreq[k]!);
        out[p * d + k] = Math.sin(angle);
        out[p * d + half + k] = Math.cos(angle);
      }
    }
    return out;
  };
  return bi_data ? [table(1), table(-1)] : [table(1)];
}

/** XLNetLMHeadModel: the trunk and the LM head tied to word_embedding, with its own bias lm_loss.bias [V]. */
export class XLNetLMHeadModel extends Module {
  readonly config: XLNetConfig;
  transformer: XLNetModel;
  lm_loss: { bias: Tensor };

  constructor(config: Partial<XLNetConfig> = {}) {
    super();
    this.config = xlnetConfig(config);
    this.transformer = new XLNetModel(this.config);
    this.lm_loss = new LMLossBias(this.config.vocab_size);
  }

  forward(input: XLNetForwardInput): XLNetOutput {
    const cfg = this.config;
    const { inputIds, tokenTypeIds, attentionMask, permMask, targetMapping, mems, labels } = input;
    if (inputIds.dtype !== 'i32' || inputIds.ndim !== 2) throw new Error(`XLNet: inputIds must be i32 [B, T], got ${inputIds.dtype} [${inputIds.shape}]`);
    const [B, T] = inputIds.shape as [number, number];
    const M = mems?.[0]?.shape[0] ?? 0;
    const K = M + T;
    const P = targetMapping ? (input.numPredict ?? 0) : 0;
    checkInputs(cfg, B, T, M, P, input);
    const useMems = input.useMems ?? (this.training ? cfg.use_mems_train : cfg.use_mems_eval);

    const masks = {
      T,
      M,
      ...(tokenTypeIds ? { types: tokenTypeIds } : {}),
      ...(attentionMask ? { pad: attentionMask } : {}),
      ...(permMask ? { perm: permMask } : {}),
      uni: cfg.attn_type === 'uni',
      sameLength: cfg.same_length,
      biData: cfg.bi_data,
    };
    const ctxBase = {
      pos: relativePositionTables(T, K, cfg).map((t) => dropout(tensor(t, [t.length / cfg.d_model, cfg.d_model]), cfg.dropout, this.training)),
      content: relAttentionPlan(B, T, { ...masks, qpos: Int32Array.from({ length: B * T }, (_, i) => i % T), selfVisible: true }),
      slots: targetMapping ? relAttentionPlan(B, P, { ...masks, qpos: slotPositions(targetMapping, B, P, T) }) : null,
    };
    const t = this.transformer;
    let h = dropout(embedding(inputIds, t.word_embedding.weight), cfg.dropout, this.training); // [B, T, d]
    let g = targetMapping ? dropout(expand(t.mask_emb, [B, P, cfg.d_model]), cfg.dropout, this.training) : null; // [B, P, d]
    const newMems: XLNetMems = [];
    t.layer.forEach((layer, l) => {
      if (useMems) newMems.push(this.cacheMem(h, mems?.[l]));
      const r = layer.forward(h, g, { ...ctxBase, mem: mems?.[l] ?? null });
      h = r.h;
      g = r.g;
    });
    const out = dropout(g ?? h, cfg.dropout, this.training);
    const logits = linear(out, t.word_embedding.weight, this.lm_loss.bias); // [B, P or T, V]
    const result: XLNetOutput = { logits };
    if (useMems) result.mems = newMems;
    if (labels) {
      const rows = logits.shape[1]!;
      if (labels.dtype !== 'i32' || labels.shape.join() !== `${B},${rows}`) {
        throw new Error(`XLNet: labels must be i32 [${B}, ${rows}] (one per ${targetMapping ? 'predict slot' : 'token'}), got ${labels.dtype} [${labels.shape}]`);
      }
      result.loss = crossEntropy(reshape(logits, [B * rows, cfg.vocab_size]), reshape(labels, [B * rows]));
    }
    return result;
  }

  /** HF's cache_mem: this layer's input (first reuse_len positions) appended to the old memory, last mem_len kept. */
  private cacheMem(h: Tensor, prev: Tensor | undefined): Tensor {
    const { reuse_len, mem_len } = this.config;
    let cur = permute(h, [1, 0, 2]); // [T, B, d]
    if (reuse_len && reuse_len > 0) cur = slice(cur, 0, 0, Math.min(reuse_len, cur.shape[0]!));
    let mem = prev ? cat([prev, cur], 0) : cur;
    if (mem_len && mem_len > 0 && mem.shape[0]! > mem_len) mem = slice(mem, 0, -mem_len);
    const kept = mem.detach();
    kept.untrack();
    return kept;
  }
}

/** lm_loss as a module with only its bias (the weight is word_embedding's): HF name lm_loss.bias. */
class LMLossBias extends Module {
  bias: Tensor;
  constructor(V: number) {
    super();
    this.bias = parameter(initial([V], () => zeros([V])));
  }
}

/** The position each predict slot's one-hot row points at, -1 for an all-zero (padding) row. [B, P] */
function slotPositions(targetMapping: ArrayLike<number>, B: number, P: number, T: number): Int32Array {
  const pos = new Int32Array(B * P).fill(-1);
  for (let bm = 0; bm < B * P; bm++) for (let t = 0; t < T; t++) if (targetMapping[bm * T + t] !== 0) pos[bm] = t;
  return pos;
}

/** Shapes and contents of the host inputs, checked before any GPU work. */
function checkInputs(cfg: XLNetConfig, B: number, T: number, M: number, P: number, input: XLNetForwardInput): void {
  const size = (name: string, a: ArrayLike<number> | undefined, n: number, shape: string): void => {
    if (a && a.length !== n) throw new Error(`XLNet: ${name} must be ${shape} = ${n} values, got ${a.length}`);
  };
  size('tokenTypeIds', input.tokenTypeIds, B * T, `[B, T] = [${B}, ${T}]`);
  size('attentionMask', input.attentionMask, B * T, `[B, T] = [${B}, ${T}]`);
  size('permMask', input.permMask, B * T * T, `[B, T, T] = [${B}, ${T}, ${T}]`);
  if (input.targetMapping) {
    if (!(Number.isInteger(P) && P >= 1)) throw new Error('XLNet: targetMapping needs numPredict (its P in [B, P, T])');
    size('targetMapping', input.targetMapping, B * P * T, `[B, P, T] = [${B}, ${P}, ${T}]`);
    const tm = input.targetMapping;
    for (let b = 0; b < B; b++) {
      const used = new Map<number, number>();
      for (let m = 0; m < P; m++) {
        const row = Array.from({ length: T }, (_, t) => tm[(b * P + m) * T + t]!);
        const ones = row.flatMap((x, t) => (x === 0 ? [] : [t]));
        if (ones.length > 1 || row.some((x) => x !== 0 && x !== 1)) {
          throw new Error(`XLNet: targetMapping row [${b}, ${m}] must be one-hot or all zero, got ${ones.length} nonzero entries`);
        }
        if (ones.length === 1) {
          const t = ones[0]!;
          if (used.has(t)) throw new Error(`XLNet: targetMapping slots ${used.get(t)} and ${m} of batch row ${b} both predict position ${t}`);
          used.set(t, m);
        }
      }
    }
  }
  if (input.mems) {
    if (input.mems.length !== cfg.n_layer) throw new Error(`XLNet: mems has ${input.mems.length} layers, the model has ${cfg.n_layer}`);
    for (const [l, m] of input.mems.entries()) {
      if (m.ndim !== 3 || m.shape[0] !== M || m.shape[1] !== B || m.shape[2] !== cfg.d_model) {
        throw new Error(`XLNet: mems[${l}] must be [M, B, d] = [${M}, ${B}, ${cfg.d_model}], got [${m.shape}]`);
      }
    }
  }
  if (cfg.bi_data && B % 2 !== 0) throw new Error(`XLNet: bi_data needs an even batch (forward and backward halves), got B = ${B}`);
}

// ---- checkpoints: Hugging Face state dicts ----

/** Tensors of other XLNet heads (sequence summary, QA, the tied LM weight) that an LM does not use. */
const OTHER_HEADS = /^(lm_loss\.weight|sequence_summary\.|logits_proj\.|qa_outputs\.|start_logits\.|end_logits\.|answer_class\.)/;

/** "transformer.layer.0.ff.layer_1.weight" and "layer.0.ff.layer_1.weight" (XLNetModel files) name the same weight. */
const canonical = (name: string): string => (name.startsWith('transformer.') || name.startsWith('lm_loss.') ? name : `transformer.${name}`);

/**
 * An XLNetLMHeadModel with the weights of a Hugging Face state dict: names with or without "transformer.",
 * the tied lm_loss.weight and other heads skipped, lm_loss.bias zero when absent (an XLNetModel file);
 * missing, unknown or mis-shaped tensors refused.
 */
export function xlnetFromStateDict(config: Partial<XLNetConfig>, weights: ReadonlyMap<string, HostTensor>): XLNetLMHeadModel {
  const model = withoutInit(() => new XLNetLMHeadModel(config));
  try {
    const targets = new Map(model.namedParameters());
    const c = model.config;
    const loaded = uploadStateDict(targets, weights, {
      family: 'XLNet',
      canonical,
      skip: (name) => OTHER_HEADS.test(name),
      notOurs: 'not an XLNet weight',
      sizes: `d_model ${c.d_model}, n_head ${c.n_head}, d_inner ${c.d_inner}, n_layer ${c.n_layer}, vocab_size ${c.vocab_size}`,
    });
    if (!loaded.has('lm_loss.bias')) targets.get('lm_loss.bias')!.upload(new Float32Array(c.vocab_size));
    expectComplete('XLNet', [...targets.keys()].filter((n) => n !== 'lm_loss.bias'), loaded);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** The model's weights under XLNetLMHeadModel names, as save_pretrained writes them (the tied lm_loss.weight left out). */
export async function xlnetStateDict(model: XLNetLMHeadModel): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of model.namedParameters()) out.set(name, fromFloat32((await t.toArray()) as Float32Array, [...t.shape]));
  return out;
}
