// WGSL for XLNet's relative attention core, fused: content, position and segment terms, masks built in the kernel, flash-style forward and recomputing backward.
//
// Legend: B batch, NH heads, Q query rows per (b, h) (T for the content stream, P predict slots for the query
// stream), T current tokens, M memory, K = M + T keys, HS head size, NT tables (2 with bi_data), R table rows.
//   qq [2,B,NH,Q,HS]  (qu = q + r_w_bias, then qv = q + r_r_bias)     k, v [B,NH,K,HS]
//   kr [NT,NH,R,HS]   (the distance tables projected by r: row u holds distance K - u)
//   efs [B,NH,Q,2]    ((q + r_s_bias)·seg_embed[s], s = 0 same segment, 1 different; only with token types)
//   info_i32 ("meta" in the op): qpos [B,Q] (the position t of each query row; -1 = a padding slot), then at offsets in Params:
//             types [B,T], pad [B,T] (0 = padding key), perm [B,T,T] (1 = t may not see token c)
// Query row r of (b, h) at position t and key j (j < M: memory):
//   s = qu·k_j + qv·kr[tbl, h, K - M - t + j] + efs[r, diff(t, j)],   x = s·scale - 1e30·blocked(t, j)
//   o_r = Σ_j softmax_j(x)·z_rj·v_j
// with tbl = 1 for the second half of the batch under bi_data, blocked = uni's causal rule (and same_length), padding
// keys and perm_mask on current tokens, the diagonal j = M + t cleared for the content stream. As in HF the mask
// subtracts 1e30: a fully blocked row rounds every x to -1e30 and is uniform. The table index K - M - t + j stays
// in [1, K + T - 1] for bi; under uni it passes R - 1 only for blocked pairs, and is clamped there.
// z: attention dropout, 1/(1-p) kept or 0, hashed from (seed, flat index of [B,NH,Q,K]) as kernels/dropout.ts.
//
// The [Q, K] scores and the [Q, R] position scores never reach memory: the position term is read per pair from
// the table, so the query stream costs P·K pairs, not T·K. Forward and dq: an invocation owns `per` query rows,
// keys stream through workgroup memory. dk/dv: an invocation owns `per` keys, query rows stream. dkr: an
// invocation owns `per` table rows and visits the (row, key) pairs that read them.
// Reference: test/reference/rel_attention.ts.

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { MIX32_WGSL } from './hash.js';

export interface RelAttentionVariant {
  /** ceil(HS / 4). */
  hs4: number;
  lanes: number;
  per: number;
  /** Streamed rows staged at a time. */
  tile: number;
  /** Token types given: the efs binding and the segment term. */
  seg: boolean;
  dropout: boolean;
}

/** Params flags. */
export const REL_FLAGS = { uni: 1, sameLength: 2, selfVisible: 4, biData: 8, pad: 16, perm: 32 } as const;

function common({ hs4, lanes, per, tile, seg, dropout }: RelAttentionVariant): string {
  return wgsl`
struct Params {
  B: u32, NH: u32, Q: u32, T: u32, M: u32, K: u32, R: u32, HS: u32,
  blocks: u32, scale: f32, flags: u32, off_types: u32, off_pad: u32, off_perm: u32, seed: u32, threshold: u32,
  keep_scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qq: array<vec4<f32>>;     // [2,B,NH,Q,HS4]
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;      // [B,NH,K,HS4]
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;      // [B,NH,K,HS4]
@group(0) @binding(4) var<storage, read> kr: array<vec4<f32>>;     // [NT,NH,R,HS4]
@group(0) @binding(5) var<storage, read> info_i32: array<i32>;
#if ${seg}
@group(0) @binding(6) var<storage, read> efs: array<vec2<f32>>;    // [B,NH,Q] of (same, different)
#endif

const HS4 = ${hs4}u;
const LANES = ${lanes}u;
const ROWS = ${per}u;
const BLOCK = ${lanes * per}u;
const TILE = ${tile}u;
// Below every score: the running max starts here, so a first key of -1e30 (blocked) still replaces it.
const NEG_BIG: f32 = -3.4028234663852886e38;

fn flag(bit: u32) -> bool { return (p.flags & bit) != 0u; }

/** Position of query row r of batch row b; -1 for a padding slot (and past Q). */
fn qpos(b: u32, r: u32) -> i32 { return select(-1, info_i32[b * p.Q + r], r < p.Q); }

/** Whether the query at position t of batch row b may not see key j. */
fn blocked(b: u32, t: u32, j: u32) -> bool {
  var x = flag(${REL_FLAGS.uni}u) && (j > p.M + t || (flag(${REL_FLAGS.sameLength}u) && j < t));
  if (j >= p.M) {
    let c = j - p.M;
    if (flag(${REL_FLAGS.pad}u) && info_i32[p.off_pad + b * p.T + c] == 0) { x = true; }
    if (flag(${REL_FLAGS.perm}u) && info_i32[p.off_perm + (b * p.T + t) * p.T + c] != 0) { x = true; }
  }
  return x && !(flag(${REL_FLAGS.selfVisible}u) && j == p.M + t);
}

/** Index of the kr row [tbl, h, u] the pair (t, j) reads: distance M + t - j is row K - M - t + j. */
fn table_row(b: u32, h: u32, t: u32, j: u32) -> u32 {
  let tbl = select(0u, 1u, flag(${REL_FLAGS.biData}u) && b >= p.B / 2u);
  let u = clamp(i32(p.K - p.M) - i32(t) + i32(j), 0, i32(p.R) - 1);
  return (tbl * p.NH + h) * p.R + u32(u);
}

/** The segment term of row r (at t) for key j: efs[.., same or different]. */
fn seg_term(b: u32, bhr: u32, t: u32, j: u32) -> f32 {
#if ${seg}
  let key_type = select(info_i32[p.off_types + b * p.T + j - p.M], 0, j < p.M);
  let e = efs[bhr];
  return select(e.x, e.y, info_i32[p.off_types + b * p.T + t] != key_type);
#else
  return 0.0;
#endif
}

#if ${dropout}
${MIX32_WGSL}
#endif

/** Dropout factor z of pair (bhr, j): keep_scale if kept, 0 if dropped; 1 without dropout. */
fn kept(bhr: u32, j: u32) -> f32 {
#if ${dropout}
  return select(0.0, p.keep_scale, mix32(mix32(bhr * p.K + j) ^ p.seed) >= p.threshold);
#else
  return 1.0;
#endif
}

fn dot4(a: vec4<f32>) -> f32 { return a.x + a.y + a.z + a.w; }

/** Which workgroup this is, in the flattened 2-D grid. */
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }
`;
}

/** K/V tiles in workgroup memory for the kernels that own query rows; rows from K on are zeros. */
function stageKeysWGSL({ hs4, tile }: RelAttentionVariant): string {
  return /* wgsl */ `
var<workgroup> Ks: array<vec4<f32>, ${tile * hs4}>;
var<workgroup> Vs: array<vec4<f32>, ${tile * hs4}>;

fn stage_keys(bh: u32, j0: u32, li: u32) {
  for (var e = li; e < TILE * HS4; e += LANES) {
    let c = e / HS4;
    let at = (bh * p.K + j0 + c) * HS4 + e % HS4;
    let inside = j0 + c < p.K;
    Ks[e] = select(vec4<f32>(), k[min(at, arrayLength(&k) - 1u)], inside);
    Vs[e] = select(vec4<f32>(), v[min(at, arrayLength(&v) - 1u)], inside);
  }
}`;
}

/**
 * Forward. Workgroup: BLOCK query rows of one bh, online softmax per row over key tiles:
 *   m' = max(m, max_c x_c),  l = l·e^(m-m') + Σ_c e^(x_c-m'),  acc = acc·e^(m-m') + Σ_c e^(x_c-m') z_c v_c,  o = acc / l.
 * Bindings: 1-6 as in the header, 7 o [B,NH,Q,HS4], 8 stats [B,NH,Q] of (m, l).
 */
export function relAttentionForwardWGSL(variant: RelAttentionVariant): string {
  const { lanes } = variant;
  return /* wgsl */ `
${common(variant)}
@group(0) @binding(7) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> stats: array<vec2<f32>>;
${stageKeysWGSL(variant)}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.B * p.NH) { return; }
  let bh = w / p.blocks;
  let b = bh / p.NH;
  let h = bh % p.NH;
  let r0 = (w % p.blocks) * BLOCK;
  let rows = p.B * p.NH * p.Q;
  var qu: array<array<vec4<f32>, HS4>, ROWS>;
  var qv: array<array<vec4<f32>, HS4>, ROWS>;
  var acc: array<array<vec4<f32>, HS4>, ROWS>;
  var m: array<f32, ROWS>;
  var l: array<f32, ROWS>;
  var t: array<i32, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    let r = r0 + li + i * LANES;
    t[i] = qpos(b, r);
    let row = bh * p.Q + min(r, p.Q - 1u);
    for (var d = 0u; d < HS4; d++) {
      qu[i][d] = qq[row * HS4 + d];
      qv[i][d] = qq[(rows + row) * HS4 + d];
      acc[i][d] = vec4<f32>();
    }
    m[i] = NEG_BIG;
    l[i] = 0.0;
  }
  for (var j0 = 0u; j0 < p.K; j0 += TILE) {
    workgroupBarrier();
    stage_keys(bh, j0, li);
    workgroupBarrier();
    let cend = min(TILE, p.K - j0);
    var x: array<array<f32, TILE>, ROWS>;
    var m_new = m;
    for (var c = 0u; c < cend; c++) {
      let j = j0 + c;
      for (var i = 0u; i < ROWS; i++) {
        if (t[i] < 0) { continue; }
        let tt = u32(t[i]);
        let base = table_row(b, h, tt, j) * HS4;
        var s4 = vec4<f32>();
        for (var d = 0u; d < HS4; d++) { s4 += qu[i][d] * Ks[c * HS4 + d] + qv[i][d] * kr[base + d]; }
        let bhr = bh * p.Q + r0 + li + i * LANES;
        let s = dot4(s4) + seg_term(b, bhr, tt, j);
        x[i][c] = s * p.scale - select(0.0, 1e30, blocked(b, tt, j));
        m_new[i] = max(m_new[i], x[i][c]);
      }
    }
    for (var i = 0u; i < ROWS; i++) {
      let alpha = exp(m[i] - m_new[i]);
      l[i] *= alpha;
      for (var d = 0u; d < HS4; d++) { acc[i][d] *= alpha; }
    }
    for (var c = 0u; c < cend; c++) {
      var e: array<f32, ROWS>;
      for (var i = 0u; i < ROWS; i++) {
        e[i] = 0.0;
        if (t[i] < 0) { continue; }
        e[i] = exp(x[i][c] - m_new[i]);
        l[i] += e[i];
        e[i] *= kept(bh * p.Q + r0 + li + i * LANES, j0 + c);
      }
      for (var d = 0u; d < HS4; d++) {
        let vd = Vs[c * HS4 + d];
        for (var i = 0u; i < ROWS; i++) { acc[i][d] += e[i] * vd; }
      }
    }
    m = m_new;
  }
  for (var i = 0u; i < ROWS; i++) {
    let r = r0 + li + i * LANES;
    if (r >= p.Q) { continue; }
    let row = bh * p.Q + r;
    // A padding slot (t < 0) writes zeros, as HF's all-zero target-mapping row gives.
    let inv = select(0.0, 1.0 / l[i], t[i] >= 0);
    for (var d = 0u; d < HS4; d++) { o[row * HS4 + d] = acc[i][d] * inv; }
    stats[row] = select(vec2<f32>(0.0, 1.0), vec2<f32>(m[i], l[i]), t[i] >= 0);
  }
}`;
}

/**
 * Backward, step 1: per query row, do with (m, l, D = do·o) appended: doinfo [rows, HS4 + 1] of vec4, the last
 * one (m, l, D, 0). One invocation per row. Bindings: stats [rows] of (m, l), o, do [rows, HS4], doinfo.
 */
export const REL_ROW_INFO_WGSL = /* wgsl */ `
struct Params { rows: u32, hs4: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> doinfo: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.y * nwg.x * 64u + gid.x;
  if (row >= p.rows) { return; }
  var dsum = vec4<f32>();
  for (var d = 0u; d < p.hs4; d++) {
    let g = dout[row * p.hs4 + d];
    dsum += g * o[row * p.hs4 + d];
    doinfo[row * (p.hs4 + 1u) + d] = g;
  }
  doinfo[row * (p.hs4 + 1u) + p.hs4] = vec4<f32>(stats[row], dsum.x + dsum.y + dsum.z + dsum.w, 0.0);
}`;

/** Recomputes the weight of pair (row, j) and its score gradient; shared by the three backward kernels. */
const PAIR_GRAD_WGSL = /* wgsl */ `
struct PairGrad { pz: f32, ds: f32 }

/** From the pair's score s, the row's (m, l, D), and dp0 = do·v_j: p·z (what v_j weighed) and ds = d loss / d s. */
fn pair_grad(s: f32, is_blocked: bool, info: vec4<f32>, dp0: f32, z: f32) -> PairGrad {
  let x = s * p.scale - select(0.0, 1e30, is_blocked);
  let pr = exp(x - info.x) / info.y;
  return PairGrad(pr * z, pr * (dp0 * z - info.z) * p.scale);
}`;

/**
 * Backward, step 2: per query row, dqu = Σ_j ds k_j, dqv = Σ_j ds kr(t, j), defs[s] = Σ_{j in segment relation s} ds.
 * Bindings: 1-6, 7 doinfo, 8 dq [2,B,NH,Q,HS4] then defs [B,NH,Q] of vec2 (one buffer; see the op).
 */
export function relAttentionBackwardQueryWGSL(variant: RelAttentionVariant): string {
  const { lanes } = variant;
  return wgsl`
${common(variant)}
@group(0) @binding(7) var<storage, read> doinfo: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dq: array<vec4<f32>>;
${stageKeysWGSL(variant)}
${PAIR_GRAD_WGSL}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.B * p.NH) { return; }
  let bh = w / p.blocks;
  let b = bh / p.NH;
  let h = bh % p.NH;
  let r0 = (w % p.blocks) * BLOCK;
  let rows = p.B * p.NH * p.Q;
  var qu: array<array<vec4<f32>, HS4>, ROWS>;
  var qv: array<array<vec4<f32>, HS4>, ROWS>;
  var g: array<array<vec4<f32>, HS4>, ROWS>;
  var dqu: array<array<vec4<f32>, HS4>, ROWS>;
  var dqv: array<array<vec4<f32>, HS4>, ROWS>;
  var info: array<vec4<f32>, ROWS>;
  var defs: array<vec2<f32>, ROWS>;
  var t: array<i32, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    let r = r0 + li + i * LANES;
    t[i] = qpos(b, r);
    let row = bh * p.Q + min(r, p.Q - 1u);
    for (var d = 0u; d < HS4; d++) {
      qu[i][d] = qq[row * HS4 + d];
      qv[i][d] = qq[(rows + row) * HS4 + d];
      g[i][d] = doinfo[row * (HS4 + 1u) + d];
      dqu[i][d] = vec4<f32>();
      dqv[i][d] = vec4<f32>();
    }
    info[i] = doinfo[row * (HS4 + 1u) + HS4];
    defs[i] = vec2<f32>();
  }
  for (var j0 = 0u; j0 < p.K; j0 += TILE) {
    workgroupBarrier();
    stage_keys(bh, j0, li);
    workgroupBarrier();
    for (var c = 0u; c < min(TILE, p.K - j0); c++) {
      let j = j0 + c;
      for (var i = 0u; i < ROWS; i++) {
        if (t[i] < 0) { continue; }
        let tt = u32(t[i]);
        let base = table_row(b, h, tt, j) * HS4;
        let bhr = bh * p.Q + r0 + li + i * LANES;
        var s4 = vec4<f32>();
        var g4 = vec4<f32>();
        for (var d = 0u; d < HS4; d++) {
          s4 += qu[i][d] * Ks[c * HS4 + d] + qv[i][d] * kr[base + d];
          g4 += g[i][d] * Vs[c * HS4 + d];
        }
        let pg = pair_grad(dot4(s4) + seg_term(b, bhr, tt, j), blocked(b, tt, j), info[i], dot4(g4), kept(bhr, j));
        for (var d = 0u; d < HS4; d++) {
          dqu[i][d] += pg.ds * Ks[c * HS4 + d];
          dqv[i][d] += pg.ds * kr[base + d];
        }
#if ${variant.seg}
        let key_type = select(info_i32[p.off_types + b * p.T + j - p.M], 0, j < p.M);
        if (info_i32[p.off_types + b * p.T + tt] != key_type) { defs[i].y += pg.ds; } else { defs[i].x += pg.ds; }
#endif
      }
    }
  }
  for (var i = 0u; i < ROWS; i++) {
    let r = r0 + li + i * LANES;
    if (r >= p.Q) { continue; }
    let row = bh * p.Q + r;
    for (var d = 0u; d < HS4; d++) {
      dq[row * HS4 + d] = dqu[i][d];
      dq[(rows + row) * HS4 + d] = dqv[i][d];
    }
    // defs after the two [rows, HS4] blocks, two floats per row: vec4 slot (2·rows·HS4 + row / 2), half row % 2.
    let slot = 2u * rows * HS4 + row / 2u;
    if (row % 2u == 0u) { dq[slot].x = defs[i].x; dq[slot].y = defs[i].y; } else { dq[slot].z = defs[i].x; dq[slot].w = defs[i].y; }
  }
}`;
}

/**
 * Backward, step 3: per key j, dk = Σ_rows ds qu, dv = Σ_rows p z do. Query rows stream through workgroup memory.
 * Bindings: 1-6, 7 doinfo, 8 dkv [2,B,NH,K,HS4] (dk then dv).
 */
export function relAttentionBackwardKeyWGSL(variant: RelAttentionVariant): string {
  const { hs4, lanes, tile } = variant;
  return /* wgsl */ `
${common(variant)}
@group(0) @binding(7) var<storage, read> doinfo: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dkv: array<vec4<f32>>;
${PAIR_GRAD_WGSL}

var<workgroup> Qu: array<vec4<f32>, ${tile * hs4}>;
var<workgroup> Qv: array<vec4<f32>, ${tile * hs4}>;
var<workgroup> Gs: array<vec4<f32>, ${tile * (hs4 + 1)}>;   // do rows and their (m, l, D, 0)
var<workgroup> Ts: array<i32, ${tile}>;

fn stage_rows(bh: u32, b: u32, q0: u32, li: u32) {
  let rows = p.B * p.NH * p.Q;
  for (var e = li; e < TILE * HS4; e += LANES) {
    let c = e / HS4;
    let row = bh * p.Q + min(q0 + c, p.Q - 1u);
    Qu[e] = qq[row * HS4 + e % HS4];
    Qv[e] = qq[(rows + row) * HS4 + e % HS4];
  }
  for (var e = li; e < TILE * (HS4 + 1u); e += LANES) {
    let c = e / (HS4 + 1u);
    Gs[e] = doinfo[(bh * p.Q + min(q0 + c, p.Q - 1u)) * (HS4 + 1u) + e % (HS4 + 1u)];
  }
  for (var c = li; c < TILE; c += LANES) { Ts[c] = qpos(b, q0 + c); }
}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.B * p.NH) { return; }
  let bh = w / p.blocks;
  let b = bh / p.NH;
  let h = bh % p.NH;
  let j0 = (w % p.blocks) * BLOCK;
  var kj: array<array<vec4<f32>, HS4>, ROWS>;
  var vj: array<array<vec4<f32>, HS4>, ROWS>;
  var dk: array<array<vec4<f32>, HS4>, ROWS>;
  var dv: array<array<vec4<f32>, HS4>, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    let key = bh * p.K + min(j0 + li + i * LANES, p.K - 1u);
    for (var d = 0u; d < HS4; d++) {
      kj[i][d] = k[key * HS4 + d];
      vj[i][d] = v[key * HS4 + d];
      dk[i][d] = vec4<f32>();
      dv[i][d] = vec4<f32>();
    }
  }
  for (var q0 = 0u; q0 < p.Q; q0 += TILE) {
    workgroupBarrier();
    stage_rows(bh, b, q0, li);
    workgroupBarrier();
    for (var c = 0u; c < min(TILE, p.Q - q0); c++) {
      if (Ts[c] < 0) { continue; }
      let tt = u32(Ts[c]);
      let bhr = bh * p.Q + q0 + c;
      let info = Gs[c * (HS4 + 1u) + HS4];
      for (var i = 0u; i < ROWS; i++) {
        let j = j0 + li + i * LANES;
        if (j >= p.K) { continue; }
        let base = table_row(b, h, tt, j) * HS4;
        var s4 = vec4<f32>();
        var g4 = vec4<f32>();
        for (var d = 0u; d < HS4; d++) {
          s4 += Qu[c * HS4 + d] * kj[i][d] + Qv[c * HS4 + d] * kr[base + d];
          g4 += Gs[c * (HS4 + 1u) + d] * vj[i][d];
        }
        let pg = pair_grad(dot4(s4) + seg_term(b, bhr, tt, j), blocked(b, tt, j), info, dot4(g4), kept(bhr, j));
        for (var d = 0u; d < HS4; d++) {
          dk[i][d] += pg.ds * Qu[c * HS4 + d];
          dv[i][d] += pg.pz * Gs[c * (HS4 + 1u) + d];
        }
      }
    }
  }
  let keys = p.B * p.NH * p.K;
  for (var i = 0u; i < ROWS; i++) {
    let j = j0 + li + i * LANES;
    if (j >= p.K) { continue; }
    let key = bh * p.K + j;
    for (var d = 0u; d < HS4; d++) {
      dkv[key * HS4 + d] = dk[i][d];
      dkv[(keys + key) * HS4 + d] = dv[i][d];
    }
  }
}`;
}

/**
 * Backward, step 4: per table row u of (tbl, h), dkr = Σ ds qv over the (b, row, j) pairs that read it: b in the
 * table's half of the batch, j = u - (K - M) + t (every j past the end for the last row, before the start for
 * row 0: the clamped pairs). Everything is read from global memory. Bindings: 1-6, 7 doinfo, 8 dkr [NT,NH,R,HS4].
 */
export function relAttentionBackwardTableWGSL(variant: RelAttentionVariant): string {
  const { lanes } = variant;
  return /* wgsl */ `
${common(variant)}
@group(0) @binding(7) var<storage, read> doinfo: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dkr: array<vec4<f32>>;
${PAIR_GRAD_WGSL}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  let nt = select(1u, 2u, flag(${REL_FLAGS.biData}u));
  if (w >= p.blocks * nt * p.NH) { return; }
  let th = w / p.blocks;                       // tbl * NH + h
  let tbl = th / p.NH;
  let h = th % p.NH;
  let u = (w % p.blocks) * BLOCK + li;         // ROWS = 1 here: one table row per invocation
  if (u >= p.R) { return; }
  let rows = p.B * p.NH * p.Q;
  let b_lo = select(0u, p.B / 2u, tbl == 1u);
  let b_hi = select(p.B, p.B / 2u, flag(${REL_FLAGS.biData}u) && tbl == 0u);
  var acc: array<vec4<f32>, HS4>;
  for (var d = 0u; d < HS4; d++) { acc[d] = vec4<f32>(); }
  let shift = i32(p.K - p.M);
  for (var b = b_lo; b < b_hi; b++) {
    let bh = b * p.NH + h;
    for (var r = 0u; r < p.Q; r++) {
      let t = qpos(b, r);
      if (t < 0) { continue; }
      let tt = u32(t);
      let j_at = i32(u) - shift + t;
      let j_lo = select(max(j_at, 0), 0, u == 0u);
      let j_hi = select(min(j_at, i32(p.K) - 1), i32(p.K) - 1, u == p.R - 1u);
      let row = bh * p.Q + r;
      let info = doinfo[row * (HS4 + 1u) + HS4];
      for (var jj = j_lo; jj <= j_hi; jj++) {
        let j = u32(jj);
        let key = bh * p.K + j;
        let base = (th * p.R + u) * HS4;
        var s4 = vec4<f32>();
        var g4 = vec4<f32>();
        for (var d = 0u; d < HS4; d++) {
          s4 += qq[row * HS4 + d] * k[key * HS4 + d] + qq[(rows + row) * HS4 + d] * kr[base + d];
          g4 += doinfo[row * (HS4 + 1u) + d] * v[key * HS4 + d];
        }
        let pg = pair_grad(dot4(s4) + seg_term(b, row, tt, j), blocked(b, tt, j), info, dot4(g4), kept(row, j));
        for (var d = 0u; d < HS4; d++) { acc[d] += pg.ds * qq[(rows + row) * HS4 + d]; }
      }
    }
  }
  for (var d = 0u; d < HS4; d++) { dkr[(th * p.R + u) * HS4 + d] = acc[d]; }
}`;
}
