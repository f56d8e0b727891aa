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
// The forward never writes the [Q, K] scores or the [Q, R] position scores: the position term is read per pair from
// the table, so the query stream costs P·K pairs, not T·K. An invocation owns `per` rows of one side (query rows,
// keys or table rows) and the other side streams through workgroup memory.
// The backward recomputes each pair's probability once, in the query-side kernel (which also forms dq), and writes
// (p·z, ds) per pair to a [Q, K] buffer per (b, h); the key-side (dk, dv) and table-side (dkr) kernels only read it.
// Recomputing in all three kernels instead would form the score, the masks and the exp three times, with the dkr
// kernel (whose pairs lie on diagonals of [Q, K]) reading keys and values per pair from global memory. The op
// bounds the buffer by running the backward over chunks of (b, h) pairs (see src/ops/rel_attention.ts).
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

/** Every kernel's Params: the dimensions, the masks' flags and offsets, dropout, and the chunk of (b, h) pairs bh0 .. bh0 + bhn. */
const PARAMS_WGSL = /* wgsl */ `
struct Params {
  B: u32, NH: u32, Q: u32, T: u32, M: u32, K: u32, R: u32, HS: u32,
  blocks: u32, scale: f32, flags: u32, off_types: u32, off_pad: u32, off_perm: u32, seed: u32, threshold: u32,
  keep_scale: f32, bh0: u32, bhn: u32,
}
@group(0) @binding(0) var<uniform> p: Params;`;

/** Constants of a variant (HS4; ROWS rows per invocation, LANES apart; the streamed TILE) and the helpers every kernel uses. */
function constants({ hs4, lanes, per, tile }: RelAttentionVariant): string {
  return /* wgsl */ `
const HS4 = ${hs4}u;
const LANES = ${lanes}u;
const ROWS = ${per}u;
const BLOCK = ${lanes * per}u;
const TILE = ${tile}u;

fn flag(bit: u32) -> bool { return (p.flags & bit) != 0u; }

/** Which workgroup this is, in the flattened 2-D grid. */
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }`;
}

/** Params, the inputs of the score and the helpers of the kernels that form scores (forward, backward query side). */
function common(variant: RelAttentionVariant): string {
  return wgsl`
${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> qq: array<vec4<f32>>;     // [2,B,NH,Q,HS4]
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;      // [B,NH,K,HS4]
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;      // [B,NH,K,HS4]
@group(0) @binding(4) var<storage, read> kr: array<vec4<f32>>;     // [NT,NH,R,HS4]
@group(0) @binding(5) var<storage, read> info_i32: array<i32>;
${constants(variant)}
// Below every score: the running max starts here, so a first key of -1e30 (blocked) still replaces it.
const NEG_BIG: f32 = -3.4028234663852886e38;

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

/** Whether token t of batch row b and key j are in different segments (memory keys are segment 0). */
fn segments_differ(b: u32, t: u32, j: u32) -> bool {
  let key_type = select(info_i32[p.off_types + b * p.T + j - p.M], 0, j < p.M);
  return info_i32[p.off_types + b * p.T + t] != key_type;
}

#if ${variant.dropout}
${MIX32_WGSL}
#endif

/** Dropout factor z of pair (bhr, j): keep_scale if kept, 0 if dropped; 1 without dropout. */
fn kept(bhr: u32, j: u32) -> f32 {
#if ${variant.dropout}
  return select(0.0, p.keep_scale, mix32(mix32(bhr * p.K + j) ^ p.seed) >= p.threshold);
#else
  return 1.0;
#endif
}

fn dot4(a: vec4<f32>) -> f32 { return a.x + a.y + a.z + a.w; }
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
 * Bindings: 1-5 as in the header, 6 efs (with token types), 7 o [B,NH,Q,HS4], 8 stats [B,NH,Q] of (m, l).
 */
export function relAttentionForwardWGSL(variant: RelAttentionVariant): string {
  const { lanes } = variant;
  return wgsl`
${common(variant)}
#if ${variant.seg}
@group(0) @binding(6) var<storage, read> efs: array<vec2<f32>>;    // [B,NH,Q] of (same, different)
#endif
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
        var s = dot4(s4);
#if ${variant.seg}
        let e = efs[bh * p.Q + r0 + li + i * LANES];
        s += select(e.x, e.y, segments_differ(b, tt, j));
#endif
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
 * Backward, step 1: per query row, do with the row's constants appended: doinfo [rows, HS4 + 1] of vec4, the last
 * one (m - e_same·scale, 1/l, D = do·o, e_diff - e_same) (e = efs[row]; 0 without token types). The same-segment
 * term is common to every key of the row, so it moves into m (x - m is unchanged) and only keys of the other
 * segment add e_diff - e_same: the query-side kernel then needs no efs binding, which keeps it at 8 storage buffers
 * (WebGPU's guaranteed maximum). One invocation per row. Bindings: stats [rows] of (m, l), o, do [rows, HS4],
 * (with token types) efs [rows] of vec2, doinfo.
 */
export function relRowInfoWGSL(seg: boolean): string {
  return wgsl`
struct Params { rows: u32, hs4: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f32>>;
#if ${seg}
@group(0) @binding(4) var<storage, read> efs: array<vec2<f32>>;
#endif
@group(0) @binding(5) var<storage, read_write> doinfo: array<vec4<f32>>;

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
  var e = vec2<f32>();
#if ${seg}
  e = efs[row];
#endif
  let ml = stats[row];
  doinfo[row * (p.hs4 + 1u) + p.hs4] = vec4<f32>(ml.x - e.x * p.scale, 1.0 / ml.y, dsum.x + dsum.y + dsum.z + dsum.w, e.y - e.x);
}`;
}

/**
 * Backward, step 2 (query side): per query row, recompute each pair's weight and score gradient,
 *   x = (qu·k_j + qv·kr_u + [other segment]·info.w)·scale - 1e30·blocked,  p = exp(x - info.x)·info.y,
 *   ds = p (z do·v_j - D) scale,
 * write (p z, ds) for the other two kernels and form dqu = Σ_j ds k_j, dqv = Σ_j ds kr_u,
 * defs[s] = Σ_{j in segment relation s} ds. A padding slot's pairs are (0, 0).
 * Bindings: 1-5 as in the header, 6 doinfo, 7 dq [2,B,NH,Q,HS4] then defs [B,NH,Q] of vec2 (one buffer; see the
 * op), 8 dsp [bhn,Q,K] of (p z, ds) for the chunk's (b, h) pairs.
 */
export function relAttentionBackwardQueryWGSL(variant: RelAttentionVariant): string {
  const { lanes } = variant;
  return wgsl`
${common(variant)}
@group(0) @binding(6) var<storage, read> doinfo: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dq: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dsp: array<vec2<f32>>;
${stageKeysWGSL(variant)}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.bhn) { return; }
  let bh = p.bh0 + w / p.blocks;
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
        let r = r0 + li + i * LANES;
        let tt = u32(max(t[i], 0));
        let base = table_row(b, h, tt, j) * HS4;
        var kr_u = array<vec4<f32>, HS4>();
        var s4 = vec4<f32>();
        var g4 = vec4<f32>();
        for (var d = 0u; d < HS4; d++) {
          kr_u[d] = kr[base + d];
          s4 += qu[i][d] * Ks[c * HS4 + d] + qv[i][d] * kr_u[d];
          g4 += g[i][d] * Vs[c * HS4 + d];
        }
        var s = dot4(s4);
#if ${variant.seg}
        let differ = segments_differ(b, tt, j);
        s += select(0.0, info[i].w, differ);
#endif
        // A padding slot's pairs are (0, 0).
        let pr = select(0.0, exp(s * p.scale - select(0.0, 1e30, blocked(b, tt, j)) - info[i].x) * info[i].y, t[i] >= 0);
        let z = kept(bh * p.Q + r, j);
        let ds = pr * (dot4(g4) * z - info[i].z) * p.scale;
        for (var d = 0u; d < HS4; d++) {
          dqu[i][d] += ds * Ks[c * HS4 + d];
          dqv[i][d] += ds * kr_u[d];
        }
#if ${variant.seg}
        if (differ) { defs[i].y += ds; } else { defs[i].x += ds; }
#endif
        if (r < p.Q) { dsp[((bh - p.bh0) * p.Q + r) * p.K + j] = vec2<f32>(pr * z, ds); }
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
 * Backward, step 3 (key side): per key j, dk_j = Σ_rows ds qu, dv_j = Σ_rows p z do, reading (p z, ds) from dsp.
 * Query rows (qu and do) stream through workgroup memory. Bindings: 1 qq, 2 doinfo, 3 dsp, 4 dkv [2,B,NH,K,HS4]
 * (dk then dv).
 */
export function relAttentionBackwardKeyWGSL(variant: RelAttentionVariant): string {
  const { hs4, lanes, tile } = variant;
  return /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> qq: array<vec4<f32>>;       // [2,B,NH,Q,HS4]
@group(0) @binding(2) var<storage, read> doinfo: array<vec4<f32>>;   // [B,NH,Q,HS4 + 1]
@group(0) @binding(3) var<storage, read> dsp: array<vec2<f32>>;      // [bhn,Q,K]
@group(0) @binding(4) var<storage, read_write> dkv: array<vec4<f32>>;
${constants(variant)}

var<workgroup> Qu: array<vec4<f32>, ${tile * hs4}>;
var<workgroup> Gs: array<vec4<f32>, ${tile * hs4}>;

/** Stages qu and do of query rows q0 .. q0 + TILE of bh (rows past Q repeat row Q - 1 and are not visited). */
fn stage_rows(bh: u32, q0: u32, li: u32) {
  for (var e = li; e < TILE * HS4; e += LANES) {
    let row = bh * p.Q + min(q0 + e / HS4, p.Q - 1u);
    Qu[e] = qq[row * HS4 + e % HS4];
    Gs[e] = doinfo[row * (HS4 + 1u) + e % HS4];
  }
}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.bhn) { return; }
  let bh = p.bh0 + w / p.blocks;
  let j0 = (w % p.blocks) * BLOCK;
  var dk: array<array<vec4<f32>, HS4>, ROWS>;
  var dv: array<array<vec4<f32>, HS4>, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    for (var d = 0u; d < HS4; d++) {
      dk[i][d] = vec4<f32>();
      dv[i][d] = vec4<f32>();
    }
  }
  for (var q0 = 0u; q0 < p.Q; q0 += TILE) {
    workgroupBarrier();
    stage_rows(bh, q0, li);
    workgroupBarrier();
    for (var c = 0u; c < min(TILE, p.Q - q0); c++) {
      // Keys past K read key K - 1 and write nothing.
      let at = ((bh - p.bh0) * p.Q + q0 + c) * p.K;
      var e = array<vec2<f32>, ROWS>();
      for (var i = 0u; i < ROWS; i++) { e[i] = dsp[at + min(j0 + li + i * LANES, p.K - 1u)]; }
      for (var d = 0u; d < HS4; d++) {
        let qd = Qu[c * HS4 + d];
        let gd = Gs[c * HS4 + d];
        for (var i = 0u; i < ROWS; i++) {
          dk[i][d] += e[i].y * qd;
          dv[i][d] += e[i].x * gd;
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
 * Backward, step 4 (table side): per table row u of (tbl, h), dkr_u = Σ ds qv over the (b, row, j) pairs that read
 * it: b in the table's half of the batch, j = u - (K - M) + t (every j from there to the end for the last row, up to
 * there for row 0: the clamped pairs), so dkr_u += (Σ_j ds)·qv_row. The rows' qv and positions stream through
 * workgroup memory; ds comes from dsp. Chunks after the first (bh0 > 0) add to what the earlier ones wrote, in the
 * same order as one pass over the batch. Bindings: 1 qq, 2 info_i32 (qpos), 3 dsp, 4 dkr [NT,NH,R,HS4].
 */
export function relAttentionBackwardTableWGSL(variant: RelAttentionVariant): string {
  const { hs4, lanes, tile } = variant;
  return /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> qq: array<vec4<f32>>;       // [2,B,NH,Q,HS4]
@group(0) @binding(2) var<storage, read> info_i32: array<i32>;       // qpos [B,Q] first
@group(0) @binding(3) var<storage, read> dsp: array<vec2<f32>>;      // [bhn,Q,K]
@group(0) @binding(4) var<storage, read_write> dkr: array<vec4<f32>>;
${constants(variant)}

var<workgroup> Qv: array<vec4<f32>, ${tile * hs4}>;
var<workgroup> Ts: array<i32, ${tile}>;

/** Stages qv and the position of query rows q0 .. q0 + TILE of (b, h) = bh (rows past Q repeat row Q - 1 and are not visited). */
fn stage_rows(bh: u32, b: u32, q0: u32, li: u32) {
  let rows = p.B * p.NH * p.Q;
  for (var e = li; e < TILE * HS4; e += LANES) {
    let row = bh * p.Q + min(q0 + e / HS4, p.Q - 1u);
    Qv[e] = qq[(rows + row) * HS4 + e % HS4];
  }
  for (var c = li; c < TILE; c += LANES) { Ts[c] = info_i32[b * p.Q + min(q0 + c, p.Q - 1u)]; }
}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  let nt = select(1u, 2u, flag(${REL_FLAGS.biData}u));
  if (w >= p.blocks * nt * p.NH) { return; }
  let th = w / p.blocks;                       // tbl * NH + h
  let tbl = th / p.NH;
  let h = th % p.NH;
  let u0 = (w % p.blocks) * BLOCK;
  // This table's half of the batch, and of it the rows b with b·NH + h in the chunk [bh0, bh0 + bhn).
  let b_lo = max(select(0u, p.B / 2u, tbl == 1u), (p.bh0 + p.NH - 1u - h) / p.NH);
  let b_hi = min(select(p.B, p.B / 2u, flag(${REL_FLAGS.biData}u) && tbl == 0u), (p.bh0 + p.bhn + p.NH - 1u - h) / p.NH);
  var acc: array<array<vec4<f32>, HS4>, ROWS>;
  for (var i = 0u; i < ROWS; i++) {
    let at = (th * p.R + min(u0 + li + i * LANES, p.R - 1u)) * HS4;
    for (var d = 0u; d < HS4; d++) { acc[i][d] = select(dkr[at + d], vec4<f32>(), p.bh0 == 0u); }
  }
  let shift = i32(p.K - p.M);
  let last = i32(p.K) - 1;
  for (var b = b_lo; b < b_hi; b++) {
    let bh = b * p.NH + h;
    for (var q0 = 0u; q0 < p.Q; q0 += TILE) {
      workgroupBarrier();
      stage_rows(bh, b, q0, li);
      workgroupBarrier();
      for (var c = 0u; c < min(TILE, p.Q - q0); c++) {
        let t = Ts[c];
        if (t < 0) { continue; }
        let at = i32(((bh - p.bh0) * p.Q + q0 + c) * p.K);
        var ds = array<f32, ROWS>();
        for (var i = 0u; i < ROWS; i++) {
          let u = u0 + li + i * LANES;
          let j_at = i32(u) - shift + t;
          ds[i] = select(0.0, dsp[at + clamp(j_at, 0, last)].y, j_at >= 0 && j_at <= last && u < p.R);
          if (u == 0u || u == p.R - 1u) {
            // The clamped pairs: row 0 also takes every j below j_at, the last row every j above it.
            let j_lo = select(j_at, 0, u == 0u);
            let j_hi = select(j_at, last, u == p.R - 1u);
            ds[i] = 0.0;
            for (var j = max(j_lo, 0); j <= min(j_hi, last); j++) { ds[i] += dsp[at + j].y; }
          }
        }
        for (var d = 0u; d < HS4; d++) {
          let qd = Qv[c * HS4 + d];
          for (var i = 0u; i < ROWS; i++) { acc[i][d] += ds[i] * qd; }
        }
      }
    }
  }
  for (var i = 0u; i < ROWS; i++) {
    let u = u0 + li + i * LANES;
    if (u >= p.R) { continue; }
    for (var d = 0u; d < HS4; d++) { dkr[(th * p.R + u) * HS4 + d] = acc[i][d]; }
  }
}`;
}
