// XLNet's relative attention core as one fused op (forward + backward): content, position and segment terms, the masks, softmax and the value product.

import { defineOp } from '../autograd.js';
import {
  REL_FLAGS,
  relAttentionBackwardKeyWGSL,
  relAttentionBackwardQueryWGSL,
  relAttentionBackwardTableWGSL,
  relAttentionForwardWGSL,
  relRowInfoWGSL,
  type RelAttentionVariant,
} from '../../kernels/rel_attention.js';
import { attentionBlock, attentionTile } from '../../kernels/attention.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { nextSeed } from '../random.js';
import { empty, tensor, type Tensor } from '../tensor.js';
import { reshape, slice } from './shape.js';
import { dispatch, expectDtype, fmt, grid1d, kernelCache } from './util.js';

type Key = `${number}:${number}:${number}:${number}:${0 | 1}:${0 | 1}`;
const variantOf = (key: Key): RelAttentionVariant => {
  const [hs4, lanes, per, tile, seg, drop] = key.split(':').map(Number) as [number, number, number, number, number, number];
  return { hs4, lanes, per, tile, seg: seg === 1, dropout: drop === 1 };
};
const forwardKernel = kernelCache<Key>('rel_attention_forward', (k) => relAttentionForwardWGSL(variantOf(k)));
const dqKernel = kernelCache<Key>('rel_attention_backward_dq', (k) => relAttentionBackwardQueryWGSL(variantOf(k)));
const dkvKernel = kernelCache<Key>('rel_attention_backward_dkv', (k) => relAttentionBackwardKeyWGSL(variantOf(k)));
const dkrKernel = kernelCache<Key>('rel_attention_backward_dkr', (k) => relAttentionBackwardTableWGSL(variantOf(k)));
const rowInfoKernels = [false, true].map((seg) => new Kernel(`rel_attention_backward_rows:${seg ? 1 : 0}`, relRowInfoWGSL(seg)));

/** The backward's (p·z, ds) buffer holds at most this many bytes (the WebGPU default binding limit; less where the binding limit is lower). */
const PAIR_BYTES = 128 * 2 ** 20;

/** The host data of one attention call: which keys each query row may see, and its segments and positions. */
export interface RelAttentionMasks {
  /** Current tokens T (the last T of the K keys) and memory M = K - T. */
  T: number;
  M: number;
  /** [B, Q] position of each query row (content stream: 0..T-1; query stream: the slot's target, -1 = padding slot). */
  qpos: Int32Array;
  /** [B, T] segment ids (needs efs); memory keys count as segment 0. */
  types?: ArrayLike<number>;
  /** [B, T], 0 = padding key. */
  pad?: ArrayLike<number>;
  /** [B, T, T], nonzero = query t may not see token c. */
  perm?: ArrayLike<number>;
  /** attn_type 'uni' (causal over [mem; current]), with same_length. */
  uni?: boolean;
  sameLength?: boolean;
  /** Content stream: a token always sees itself. */
  selfVisible?: boolean;
  /** Second half of the batch reads table 1. */
  biData?: boolean;
}

/**
 * RelAttentionMasks checked and packed once into the kernels' i32 buffer (qpos | types | pad | perm), so every
 * layer of a forward pass (and every stream sharing the masks) reuses one upload.
 */
export interface RelAttentionPlan {
  B: number;
  Q: number;
  T: number;
  M: number;
  biData: boolean;
  /** Token types given: the op then needs efs. */
  seg: boolean;
  flags: number;
  offsets: { types: number; pad: number; perm: number };
  meta: Tensor;
}

/** Checks the masks of B batch rows of Q query rows each and uploads them (see RelAttentionPlan). */
export function relAttentionPlan(B: number, Q: number, masks: RelAttentionMasks): RelAttentionPlan {
  const { T, M, qpos, types, pad, perm } = masks;
  if (qpos.length !== B * Q) throw new RangeError(`relativeAttention: qpos must have B·Q = ${B * Q} entries, got ${qpos.length}`);
  const bad = qpos.find((t) => t >= T || t < -1);
  if (bad !== undefined) throw new RangeError(`relativeAttention: query position ${bad} is outside [-1, ${T})`);
  if (masks.biData && B % 2 !== 0) throw new RangeError(`relativeAttention: bi_data needs an even batch, got B = ${B}`);
  const sizes = [B * Q, types ? B * T : 0, pad ? B * T : 0, perm ? B * T * T : 0];
  const meta = new Int32Array(Math.max(1, sizes.reduce((a, b) => a + b, 0)));
  meta.set(qpos, 0);
  const offsets = { types: sizes[0]!, pad: sizes[0]! + sizes[1]!, perm: sizes[0]! + sizes[1]! + sizes[2]! };
  if (types) meta.set(Int32Array.from(types), offsets.types);
  if (pad) meta.set(Int32Array.from(pad, (x) => (x === 0 ? 0 : 1)), offsets.pad);
  if (perm) meta.set(Int32Array.from(perm, (x) => (x > 0 ? 1 : 0)), offsets.perm);
  const flags =
    (masks.uni ? REL_FLAGS.uni : 0) |
    (masks.sameLength ? REL_FLAGS.sameLength : 0) |
    (masks.selfVisible ? REL_FLAGS.selfVisible : 0) |
    (masks.biData ? REL_FLAGS.biData : 0) |
    (pad ? REL_FLAGS.pad : 0) |
    (perm ? REL_FLAGS.perm : 0);
  return { B, Q, T, M, biData: !!masks.biData, seg: types !== undefined, flags, offsets, meta: tensor(meta, [meta.length], { dtype: 'i32' }) };
}

interface Options {
  B: number;
  NH: number;
  Q: number;
  T: number;
  M: number;
  K: number;
  R: number;
  HS: number;
  NT: number;
  seg: boolean;
  scale: number;
  flags: number;
  offsets: { types: number; pad: number; perm: number };
  dropout: number;
  seed: number;
}

/**
 * Variant, Params and grid for kernels whose workgroups own blocks of `n` rows of each of `groups` pairs ((b, h), or
 * (table, h) for dkr), over the chunk of (b, h) pairs bh0 .. bh0 + bhn. `staged`: the streamed rows' HS-long vectors
 * in workgroup memory (k, v for the forward and the query side; qu, do for the key side; qv for the table side) and
 * `extra` bytes more per streamed row.
 */
function launch(o: Options, n: number, groups: number, staged: number, extra: number, bh0 = 0, bhn = o.B * o.NH): { key: Key; params: Record<string, number>; grid: [number, number] } {
  const hs4 = o.HS / 4;
  const { lanes, per } = attentionBlock(n, hs4);
  const tile = attentionTile(hs4, runtime().limits.maxComputeWorkgroupStorageSize, staged, extra);
  const blocks = Math.ceil(n / (lanes * per));
  return {
    key: `${hs4}:${lanes}:${per}:${tile}:${o.seg ? 1 : 0}:${o.dropout > 0 ? 1 : 0}`,
    params: {
      B: o.B, NH: o.NH, Q: o.Q, T: o.T, M: o.M, K: o.K, R: o.R, HS: o.HS, blocks, scale: o.scale, flags: o.flags,
      off_types: o.offsets.types, off_pad: o.offsets.pad, off_perm: o.offsets.perm,
      seed: o.seed, threshold: Math.min(Math.round(o.dropout * 2 ** 32), 2 ** 32 - 1), keep_scale: 1 / (1 - o.dropout), bh0, bhn,
    },
    grid: grid1d(blocks * groups, 1),
  };
}

// Inputs: [qq, k, v, kr, meta] or [qq, k, v, kr, meta, efs].
const relAttentionOp = defineOp<Tensor[], Options>({
  name: 'relative_attention',
  forward([qq, k, v, kr, meta, efs], o, save) {
    const out = empty([o.B, o.NH, o.Q, o.HS], 'f32', 'rel_attention');
    const stats = empty([o.B, o.NH, o.Q, 2], 'f32', 'rel_attention_stats');
    const { key, params, grid } = launch(o, o.Q, o.B * o.NH, 2, 0);
    const inputs = [qq!.range, k!.range, v!.range, kr!.range, meta!.range, ...(efs ? [efs.range] : [])];
    dispatch(forwardKernel(key), { buffers: [...inputs, out.range, stats.range], params, grid, label: `relativeAttention q${fmt(qq!)} k${fmt(k!)} kr${fmt(kr!)}` });
    save(stats);
    return out;
  },
  // s = qu·k_j + qv·kr_u + efs[s], x = s·scale - 1e30·blocked, o = Σ_j softmax(x)_j z_j v_j. With D = do·o and
  // ds = p (z do·v_j - D) scale: dqu = Σ_j ds k_j, dqv = Σ_j ds kr_u, defs[s] = Σ ds, dk_j = Σ_rows ds qu,
  // dv_j = Σ_rows p z do, dkr_u = Σ_(rows, j reading u) ds qv. meta is data: no gradient.
  // The query-side kernel writes (p z, ds) of every pair for the key and table sides: Q·K·8 bytes per (b, h), so
  // the three run over chunks of (b, h) pairs that keep that buffer within PAIR_BYTES and one binding.
  backward(g, { inputs: [qq, k, v, kr, meta, efs], options: o, out, saved: [stats] }) {
    const pairBytes = o.Q * o.K * 8;
    const chunk = Math.min(o.B * o.NH, Math.floor(Math.min(PAIR_BYTES, runtime().bindingLimit) / pairBytes));
    if (chunk === 0) {
      throw new RangeError(`relativeAttention_backward: one (b, h) pair's ${o.Q}×${o.K} (p·z, ds) buffer (${pairBytes} bytes) is over the binding limit of ${runtime().bindingLimit} bytes`);
    }
    const rows = o.B * o.NH * o.Q;
    const hs4 = o.HS / 4;
    const doinfo = empty([rows, (hs4 + 1) * 4], 'f32', 'rel_attention_doinfo');
    dispatch(rowInfoKernels[efs ? 1 : 0]!, {
      buffers: [stats!.range, out.range, g.range, ...(efs ? [efs.range] : []), doinfo.range],
      params: { rows, hs4, scale: o.scale },
      grid: grid1d(rows, 64),
      label: 'relativeAttention_backward rows',
    });
    const dsp = empty([chunk, o.Q, o.K, 2], 'f32', 'rel_attention_dsp');
    // dq: dqu, dqv [2, B, NH, Q, HS], then defs [B, NH, Q, 2] in the same buffer.
    const dqAll = empty([2 * rows * o.HS + 4 * Math.ceil(rows / 2)], 'f32', 'rel_attention_dq');
    const dkv = empty([2, o.B, o.NH, o.K, o.HS], 'f32', 'rel_attention_dkv');
    const dkr = empty(kr!.shape, 'f32', 'rel_attention_dkr');
    for (let bh0 = 0; bh0 < o.B * o.NH; bh0 += chunk) {
      const bhn = Math.min(chunk, o.B * o.NH - bh0);
      const what = `(b, h) ${bh0}..${bh0 + bhn - 1}`;
      const q = launch(o, o.Q, bhn, 2, 0, bh0, bhn);
      dispatch(dqKernel(q.key), {
        buffers: [qq!.range, k!.range, v!.range, kr!.range, meta!.range, doinfo.range, dqAll.range, dsp.range],
        params: q.params,
        grid: q.grid,
        label: `relativeAttention_backward dq ${what}`,
      });
      const kv = launch(o, o.K, bhn, 2, 0, bh0, bhn);
      dispatch(dkvKernel(kv.key), { buffers: [qq!.range, doinfo.range, dsp.range, dkv.range], params: kv.params, grid: kv.grid, label: `relativeAttention_backward dk/dv ${what}` });
      const t = launch(o, o.R, o.NT * o.NH, 1, 4, bh0, bhn);
      dispatch(dkrKernel(t.key), { buffers: [qq!.range, meta!.range, dsp.range, dkr.range], params: t.params, grid: t.grid, label: `relativeAttention_backward dkr ${what}` });
    }
    doinfo.dispose();
    dsp.dispose();
    const dqq = reshape(slice(dqAll, 0, 0, 2 * rows * o.HS), qq!.shape);
    const defs = efs ? reshape(slice(dqAll, 0, 2 * rows * o.HS, 2 * rows * o.HS + 2 * rows), efs.shape) : null;
    dqAll.dispose();
    const dk = reshape(slice(dkv, 0, 0, 1), k!.shape);
    const dv = reshape(slice(dkv, 0, 1, 2), v!.shape);
    dkv.dispose();
    return efs ? [dqq, dk, dv, dkr, null, defs] : [dqq, dk, dv, dkr, null];
  },
});

/**
 * XLNet's relative attention for Q query rows per (b, h) against K = M + T keys, fused (kernels/rel_attention.ts):
 *   qq [2, B, NH, Q, HS] stacks qu = q + r_w_bias and qv = q + r_r_bias; k, v [B, NH, K, HS];
 *   kr [NT, NH, R, HS]: row u of the distance table projected by r (distance K - u; NT = 2 with bi_data);
 *   efs [B, NH, Q, 2]: (q + r_s_bias)·seg_embed[same, different] when the plan has token types; else null.
 * plan: the masks and positions, packed by relAttentionPlan (once per forward pass, shared by the layers).
 * Returns [B, NH, Q, HS]. HS must be a multiple of 4.
 */
export function relativeAttention(
  qq: Tensor,
  k: Tensor,
  v: Tensor,
  kr: Tensor,
  efs: Tensor | null,
  plan: RelAttentionPlan,
  options: { scale: number; dropout?: number; seed?: number },
): Tensor {
  expectDtype('relativeAttention', 'f32', { qq, k, v, kr, ...(efs ? { efs } : {}) });
  const [two, B, NH, Q, HS] = qq.shape as [number, number, number, number, number];
  const { T, M } = plan;
  const K = M + T;
  const what = `qq${fmt(qq)} k${fmt(k)} v${fmt(v)} kr${fmt(kr)}`;
  if (qq.ndim !== 5 || two !== 2) throw new RangeError(`relativeAttention: qq must be [2, B, NH, Q, HS], got ${what}`);
  if (B !== plan.B || Q !== plan.Q) throw new RangeError(`relativeAttention: the plan is for [B, Q] = [${plan.B}, ${plan.Q}], got ${what}`);
  if (HS % 4 !== 0) throw new RangeError(`relativeAttention: the head size must be a multiple of 4, got ${HS}`);
  if (k.shape.join() !== `${B},${NH},${K},${HS}` || v.shape.join() !== k.shape.join()) {
    throw new RangeError(`relativeAttention: k and v must be [B, NH, M + T, HS] = [${B}, ${NH}, ${K}, ${HS}], got ${what}`);
  }
  const NT = plan.biData ? 2 : 1;
  if (kr.ndim !== 4 || kr.shape[0] !== NT || kr.shape[1] !== NH || kr.shape[3] !== HS) {
    throw new RangeError(`relativeAttention: kr must be [${NT}, ${NH}, R, ${HS}], got ${what}`);
  }
  if ((efs === null) === plan.seg) throw new Error('relativeAttention: efs and the plan\'s token types come together');
  if (efs && efs.shape.join() !== `${B},${NH},${Q},2`) throw new RangeError(`relativeAttention: efs must be [${B}, ${NH}, ${Q}, 2], got ${fmt(efs)}`);
  const dropout = options.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`relativeAttention: dropout must be in [0, 1), got ${dropout}`);
  const o: Options = {
    B, NH, Q, T, M, K, R: kr.shape[2]!, HS, NT, seg: plan.seg, scale: options.scale, flags: plan.flags, offsets: plan.offsets, dropout,
    seed: dropout > 0 ? (options.seed ?? nextSeed()) : 0,
  };
  return relAttentionOp(efs ? [qq, k, v, kr, plan.meta, efs] : [qq, k, v, kr, plan.meta], o);
}
