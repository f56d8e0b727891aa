// Fused causal self-attention (forward + backward) with GPT-2's causal and key-padding masks and a KV cache: o = softmax(q·kᵀ·scale + masks)·v.

import { defineOp } from '../autograd.js';
import {
  ATTENTION_DECODE_COMBINE_WGSL,
  ATTENTION_ROW_INFO_WGSL,
  MAX_HEAD_SIZE,
  attentionBackwardKeyWGSL,
  attentionBackwardQueryWGSL,
  attentionDecodeSplitWGSL,
  attentionForwardWGSL,
  attentionBlock,
  attentionTile,
  type AttentionVariant,
  type KeyPadding,
} from '../../kernels/attention.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { nextSeed } from '../random.js';
import { empty, type Tensor } from '../tensor.js';
import { dispatch, expectDtype, fmt, grid1d, kernelCache } from './util.js';

type Key = `${number}:${number}:${number}:${number}:${KeyPadding}:${'dropout' | 'exact'}`;
const variantOf = (key: Key): AttentionVariant => {
  const [hs4, lanes, per, tile, padding, drop] = key.split(':') as [string, string, string, string, KeyPadding, string];
  return { hs4: Number(hs4), lanes: Number(lanes), per: Number(per), tile: Number(tile), padding, dropout: drop === 'dropout' };
};
const forwardKernel = kernelCache<Key>('attention_forward', (key) => attentionForwardWGSL(variantOf(key)));
const splitKernel = kernelCache<Key>('attention_forward_split', (key) => attentionDecodeSplitWGSL(variantOf(key)));
const combineKernel = new Kernel('attention_forward_combine', ATTENTION_DECODE_COMBINE_WGSL);
const dqKernel = kernelCache<Key>('attention_backward_dq', (key) => attentionBackwardQueryWGSL(variantOf(key)));
const dkvKernel = kernelCache<Key>('attention_backward_dkv', (key) => attentionBackwardKeyWGSL(variantOf(key)));
const rowInfoKernel = new Kernel('attention_backward_rows', ATTENTION_ROW_INFO_WGSL);

/** Sizes shared by every launch (legend in kernels/attention.ts). */
interface Options {
  B: number;
  NH: number;
  T: number;
  S: number;
  HS: number;
  scale: number;
  padding: KeyPadding;
  /** Dropout probability on the attention weights (0: none) and the u32 seed of its mask. */
  dropout: number;
  seed: number;
  /** Which forward kernel runs (see causalAttention's `forward` option). */
  forward: AttentionForward;
}

/** The forward kernels: 'auto' picks split-K for fewer than 8 queries (decodeSplit), else the single pass. */
export type AttentionForward = 'auto' | 'single-pass' | 'split-k';

/** Params every attention kernel takes, for `blocks` row blocks per bh and `chunks` key chunks per block. */
function paramsOf({ B, NH, T, S, HS, scale, dropout, seed }: Options, blocks: number, chunks: number): Record<string, number> {
  // threshold and keep_scale as kernels/dropout.ts takes them (see src/ops/dropout.ts).
  return {
    BH: B * NH, NH, T, S, HS, P: S - T, blocks, chunks, scale,
    seed, threshold: Math.min(Math.round(dropout * 2 ** 32), 2 ** 32 - 1), keep_scale: 1 / (1 - dropout),
  };
}

const keyOf = (hs4: number, lanes: number, per: number, tile: number, { padding, dropout }: Options): Key =>
  `${hs4}:${lanes}:${per}:${tile}:${padding}:${dropout > 0 ? 'dropout' : 'exact'}`;

/** The variant, Params and grid of a kernel whose workgroups own blocks of rows along `n` (T for forward/dq, S for dk/dv). */
function launch(opts: Options, n: number): { key: Key; params: Record<string, number>; grid: [number, number] } {
  const hs4 = Math.ceil(opts.HS / 4);
  const { lanes, per } = attentionBlock(n, hs4);
  const tile = attentionTile(hs4, runtime().limits.maxComputeWorkgroupStorageSize);
  const blocks = Math.ceil(n / (lanes * per));
  return { key: keyOf(hs4, lanes, per, tile, opts), params: paramsOf(opts, blocks, 1), grid: grid1d(blocks * opts.B * opts.NH, 1) };
}

/** The split-K decode forward's shape (kernels/attention.ts): R queries per workgroup, LANES invocations, key chunks. */
export interface DecodeSplit {
  lanes: number;
  per: number;
  chunks: number;
}

/** Invocations per split-K workgroup, and keys each takes per chunk (lavapipe: 16 lanes and 32 or 64 keys were no faster). */
const DECODE_LANES = 8;
const DECODE_KEYS_PER_LANE = 16;

/**
 * The split-K decode path's shape for these sizes, or null where the single-pass forward runs. The single pass gives
 * each workgroup at least 8 query rows (attentionBlock), so with T < 8 most of its lanes idle while one row streams
 * all S keys; the split path puts its lanes on keys instead. Measured on lavapipe (B 1, NH 12, HS 64; bench/RESULTS.md):
 * 3.1–4.1× faster for T = 1 at S = 32 … 4096 and 2.3× at T = 4, a tie at T = 8, 2× slower at T = 16.
 * Its scratch (one partial state per invocation) must fit one binding, else the single pass runs.
 */
export function decodeSplit(B: number, NH: number, T: number, S: number, HS: number, forward: AttentionForward = 'auto'): DecodeSplit | null {
  if (forward === 'single-pass' || (forward === 'auto' && T >= 8)) return null;
  const hs4 = Math.ceil(HS / 4);
  const most = Math.max(1, Math.min(4, Math.floor(64 / hs4)));
  let per = 1;
  while (per < most && per < T) per *= 2;
  const chunks = Math.max(1, Math.ceil(S / (DECODE_LANES * DECODE_KEYS_PER_LANE)));
  const partBytes = B * NH * T * chunks * DECODE_LANES * hs4 * 16;
  if (partBytes > runtime().bindingLimit) {
    if (forward === 'split-k') throw new RangeError(`causalAttention: the split-K forward's scratch (${partBytes} bytes) does not fit one binding (${runtime().bindingLimit}); use forward 'auto'`);
    return null;
  }
  return { lanes: DECODE_LANES, per, chunks };
}

function shapes(q: Tensor, k: Tensor, pad: Tensor | undefined, dropout: number): string {
  return `q${fmt(q)} k${fmt(k)}${pad ? ` keyPadding${fmt(pad)}` : ''}${dropout > 0 ? ` dropout=${dropout}` : ''}`;
}

// Inputs: [q, k, v] or [q, k, v, keyPadding].
const attentionOp = defineOp<Tensor[], Options>({
  name: 'causal_attention',
  forward([q, k, v, pad], opts, save) {
    const { B, NH, T, HS } = opts;
    const o = empty([B, NH, T, HS], 'f32', 'attention');
    // (m, l) per query row: the softmax max and normaliser, all the backward needs to rebuild p.
    const stats = empty([B, NH, T, 2], 'f32', 'attention_stats');
    const label = `causalAttention ${shapes(q!, k!, pad, opts.dropout)}`;
    const inputs = [q!.range, k!.range, v!.range, ...(pad ? [pad.range] : [])];
    const split = decodeSplit(B, NH, T, opts.S, HS, opts.forward);
    if (split) {
      const { lanes, per, chunks } = split;
      const hs4 = Math.ceil(HS / 4);
      const blocks = Math.ceil(T / per);
      // Each invocation's partial online-softmax state: acc [B,NH,T,SPLITS,HS4] and (m, l) [B,NH,T,SPLITS].
      const splits = chunks * lanes;
      const part = empty([B, NH, T, splits, hs4, 4], 'f32', 'attention_split_acc');
      const partStats = empty([B, NH, T, splits, 2], 'f32', 'attention_split_stats');
      dispatch(splitKernel(keyOf(hs4, lanes, per, 0, opts)), {
        buffers: [...inputs, part.range, partStats.range],
        params: paramsOf(opts, blocks, chunks),
        grid: grid1d(B * NH * blocks * chunks, 1),
        label: `${label} split-K ${chunks}×${lanes}`,
      });
      dispatch(combineKernel, {
        buffers: [partStats.range, part.range, o.range, stats.range],
        params: { rows: B * NH * T, HS, HS4: hs4, splits },
        grid: grid1d(B * NH * T * hs4, 64),
        label: `${label} split-K combine`,
      });
      part.dispose();
      partStats.dispose();
    } else {
      const { key, params, grid } = launch(opts, T);
      dispatch(forwardKernel(key), { buffers: [...inputs, o.range, stats.range], params, grid, label });
    }
    save(stats);
    return o;
  },
  // Per (b, h), query t and key j, with x_tj the masked score (kernels/attention.ts), p_t = softmax_j(x_t) and z_tj
  // the dropout factor (1/(1-pdrop) or 0; 1 without dropout):
  //   o_t = Σ_j p_tj z_tj v_j                  =>  dv_j = Σ_t p_tj z_tj do_t                   (every pair with p > 0)
  //   dp_tj = z_tj do_t · v_j,  D_t = Σ_j p_tj dp_tj = do_t · o_t,  dx_tj = p_tj (dp_tj - D_t)  (softmax backward)
  //   x_tj = s_tj + const when j <= P + t (padded keys too: d(s + MIN)/ds = 1), and MIN regardless of s when
  //   j > P + t (torch.where passes no gradient), so ds_tj = dx_tj for j <= P + t and 0 otherwise;
  //   s_tj = scale q_t · k_j                   =>  dq_t = scale Σ_j ds_tj k_j,   dk_j = scale Σ_t ds_tj q_t.
  // keyPadding is a constant: no gradient.
  backward(g, { inputs: [q, k, v, pad], options: opts, out, saved: [stats], needsGrad }) {
    const { B, NH, T, S, HS } = opts;
    const label = shapes(q!, k!, pad, opts.dropout);
    const info = empty([B, NH, T, 4], 'f32', 'attention_row_info');
    dispatch(rowInfoKernel, {
      buffers: [stats!.range, out.range, g.range, info.range],
      params: { rows: B * NH * T, HS },
      grid: grid1d(B * NH * T, 64),
      label: `causalAttention_backward rows ${label}`,
    });
    const common = [q!.range, k!.range, v!.range, ...(pad ? [pad.range] : []), g.range, info.range];
    let dq: Tensor | null = null;
    if (needsGrad[0]) {
      dq = empty(q!.shape, 'f32', 'attention_dq');
      const { key, params, grid } = launch(opts, T);
      dispatch(dqKernel(key), { buffers: [...common, dq.range], params, grid, label: `causalAttention_backward dq ${label}` });
    }
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (needsGrad[1] || needsGrad[2]) {
      // One kernel makes both (they share every score); the one nobody asked for is dropped.
      dk = empty([B, NH, S, HS], 'f32', 'attention_dk');
      dv = empty([B, NH, S, HS], 'f32', 'attention_dv');
      const { key, params, grid } = launch(opts, S);
      dispatch(dkvKernel(key), { buffers: [...common, dk.range, dv.range], params, grid, label: `causalAttention_backward dk/dv ${label}` });
      if (!needsGrad[1]) {
        dk.dispose();
        dk = null;
      }
      if (!needsGrad[2]) {
        dv.dispose();
        dv = null;
      }
    }
    info.dispose();
    return pad ? [dq, dk, dv, null] : [dq, dk, dv];
  },
});

/**
 * o = dropout(softmax(q·kᵀ·scale + masks))·v per (batch, head). q: [B,NH,T,HS]; k, v: [B,NH,S,HS] with S >= T; the T queries
 * sit at absolute positions P..P+T-1 with P = S - T (the first P keys are the KV cache). keyPadding: optional [B,S]
 * (f32 or i32; 1 = real token, 0 = padding). scale defaults to 1/sqrt(HS). Returns [B,NH,T,HS].
 *
 * The masks are Hugging Face GPT-2's (transformers 4.36, f32), reproduced exactly: query t sees keys j <= P + t that
 * are real. A query that sees no real key (a padded position under left padding) gets HF's answer, the plain average
 * of v over the keys that are masked exactly once (the padded ones it may see and the real ones after it), never NaN.
 * Gradients follow HF's autograd; keyPadding gets none. Fused and flash-style: the [T, S] scores never reach memory.
 *
 * dropout (default 0) is HF's attn_dropout while training (torch's scaled_dot_product_attention dropout_p): each
 * weight is zeroed with that probability and the rest scaled by 1/(1-dropout). Like dropout(), its mask is fixed by
 * `seed` (a u32; by default drawn with nextSeed(), so manualSeed() repeats a run) and regenerated by the backward.
 *
 * forward picks the kernel, as torch's sdpa_kernel() picks a backend (benchmarks, tests): 'single-pass' (query rows
 * across a workgroup's lanes, keys streamed through workgroup memory), 'split-k' (flash-decoding: lanes and
 * workgroups across keys, then a combine; for decoding, T < 8) or 'auto' (the default: the faster one, decodeSplit).
 * Both give the same o and statistics up to f32 rounding of a differently grouped sum.
 */
export function causalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { keyPadding?: Tensor; scale?: number; dropout?: number; seed?: number; forward?: AttentionForward } = {},
): Tensor {
  const { keyPadding: pad, scale, dropout = 0, seed, forward = 'auto' } = options;
  expectDtype('causalAttention', 'f32', { q, k, v });
  const what = `q${fmt(q)}, k${fmt(k)}, v${fmt(v)}`;
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new RangeError(`causalAttention: q, k and v must be 4-d [B,NH,T,HS] and [B,NH,S,HS], got ${what}`);
  }
  const [B, NH, T, HS] = q.shape as [number, number, number, number];
  const S = k.shape[2]!;
  if (k.shape[0] !== B || k.shape[1] !== NH || k.shape[3] !== HS || v.shape.join() !== k.shape.join()) {
    throw new RangeError(`causalAttention: k and v must both be [B,NH,S,HS] = [${B},${NH},S,${HS}] to match q, got ${what}`);
  }
  if (S < T) throw new RangeError(`causalAttention: k and v need S >= T keys (the last T are the queries' own), got ${what}`);
  if (HS < 1 || HS > MAX_HEAD_SIZE) {
    throw new RangeError(`causalAttention: head size HS = ${HS} is not supported (1 <= HS <= ${MAX_HEAD_SIZE}), got ${what}`);
  }
  if (pad) {
    if (pad.dtype !== 'f32' && pad.dtype !== 'i32') throw new TypeError(`causalAttention: keyPadding must be f32 or i32, got ${pad.dtype} ${fmt(pad)}`);
    if (pad.ndim !== 2 || pad.shape[0] !== B || pad.shape[1] !== S) {
      throw new RangeError(`causalAttention: keyPadding must be [B,S] = [${B},${S}], got ${fmt(pad)} for ${what}`);
    }
  }
  if (scale !== undefined && !Number.isFinite(scale)) throw new RangeError(`causalAttention: scale must be a finite number, got ${scale}`);
  if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`causalAttention: dropout must be in [0, 1), got ${dropout}`);
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
    throw new RangeError(`causalAttention: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  if (!['auto', 'single-pass', 'split-k'].includes(forward)) throw new RangeError(`causalAttention: forward must be 'auto', 'single-pass' or 'split-k', got ${String(forward)}`);
  const opts: Options = {
    B, NH, T, S, HS,
    scale: scale ?? 1 / Math.sqrt(HS),
    padding: pad ? (pad.dtype as 'f32' | 'i32') : 'none',
    dropout,
    seed: dropout > 0 ? (seed ?? nextSeed()) : 0,
    forward,
  };
  return attentionOp(pad ? [q, k, v, pad] : [q, k, v], opts);
}
