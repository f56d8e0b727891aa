// Float64 reference for causal self-attention with Hugging Face GPT-2's masks: the forward, and the backward HF's autograd computes.
//
// Legend: B batch, NH heads, T queries, S keys, HS head size, P = S - T past length. q [B,NH,T,HS], k, v [B,NH,S,HS],
// pad [B,S] (nonzero = real), all flat row-major. HF (transformers 4.36, f32) computes
//   w = where(j <= P + t, s, MIN) + (1 - pad_j)·MIN,   MIN = finfo(f32).min,   p = softmax_j(w)
// which sorts every (t, j) into class A (visible and real: s), B (exactly one mask: MIN) or C (both: -inf, weight 0).
// This file states the outcome directly instead of imitating f32 overflow: softmax over class A when a row has any,
// else uniform over class B. Attention dropout multiplies p by z [B,NH,T,S] (1/(1-pdrop) kept, 0 dropped) before v.

import { dropoutBits } from './rows.js';

export interface AttentionDims {
  B: number;
  NH: number;
  T: number;
  S: number;
  HS: number;
}

type Cls = 'A' | 'B' | 'C';

function classOf(t: number, j: number, P: number, real: boolean): Cls {
  const visible = j <= P + t;
  return visible && real ? 'A' : visible || real ? 'B' : 'C';
}

/** Attention probabilities [B,NH,T,S] and the pair classes, in float64. */
export function attentionProbs(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  { B, NH, T, S, HS }: AttentionDims,
  pad: ArrayLike<number> | null,
  scale = 1 / Math.sqrt(HS),
): { p: Float64Array; cls: Cls[] } {
  const P = S - T;
  const p = new Float64Array(B * NH * T * S);
  const cls: Cls[] = new Array<Cls>(p.length);
  for (let bh = 0; bh < B * NH; bh++) {
    const b = Math.floor(bh / NH);
    for (let t = 0; t < T; t++) {
      const row = (bh * T + t) * S;
      const s = new Float64Array(S);
      let anyA = false;
      for (let j = 0; j < S; j++) {
        const c = classOf(t, j, P, pad ? pad[b * S + j] !== 0 : true);
        cls[row + j] = c;
        if (c !== 'A') continue;
        anyA = true;
        let dot = 0;
        for (let d = 0; d < HS; d++) dot += q[(bh * T + t) * HS + d]! * k[(bh * S + j) * HS + d]!;
        s[j] = dot * scale;
      }
      // Softmax over class A; with no class A key every class B input is the same MIN: a uniform row.
      const keep = anyA ? 'A' : 'B';
      let m = -Infinity;
      for (let j = 0; j < S; j++) if (cls[row + j] === keep) m = Math.max(m, s[j]!);
      let sum = 0;
      for (let j = 0; j < S; j++) {
        if (cls[row + j] !== keep) continue;
        p[row + j] = Math.exp(s[j]! - m);
        sum += p[row + j]!;
      }
      for (let j = 0; j < S; j++) p[row + j]! /= sum;
    }
  }
  return { p, cls };
}

/**
 * The dropout factors z [B,NH,T,S] the GPU draws for probability pdrop and a u32 seed: kernels/dropout.ts's keep
 * rule (bits(seed, i) >= round(pdrop·2^32)) on the flat index i of the probabilities.
 */
export function attentionDropout({ B, NH, T, S }: AttentionDims, pdrop: number, seed: number): Float64Array {
  const threshold = Math.min(Math.round(pdrop * 2 ** 32), 2 ** 32 - 1);
  return Float64Array.from({ length: B * NH * T * S }, (_, i) => (dropoutBits(seed, i) >= threshold ? 1 / (1 - pdrop) : 0));
}

/** o = (p z)·v, [B,NH,T,HS]; z = dropout factors (attentionDropout), none when null. */
export function causalAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: AttentionDims,
  pad: ArrayLike<number> | null = null,
  scale?: number,
  z: Float64Array | null = null,
): Float64Array {
  const { B, NH, T, S, HS } = dims;
  const { p } = attentionProbs(q, k, dims, pad, scale);
  const o = new Float64Array(B * NH * T * HS);
  for (let bh = 0; bh < B * NH; bh++) {
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < S; j++) {
        const at = (bh * T + t) * S + j;
        const w = p[at]! * (z ? z[at]! : 1);
        if (w === 0) continue;
        for (let d = 0; d < HS; d++) o[(bh * T + t) * HS + d]! += w * v[(bh * S + j) * HS + d]!;
      }
    }
  }
  return o;
}

/**
 * What torch's autograd returns through HF's masked softmax and attn_dropout (factors z, 1 when null), given dL/do:
 *   dv_j = Σ_t p_tj z_tj do_t,   dp_tj = z_tj do_t·v_j,   dx_tj = p_tj (dp_tj - Σ_i p_ti dp_ti),
 *   ds_tj = dx_tj where j <= P + t (padded keys included: d(s + MIN)/ds = 1), 0 where torch.where picked MIN,
 *   dq_t = scale Σ_j ds_tj k_j,   dk_j = scale Σ_t ds_tj q_t.
 * Unlike finite differences, this sees the gradient that flows through a uniform row's visible padded keys.
 */
export function causalAttentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dout: ArrayLike<number>,
  dims: AttentionDims,
  pad: ArrayLike<number> | null = null,
  scale = 1 / Math.sqrt(dims.HS),
  z: Float64Array | null = null,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, NH, T, S, HS } = dims;
  const P = S - T;
  const { p } = attentionProbs(q, k, dims, pad, scale);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let bh = 0; bh < B * NH; bh++) {
    for (let t = 0; t < T; t++) {
      const row = (bh * T + t) * S;
      const qo = (bh * T + t) * HS;
      const dp = new Float64Array(S);
      let D = 0;
      for (let j = 0; j < S; j++) {
        for (let d = 0; d < HS; d++) dp[j]! += dout[qo + d]! * v[(bh * S + j) * HS + d]!;
        dp[j]! *= z ? z[row + j]! : 1;
        D += p[row + j]! * dp[j]!;
      }
      for (let j = 0; j < S; j++) {
        const ko = (bh * S + j) * HS;
        const pj = p[row + j]!;
        const pz = pj * (z ? z[row + j]! : 1);
        for (let d = 0; d < HS; d++) dv[ko + d]! += pz * dout[qo + d]!;
        if (j > P + t) continue;
        const ds = pj * (dp[j]! - D) * scale;
        for (let d = 0; d < HS; d++) {
          dq[qo + d]! += ds * k[ko + d]!;
          dk[ko + d]! += ds * q[qo + d]!;
        }
      }
    }
  }
  return { dq, dk, dv };
}
