// Float64 reference for XLNet's relative attention core (src/ops/rel_attention.ts): forward, and its backward by the chain rule.
//
// Per (b, h) and query row r at position t = qpos[b, r] (-1: a padding slot, output 0), key j < K = M + T:
//   s_rj = qu_r·k_j + qv_r·kr[tbl, h, K - M - t + j] + efs[r, diff(b, t, j)]     (efs term only with types)
//   x_rj = s_rj·scale - 1e30·blocked(b, t, j)
//   p_r = softmax_j(x_r),  o_r = Σ_j p_rj z_rj v_j       (z: dropout factors, 1 without)
// blocked: uni (j > M + t, or j < t with same_length), padding keys, perm_mask; the diagonal j = M + t is cleared
// for the content stream (selfVisible). The table index is clamped into [0, R): only blocked pairs leave it.

export interface RelDims {
  B: number;
  NH: number;
  /** Query rows per (b, h): T for the content stream, P for the query stream. */
  Q: number;
  T: number;
  M: number;
  HS: number;
  /** Rows of each distance table. */
  R: number;
}

export interface RelOptions {
  qpos: ArrayLike<number>;
  types?: ArrayLike<number> | null;
  pad?: ArrayLike<number> | null;
  perm?: ArrayLike<number> | null;
  uni?: boolean;
  sameLength?: boolean;
  selfVisible?: boolean;
  biData?: boolean;
  scale: number;
  /** Dropout factors [B, NH, Q, K], or null. */
  z?: Float64Array | null;
}

export interface RelInputs {
  qu: ArrayLike<number>;
  qv: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  kr: ArrayLike<number>;
  efs?: ArrayLike<number> | null;
}

function blocked(d: RelDims, o: RelOptions, b: number, t: number, j: number): boolean {
  const { T, M } = d;
  let x = !!o.uni && (j > M + t || (!!o.sameLength && j < t));
  if (j >= M) {
    const c = j - M;
    if (o.pad && o.pad[b * T + c] === 0) x = true;
    if (o.perm && o.perm[(b * T + t) * T + c]! > 0) x = true;
  }
  if (o.selfVisible && j === M + t) x = false;
  return x;
}

const dot = (a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, n: number): number => {
  let s = 0;
  for (let e = 0; e < n; e++) s += a[ao + e]! * b[bo + e]!;
  return s;
};

/** Offset in kr of the table row the pair (t, j) of (b, h) reads: distance M + t - j is row K - M - t + j = T - t + j, clamped into the table. */
function krOffset(d: RelDims, o: RelOptions, b: number, h: number, t: number, j: number): number {
  const { B, NH, T, HS, R } = d;
  const tbl = o.biData && b >= B / 2 ? 1 : 0;
  return ((tbl * NH + h) * R + Math.min(R - 1, Math.max(0, T - t + j))) * HS;
}

/** 0 when token t of row b and key j are in the same segment (memory keys are segment 0), 1 when not. */
function segmentRelation(d: RelDims, o: RelOptions, b: number, t: number, j: number): number {
  const { T, M } = d;
  const keyType = j < M ? 0 : o.types![b * T + j - M]!;
  return o.types![b * T + t] === keyType ? 0 : 1;
}

/** Probabilities [B, NH, Q, K] (rows of padding slots all 0). */
export function relProbs(x: RelInputs, d: RelDims, o: RelOptions): Float64Array {
  const { B, NH, Q, T, M, HS } = d;
  const K = M + T;
  const p = new Float64Array(B * NH * Q * K);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let r = 0; r < Q; r++) {
        const t = o.qpos[b * Q + r]!;
        if (t < 0) continue;
        const row = ((b * NH + h) * Q + r) * K;
        const qo = ((b * NH + h) * Q + r) * HS;
        const xs = new Float64Array(K);
        for (let j = 0; j < K; j++) {
          let s = dot(x.qu, qo, x.k, ((b * NH + h) * K + j) * HS, HS) + dot(x.qv, qo, x.kr, krOffset(d, o, b, h, t, j), HS);
          if (o.types && x.efs) s += x.efs[((b * NH + h) * Q + r) * 2 + segmentRelation(d, o, b, t, j)]!;
          xs[j] = s * o.scale - (blocked(d, o, b, t, j) ? 1e30 : 0);
        }
        // A fully blocked row is uniform, as in HF (every x rounds to -1e30 in f32; here they are equal up to s).
        const allBlocked = xs.every((v) => v < -1e29);
        const m = Math.max(...xs);
        let sum = 0;
        for (let j = 0; j < K; j++) sum += p[row + j] = allBlocked ? 1 : Math.exp(xs[j]! - m);
        for (let j = 0; j < K; j++) p[row + j]! /= sum;
      }
    }
  }
  return p;
}

/** o [B, NH, Q, HS]. */
export function relAttention(x: RelInputs, d: RelDims, o: RelOptions): Float64Array {
  const { B, NH, Q, T, M, HS } = d;
  const K = M + T;
  const p = relProbs(x, d, o);
  const out = new Float64Array(B * NH * Q * HS);
  for (let bh = 0; bh < B * NH; bh++) {
    for (let r = 0; r < Q; r++) {
      for (let j = 0; j < K; j++) {
        const at = (bh * Q + r) * K + j;
        const w = p[at]! * (o.z ? o.z[at]! : 1);
        for (let e = 0; e < HS; e++) out[(bh * Q + r) * HS + e]! += w * x.v[(bh * K + j) * HS + e]!;
      }
    }
  }
  return out;
}

/** Gradients of Σ o·dout with respect to every input, by the chain rule through the softmax. */
export function relAttentionBackward(
  x: RelInputs,
  dout: ArrayLike<number>,
  d: RelDims,
  o: RelOptions,
): { qu: Float64Array; qv: Float64Array; k: Float64Array; v: Float64Array; kr: Float64Array; efs: Float64Array } {
  const { B, NH, Q, T, M, HS } = d;
  const K = M + T;
  const p = relProbs(x, d, o);
  const g = {
    qu: new Float64Array(x.qu.length),
    qv: new Float64Array(x.qv.length),
    k: new Float64Array(x.k.length),
    v: new Float64Array(x.v.length),
    kr: new Float64Array(x.kr.length),
    efs: new Float64Array(B * NH * Q * 2),
  };
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let r = 0; r < Q; r++) {
        const t = o.qpos[b * Q + r]!;
        if (t < 0) continue;
        const row = ((b * NH + h) * Q + r) * K;
        const qo = ((b * NH + h) * Q + r) * HS;
        const dp = new Float64Array(K);
        let D = 0;
        for (let j = 0; j < K; j++) {
          dp[j] = dot(dout, qo, x.v, ((b * NH + h) * K + j) * HS, HS) * (o.z ? o.z[row + j]! : 1);
          D += p[row + j]! * dp[j]!;
        }
        for (let j = 0; j < K; j++) {
          const ko = ((b * NH + h) * K + j) * HS;
          const pz = p[row + j]! * (o.z ? o.z[row + j]! : 1);
          for (let e = 0; e < HS; e++) g.v[ko + e]! += pz * dout[qo + e]!;
          const ds = p[row + j]! * (dp[j]! - D) * o.scale;
          const kro = krOffset(d, o, b, h, t, j);
          for (let e = 0; e < HS; e++) {
            g.qu[qo + e]! += ds * x.k[ko + e]!;
            g.k[ko + e]! += ds * x.qu[qo + e]!;
            g.qv[qo + e]! += ds * x.kr[kro + e]!;
            g.kr[kro + e]! += ds * x.qv[qo + e]!;
          }
          if (o.types) g.efs[((b * NH + h) * Q + r) * 2 + segmentRelation(d, o, b, t, j)]! += ds;
        }
      }
    }
  }
  return g;
}
