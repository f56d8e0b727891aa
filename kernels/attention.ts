// WGSL for fused causal self-attention with GPT-2's masks (KV cache, key padding): a flash-style forward and a backward that recomputes the probabilities.
//
// Legend: B batch, NH heads, T queries, S keys (S >= T), HS head size, P = S - T past length (the KV cache).
//   q, o, do  [B,NH,T,HS]     k, v, dk, dv  [B,NH,S,HS]     keyPadding  [B,S] (nonzero = real token, 0 = padding)
// all contiguous; (b, h) is flattened to bh = b·NH + h. Query t sits at absolute position P + t.
//
// Masks, as Hugging Face GPT-2 computes them in f32: x = where(j <= P + t, s, MIN) + (1 - pad_j)·MIN, MIN = -FLT_MAX,
// s = (q_t · k_j)·scale. Every (query t, key j) pair falls in one of three classes:
//   A  j <= P + t and key j real                   x = s
//   B  exactly one of (j > P + t), (key j padded)  x = MIN  (s + MIN rounds to MIN for any sane s)
//   C  both                                        x = MIN + MIN = -inf: weight exactly 0, so we leave the pair out
// A row with any class A key is an ordinary softmax over its class A keys (class B weighs exp(MIN - max) = 0).
// A row with none (a padded query under left padding) has max = MIN, so each class B key weighs exp(0) = 1: o is
// the plain average of the class B values, future real keys included. Everything here stays finite: class B
// enters as NEG_BIG = -FLT_MAX, class C is skipped. The forward saves per query row (m, l) = (max x, Σ exp(x - m))
// and p = exp(x - m) / l reproduces both kinds of row; m = NEG_BIG marks a uniform row.
//
// Attention dropout (training, HF's attn_dropout on the probabilities): o_t = Σ_j p_tj·z_tj·v_j with z_tj = 1/(1-pdrop)
// when the pair is kept and 0 when dropped. z is a pure function of (seed, flat index (bh·T + t)·S + j of the
// [B,NH,T,S] probabilities), with kernels/dropout.ts's hash, so the backward regenerates it. Only the value product
// sees z: m, l (the softmax itself) and D = do·o (= Σ_j p_j·dp_j with dp_j = z_j·do·v_j) are unchanged.
//
// Threads: a workgroup owns a block of LANES·R rows of one bh (queries in the forward and dq kernels, keys in the
// dk/dv kernel); invocation li owns rows li, li + LANES, ..., li + (R-1)·LANES of it and keeps their vectors in
// registers as HS4 = ceil(HS / 4) vec4s (past HS they hold 0). The other side streams through workgroup memory in
// tiles of TILE rows. R > 1 is what makes this fast on a CPU driver: each vec4 read from workgroup memory feeds R
// rows' FMAs instead of one. Grid: workgroup w = wid.y·nwg.x + wid.x owns block w % blocks of bh = w / blocks (two
// dimensions, because B·NH·blocks may pass 65535).
//
// Decoding (T small, S long: one new token against a KV cache) has too few query rows to fill those blocks, so the
// forward has a second, split-K path: the keys are cut into chunks, one workgroup per (bh, R queries, chunk), whose
// invocations each run online softmax over their share of the chunk and write its partial state (m_i, l_i, acc_i)
// to scratch; a combine kernel then merges a row's states and writes o and (m, l) as the single-pass forward does (up
// to the rounding of a differently grouped sum), so the backward cannot tell which path ran. ops/attention.ts picks.
// Reference: test/reference/attention.ts (float64, the same classes, and HF's autograd for the backward).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { MIX32_WGSL } from './hash.js';

/** The largest head size the kernels accept (each invocation keeps several HS-long rows in registers). */
export const MAX_HEAD_SIZE = 256;

export type KeyPadding = 'none' | 'f32' | 'i32';

/** Compile-time shape of one attention kernel; each distinct value is its own pipeline. */
export interface AttentionVariant {
  /** ceil(HS / 4): a row is HS4 vec4s. */
  hs4: number;
  /** Invocations per workgroup. */
  lanes: number;
  /** Rows per invocation (queries for forward/dq, keys for dk/dv). */
  per: number;
  /** Rows of the streamed side staged in workgroup memory at a time (keys for forward/dq, queries for dk/dv); 0 in
   * the split decode kernel, which stages nothing. */
  tile: number;
  /** dtype of keyPadding, or 'none' when every key is real. */
  padding: KeyPadding;
  /** Whether probabilities go through dropout (Params seed, threshold, keep_scale). */
  dropout: boolean;
}

/**
 * How to cover n rows: R rows per invocation while each keeps at most 64 vec4s per kind of row vector (so HS = 64
 * gets R = 4, HS = 256 gets 1), fewer for short n; and 8 or 16 invocations (8 is the SIMD width lavapipe runs
 * invocations at), so a decode step (n = 1) does not idle dozens of lanes.
 */
export function attentionBlock(n: number, hs4: number): { lanes: number; per: number } {
  const most = Math.max(1, Math.min(4, Math.floor(64 / hs4)));
  let per = 1;
  while (per < most && per * 8 < n) per *= 2;
  return { lanes: Math.ceil(n / per) > 8 ? 16 : 8, per };
}

/**
 * Streamed rows per tile: as many as fit `vectors` HS-long vec4 rows plus one vec4 of row data (and `extraBytes`)
 * per streamed row in the adapter's workgroup memory (read, not assumed: 16 KiB is the WebGPU minimum, lavapipe
 * offers 32 KiB), at most 32. The kernels here stage two vectors per row (k and v, or q and do).
 */
export function attentionTile(hs4: number, workgroupBytes: number, vectors = 2, extraBytes = 0): number {
  return Math.max(1, Math.min(32, Math.floor(workgroupBytes / (16 * (vectors * hs4 + 1) + extraBytes))));
}

/** Params, constants and helpers every attention kernel shares. Binding 4 is keyPadding where there is one. */
function common({ hs4, lanes, per, tile, padding, dropout }: AttentionVariant): string {
  const padded = padding !== 'none';
  return wgsl`
// blocks: row blocks per bh; chunks: key chunks per row block (1 except in the split decode kernel).
struct Params { BH: u32, NH: u32, T: u32, S: u32, HS: u32, P: u32, blocks: u32, chunks: u32, scale: f32, seed: u32, threshold: u32, keep_scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
#if ${padded}
@group(0) @binding(4) var<storage, read> pad: array<${padding}>;   // [B, S]
#endif

// -FLT_MAX: HF's mask value, the floor of every softmax input here, so x - m never overflows.
const NEG_BIG: f32 = -3.4028234663852886e38;
const HS4 = ${hs4}u;
const LANES = ${lanes}u;
const R = ${per}u;
const BLOCK = ${lanes * per}u;
const TILE = ${tile}u;

/** Whether key j of batch row b is a real token (padding = 0). */
fn key_is_real(b: u32, j: u32) -> bool {
#if ${padded}
  return pad[b * p.S + j] != ${padding === 'f32' ? '0.0' : '0'};
#else
  return true;
#endif
}

#if ${dropout}
${MIX32_WGSL}
#endif

/** z of pair (t, j) of bh (file header): keep_scale = 1/(1-pdrop) if kept, 0 if dropped; 1 without dropout. */
fn kept(bh: u32, t: u32, j: u32) -> f32 {
#if ${dropout}
  let i = (bh * p.T + t) * p.S + j;
  return select(0.0, p.keep_scale, mix32(mix32(i) ^ p.seed) >= p.threshold);
#else
  return 1.0;
#endif
}

/** Which workgroup this is, in the flattened 2-D grid. */
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }
`;
}

/**
 * K/V tiles in workgroup memory and the function that fills them, shared by the forward and dq kernels (which bind
 * k and v at 2 and 3). Keys from kmax on are staged as zeros with Rs = 0: the loops then need no bounds checks.
 */
function stageKeysWGSL({ hs4, tile }: AttentionVariant): string {
  return /* wgsl */ `
var<workgroup> Ks: array<vec4<f32>, ${tile * hs4}>;   // [TILE, HS4]
var<workgroup> Vs: array<vec4<f32>, ${tile * hs4}>;   // [TILE, HS4]
var<workgroup> Rs: array<u32, ${tile}>;               // 1 when key j0 + c is real and below kmax

/** Stages keys j0 .. j0 + TILE of bh. Consecutive invocations read consecutive floats of k and v. */
fn stage_keys(bh: u32, b: u32, j0: u32, kmax: u32, li: u32) {
  for (var e = li; e < TILE * HS4 * 4u; e += LANES) {
    let c = e / (HS4 * 4u);
    let d = e % (HS4 * 4u);
    let j = j0 + c;
    var kx = 0.0;
    var vx = 0.0;
    if (j < kmax && d < p.HS) {
      let at = (bh * p.S + j) * p.HS + d;
      kx = k[at];
      vx = v[at];
    }
    Ks[c * HS4 + d / 4u][d % 4u] = kx;
    Vs[c * HS4 + d / 4u][d % 4u] = vx;
  }
  for (var c = li; c < TILE; c += LANES) { Rs[c] = select(0u, 1u, j0 + c < kmax && key_is_real(b, j0 + c)); }
}`;
}

/**
 * Forward. Workgroup: BLOCK queries t0.. of one bh. Each invocation holds its R queries and their running (m, l, acc)
 * of online softmax; key tiles j0 = 0, TILE, ... stream K and V through workgroup memory. Per tile, with x_c the
 * masked input of key j0 + c (class C left out):
 *   m' = max(m, max_c x_c),  alpha = exp(m - m'),  l = l·alpha + Σ_c exp(x_c - m'),  acc = acc·alpha + Σ_c exp(x_c - m') z_c v_c
 * then o = acc / l (z_c = 1 without dropout). Keys from kmax = P + min(T, t0 + BLOCK) on are causally hidden from the whole block, so the loop
 * stops there; only a uniform row (no class A key, see the file header) also needs them, as class B when real.
 * Bindings: q [B,NH,T,HS], k, v [B,NH,S,HS], (padding) keyPadding [B,S], o [B,NH,T,HS], stats [B,NH,T] of (m, l).
 */
export function attentionForwardWGSL(variant: AttentionVariant): string {
  const { lanes, padding } = variant;
  return wgsl`
${common(variant)}
@group(0) @binding(1) var<storage, read> q: array<f32>;                 // [B,NH,T,HS]
@group(0) @binding(2) var<storage, read> k: array<f32>;                 // [B,NH,S,HS]
@group(0) @binding(3) var<storage, read> v: array<f32>;                 // [B,NH,S,HS]
@group(0) @binding(5) var<storage, read_write> o: array<f32>;           // [B,NH,T,HS]
@group(0) @binding(6) var<storage, read_write> stats: array<vec2<f32>>; // [B,NH,T] of (m, l)

${stageKeysWGSL(variant)}
@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.BH) { return; }   // uniform across the workgroup, so the barriers below stay uniform
  let bh = w / p.blocks;
  let b = bh / p.NH;
  let t0 = (w % p.blocks) * BLOCK;
  var qr: array<array<vec4<f32>, HS4>, R>;
  var acc: array<array<vec4<f32>, HS4>, R>;
  var m: array<f32, R>;
  var l: array<f32, R>;
  for (var r = 0u; r < R; r++) {
    // Rows past T compute on row T - 1 (so every read is in bounds) and write nothing.
    let row = bh * p.T + min(t0 + li + r * LANES, p.T - 1u);
    for (var d = 0u; d < p.HS; d++) { qr[r][d / 4u][d % 4u] = q[row * p.HS + d]; }
    m[r] = NEG_BIG;
  }
  let kmax = p.P + min(p.T, t0 + BLOCK);     // no query of this block may see keys from here on
  for (var j0 = 0u; j0 < kmax; j0 += TILE) {
    workgroupBarrier();                      // everyone is done with the previous tile
    stage_keys(bh, b, j0, kmax, li);
    workgroupBarrier();
    // A runtime trip count: fully unrolled TILE × HS4 bodies send lavapipe's compiler into minutes of work.
    let cend = min(TILE, kmax - j0);
    var x: array<array<f32, TILE>, R>;
    var m_new = m;
    for (var c = 0u; c < cend; c++) {
      // Written out: an uninitialised var declared inside a loop is not re-zeroed per iteration on Dawn + lavapipe.
      var s4 = array<vec4<f32>, R>();
      for (var d = 0u; d < HS4; d++) {
        let kd = Ks[c * HS4 + d];
        for (var r = 0u; r < R; r++) { s4[r] += qr[r][d] * kd; }
      }
      for (var r = 0u; r < R; r++) {
        let s = (s4[r].x + s4[r].y + s4[r].z + s4[r].w) * p.scale;
        // Class A keeps s; class B (and C, whose weight is zeroed below) enters as NEG_BIG, which never raises m.
        let visible = j0 + c <= p.P + t0 + li + r * LANES;
        x[r][c] = select(NEG_BIG, s, visible && Rs[c] == 1u);
        m_new[r] = max(m_new[r], x[r][c]);
      }
    }
    for (var r = 0u; r < R; r++) {
      // m' >= m >= NEG_BIG: alpha is exp of a number <= 0, and 0 when a first class A key replaces a NEG_BIG max.
      let alpha = exp(m[r] - m_new[r]);
      l[r] *= alpha;
      for (var d = 0u; d < HS4; d++) { acc[r][d] *= alpha; }
    }
    for (var c = 0u; c < cend; c++) {
      var e: array<f32, R>;
      for (var r = 0u; r < R; r++) {
        let visible = j0 + c <= p.P + t0 + li + r * LANES;
        e[r] = select(0.0, exp(x[r][c] - m_new[r]), visible || Rs[c] == 1u);   // class C weighs 0
        l[r] += e[r];
        e[r] *= kept(bh, t0 + li + r * LANES, j0 + c);
      }
      for (var d = 0u; d < HS4; d++) {
        let vd = Vs[c * HS4 + d];
        for (var r = 0u; r < R; r++) { acc[r][d] += e[r] * vd; }
      }
    }
    m = m_new;
  }
  for (var r = 0u; r < R; r++) {
    let t = t0 + li + r * LANES;
    if (t >= p.T) { continue; }
#if ${padding !== 'none'}
    // A uniform row (every key it may see is padding: m is still NEG_BIG) averages its class B keys, and the real
    // keys from kmax on are class B for it too. They weigh exp(NEG_BIG - NEG_BIG) = 1 each. Read straight from
    // global memory: only such rows pay for this loop, and it has no barriers.
    if (m[r] == NEG_BIG) {
      for (var j = kmax; j < p.S; j++) {
        if (key_is_real(b, j)) {
          l[r] += 1.0;
          let z = kept(bh, t, j);
          for (var d = 0u; d < p.HS; d++) { acc[r][d / 4u][d % 4u] += z * v[(bh * p.S + j) * p.HS + d]; }
        }
      }
    }
#endif
    // l >= 1: the key reaching the max m weighs exp(0), and key 0 is never class C (P + t >= 0).
    let inv = 1.0 / l[r];
    let row = bh * p.T + t;
    for (var d = 0u; d < p.HS; d++) { o[row * p.HS + d] = acc[r][d / 4u][d % 4u] * inv; }
    stats[row] = vec2<f32>(m[r], l[r]);
  }
}`;
}

/**
 * Decode forward, step 1 (split-K). Workgroup: R queries t0 = qb·R .. of one bh (R = `per`) against chunk c of the
 * keys, [c·CH, (c+1)·CH) with CH = ceil(S / chunks); invocation li takes keys c·CH + li, c·CH + li + LANES, ... of it
 * (split s = c·LANES + li of SPLITS = chunks·LANES). Lanes run over keys, not queries, so all of them work when T = 1;
 * there is no workgroup memory and no barrier, and each k and v row is read once per workgroup, straight from memory.
 * Per key j, for each of its R queries (x the masked input, class C left out, as in the single-pass forward):
 *   if x > m:  acc·= exp(m - x), l·= exp(m - x), m = x       (rare after the first keys: one exp per key, not two)
 *   l += exp(x - m),  acc += exp(x - m) z_j v_j
 * Every split covers all S keys of its chunk, the ones causally hidden from its queries included: those are class B
 * (weight exp(NEG_BIG - m) = 0 once a class A key is seen) or C, so a uniform row (m = NEG_BIG throughout) counts
 * its real future keys without the single-pass forward's tail loop. They are at most T - 1 keys.
 * A split with no key (or only class C keys) leaves m = NEG_BIG, l = 0, acc = 0: it weighs nothing in the combine.
 * Bindings: q [B,NH,T,HS], k, v [B,NH,S,HS], (padding) keyPadding [B,S], part [B,NH,T,SPLITS,HS4] of acc,
 * partStats [B,NH,T,SPLITS] of (m, l).
 */
export function attentionDecodeSplitWGSL(variant: AttentionVariant): string {
  const { lanes } = variant;
  return wgsl`
${common(variant)}
@group(0) @binding(1) var<storage, read> q: array<f32>;                      // [B,NH,T,HS]
@group(0) @binding(2) var<storage, read> k: array<f32>;                      // [B,NH,S,HS]
@group(0) @binding(3) var<storage, read> v: array<f32>;                      // [B,NH,S,HS]
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;       // [B,NH,T,SPLITS,HS4] of acc
@group(0) @binding(6) var<storage, read_write> partStats: array<vec2<f32>>;  // [B,NH,T,SPLITS] of (m, l)

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.BH * p.blocks * p.chunks) { return; }
  let bh = w / (p.blocks * p.chunks);
  let b = bh / p.NH;
  let t0 = ((w / p.chunks) % p.blocks) * R;
  let c = w % p.chunks;
  var qr: array<array<vec4<f32>, HS4>, R>;
  var acc: array<array<vec4<f32>, HS4>, R>;
  var m: array<f32, R>;
  var l: array<f32, R>;
  for (var r = 0u; r < R; r++) {
    // Rows past T compute on row T - 1 (so every read is in bounds) and write nothing.
    let row = bh * p.T + min(t0 + r, p.T - 1u);
    for (var d = 0u; d < p.HS; d++) { qr[r][d / 4u][d % 4u] = q[row * p.HS + d]; }
    m[r] = NEG_BIG;
  }
  // Elements 4d .. 4d + 3 of a k or v row are at + e4[d]: past HS, the row's last element again, which meets a zero
  // of q in the dot product and lands in acc components the combine drops.
  let last = vec4<u32>(p.HS - 1u);
  let chunk = (p.S + p.chunks - 1u) / p.chunks;
  let jend = min(p.S, (c + 1u) * chunk);
  for (var j = c * chunk + li; j < jend; j += LANES) {
    let real = key_is_real(b, j);
    let at = (bh * p.S + j) * p.HS;
    var s4 = array<vec4<f32>, R>();   // zeroed explicitly (see the single-pass forward)
    for (var d = 0u; d < HS4; d++) {
      let e = at + min(4u * d + vec4<u32>(0u, 1u, 2u, 3u), last);
      let kd = vec4<f32>(k[e.x], k[e.y], k[e.z], k[e.w]);
      for (var r = 0u; r < R; r++) { s4[r] += qr[r][d] * kd; }
    }
    var ez: array<f32, R>;
    for (var r = 0u; r < R; r++) {
      let t = t0 + r;
      let visible = j <= p.P + t;
      let x = select(NEG_BIG, (s4[r].x + s4[r].y + s4[r].z + s4[r].w) * p.scale, visible && real);
      if (x > m[r]) {
        // alpha <= 1, and 0 when a first class A key replaces a NEG_BIG max (the class B sums so far drop out).
        let alpha = exp(m[r] - x);
        l[r] *= alpha;
        for (var d = 0u; d < HS4; d++) { acc[r][d] *= alpha; }
        m[r] = x;
      }
      let ex = select(0.0, exp(x - m[r]), visible || real);   // class C weighs 0
      l[r] += ex;
      ez[r] = ex * kept(bh, t, j);
    }
    for (var d = 0u; d < HS4; d++) {
      let e = at + min(4u * d + vec4<u32>(0u, 1u, 2u, 3u), last);
      let vd = vec4<f32>(v[e.x], v[e.y], v[e.z], v[e.w]);
      for (var r = 0u; r < R; r++) { acc[r][d] += ez[r] * vd; }
    }
  }
  let splits = p.chunks * LANES;
  for (var r = 0u; r < R; r++) {
    let t = t0 + r;
    if (t >= p.T) { continue; }
    let at = (bh * p.T + t) * splits + c * LANES + li;
    partStats[at] = vec2<f32>(m[r], l[r]);
    for (var d = 0u; d < HS4; d++) { part[at * HS4 + d] = acc[r][d]; }
  }
}`;
}

/**
 * Decode forward, step 2: merges each query row's SPLITS partial states (m_i, l_i, acc_i), each of them online softmax
 * over its keys relative to its own max m_i. Rescaled to the row's max m = max_i m_i:
 *   l = Σ_i l_i exp(m_i - m),   o = Σ_i acc_i exp(m_i - m) / l
 * which is what one pass over all keys gives (the same sums, grouped differently). The split holding the max has
 * weight exp(0) and l_i >= 1, so l >= 1. A uniform row has m_i = m = NEG_BIG wherever it has class B keys: weights 1,
 * l = their count, as in the single-pass forward. One invocation per (row, vec4 of HS), grid of 64-wide workgroups.
 * Bindings: partStats [N, SPLITS] of (m, l), part [N, SPLITS, HS4], o [N, HS], stats [N] of (m, l), N = B·NH·T.
 */
export const ATTENTION_DECODE_COMBINE_WGSL = /* wgsl */ `
struct Params { rows: u32, HS: u32, HS4: u32, splits: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partStats: array<vec2<f32>>;  // [N, SPLITS] of (m, l)
@group(0) @binding(2) var<storage, read> part: array<vec4<f32>>;       // [N, SPLITS, HS4]
@group(0) @binding(3) var<storage, read_write> o: array<f32>;          // [N, HS]
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>; // [N] of (m, l)

const NEG_BIG: f32 = -3.4028234663852886e38;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.y * nwg.x * 64u + gid.x;
  if (g >= p.rows * p.HS4) { return; }
  let row = g / p.HS4;
  let d = g % p.HS4;
  var m = NEG_BIG;
  for (var i = 0u; i < p.splits; i++) { m = max(m, partStats[row * p.splits + i].x); }
  var l = 0.0;
  var acc = vec4<f32>();
  for (var i = 0u; i < p.splits; i++) {
    let st = partStats[row * p.splits + i];
    let alpha = exp(st.x - m);   // <= 1; 0 for a split whose keys were all class B under a row max from class A
    l += st.y * alpha;
    acc += alpha * part[(row * p.splits + i) * p.HS4 + d];
  }
  let inv = 1.0 / l;
  for (var c = 0u; c < 4u; c++) {
    if (4u * d + c < p.HS) { o[row * p.HS + 4u * d + c] = acc[c] * inv; }
  }
  if (d == 0u) { stats[row] = vec2<f32>(m, l); }
}`;

/**
 * Backward, step 1: per query row, D = Σ_d do·o (= Σ_j p_j dp_j, since o = Σ_j p_j v_j), packed with the forward
 * statistics for the next two kernels. One invocation per row, grid of 64-wide workgroups.
 * Bindings: stats [N] of (m, l), o [N, HS], do [N, HS], info [N] of (m, l, D, 0), N = B·NH·T.
 */
export const ATTENTION_ROW_INFO_WGSL = /* wgsl */ `
struct Params { rows: u32, HS: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> stats: array<vec2<f32>>;      // [N] of (m, l)
@group(0) @binding(2) var<storage, read> o: array<f32>;                // [N, HS]
@group(0) @binding(3) var<storage, read> dout: array<f32>;             // [N, HS]
@group(0) @binding(4) var<storage, read_write> info: array<vec4<f32>>; // [N] of (m, l, D, 0)

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.y * nwg.x * 64u + gid.x;
  if (row >= p.rows) { return; }
  var dsum = 0.0;
  for (var d = 0u; d < p.HS; d++) { dsum += dout[row * p.HS + d] * o[row * p.HS + d]; }
  info[row] = vec4<f32>(stats[row], dsum, 0.0);
}`;

/**
 * Backward, step 2: dq. Workgroup: BLOCK queries of one bh, as in the forward; each invocation holds its R queries'
 * q, do, (m, l, D) and dq. Only keys j <= P + t get a gradient (torch.where blocks the rest), so key tiles stop at
 * kmax, as in the forward. For those keys x_j = s_j (real) or NEG_BIG (padded) and
 *   p_j = exp(x_j - m) / l,   ds_j = p_j (z_j do·v_j - D),   dq = scale Σ_j ds_j k_j.
 * Bindings: q [B,NH,T,HS], k, v [B,NH,S,HS], (padding) keyPadding [B,S], do [B,NH,T,HS], info [B,NH,T],
 * dq [B,NH,T,HS].
 */
export function attentionBackwardQueryWGSL(variant: AttentionVariant): string {
  const { lanes } = variant;
  return wgsl`
${common(variant)}
@group(0) @binding(1) var<storage, read> q: array<f32>;                 // [B,NH,T,HS]
@group(0) @binding(2) var<storage, read> k: array<f32>;                 // [B,NH,S,HS]
@group(0) @binding(3) var<storage, read> v: array<f32>;                 // [B,NH,S,HS]
@group(0) @binding(5) var<storage, read> dout: array<f32>;              // [B,NH,T,HS]
@group(0) @binding(6) var<storage, read> info: array<vec4<f32>>;        // [B,NH,T] of (m, l, D, 0)
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;          // [B,NH,T,HS]

${stageKeysWGSL(variant)}
@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.BH) { return; }
  let bh = w / p.blocks;
  let b = bh / p.NH;
  let t0 = (w % p.blocks) * BLOCK;
  var qr: array<array<vec4<f32>, HS4>, R>;
  var gr: array<array<vec4<f32>, HS4>, R>;
  var st: array<vec4<f32>, R>;
  var dqa: array<array<vec4<f32>, HS4>, R>;
  for (var r = 0u; r < R; r++) {
    let row = bh * p.T + min(t0 + li + r * LANES, p.T - 1u);
    for (var d = 0u; d < p.HS; d++) {
      qr[r][d / 4u][d % 4u] = q[row * p.HS + d];
      gr[r][d / 4u][d % 4u] = dout[row * p.HS + d];
    }
    st[r] = info[row];
  }
  let kmax = p.P + min(p.T, t0 + BLOCK);
  for (var j0 = 0u; j0 < kmax; j0 += TILE) {
    workgroupBarrier();
    stage_keys(bh, b, j0, kmax, li);
    workgroupBarrier();
    for (var c = 0u; c < min(TILE, kmax - j0); c++) {
      var s4 = array<vec4<f32>, R>();   // zeroed explicitly, as in the forward
      var g4 = array<vec4<f32>, R>();
      for (var d = 0u; d < HS4; d++) {
        let kd = Ks[c * HS4 + d];
        let vd = Vs[c * HS4 + d];
        for (var r = 0u; r < R; r++) {
          s4[r] += qr[r][d] * kd;
          g4[r] += gr[r][d] * vd;
        }
      }
      var ds: array<f32, R>;
      for (var r = 0u; r < R; r++) {
        let s = (s4[r].x + s4[r].y + s4[r].z + s4[r].w) * p.scale;
        let pr = exp(select(NEG_BIG, s, Rs[c] == 1u) - st[r].x) / st[r].y;
        let t = t0 + li + r * LANES;
        let dp = (g4[r].x + g4[r].y + g4[r].z + g4[r].w) * kept(bh, t, j0 + c);
        ds[r] = select(0.0, pr * (dp - st[r].z), j0 + c <= p.P + t);
      }
      for (var d = 0u; d < HS4; d++) {
        let kd = Ks[c * HS4 + d];
        for (var r = 0u; r < R; r++) { dqa[r][d] += ds[r] * kd; }
      }
    }
  }
  for (var r = 0u; r < R; r++) {
    let t = t0 + li + r * LANES;
    if (t < p.T) {
      for (var d = 0u; d < p.HS; d++) { dq[(bh * p.T + t) * p.HS + d] = dqa[r][d / 4u][d % 4u] * p.scale; }
    }
  }
}`;
}

/**
 * Backward, step 3: dk and dv. Workgroup: BLOCK keys j0.. of one bh; each invocation holds its R keys' k, v, whether
 * they are real, and their dk, dv. Query tiles stream q, do and info through workgroup memory, from
 * tmin = max(0, j0 - P), the first query that may see a key of this block. For query t, with x = s (class A) or
 * NEG_BIG (class B), class C left out:
 *   p = exp(x - m_t) / l_t,   dv += p z do_t,   ds = p (z do_t·v_j - D_t) if j <= P + t else 0,   dk += scale ds q_t.
 * Queries before tmin see none of these keys: they add only to dv, and only when the row is uniform (m_t = NEG_BIG)
 * and the key real (class B, p = 1 / l_t); that tail reads global memory directly.
 * Bindings: q [B,NH,T,HS], k, v [B,NH,S,HS], (padding) keyPadding [B,S], do [B,NH,T,HS], info [B,NH,T],
 * dk, dv [B,NH,S,HS].
 */
export function attentionBackwardKeyWGSL(variant: AttentionVariant): string {
  const { hs4, lanes, tile, padding } = variant;
  return wgsl`
${common(variant)}
@group(0) @binding(1) var<storage, read> q: array<f32>;                 // [B,NH,T,HS]
@group(0) @binding(2) var<storage, read> k: array<f32>;                 // [B,NH,S,HS]
@group(0) @binding(3) var<storage, read> v: array<f32>;                 // [B,NH,S,HS]
@group(0) @binding(5) var<storage, read> dout: array<f32>;              // [B,NH,T,HS]
@group(0) @binding(6) var<storage, read> info: array<vec4<f32>>;        // [B,NH,T] of (m, l, D, 0)
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;          // [B,NH,S,HS]
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;          // [B,NH,S,HS]

var<workgroup> Qs: array<vec4<f32>, ${tile * hs4}>;   // [TILE, HS4]
var<workgroup> Gs: array<vec4<f32>, ${tile * hs4}>;   // [TILE, HS4] of do
var<workgroup> Is: array<vec4<f32>, ${tile}>;         // (m, l, D, 0) of query t0 + c

/** Stages queries t0 .. t0 + TILE of bh (zeros from T on). */
fn stage_queries(bh: u32, t0: u32, li: u32) {
  for (var e = li; e < TILE * HS4 * 4u; e += LANES) {
    let c = e / (HS4 * 4u);
    let d = e % (HS4 * 4u);
    let t = t0 + c;
    var qx = 0.0;
    var gx = 0.0;
    if (t < p.T && d < p.HS) {
      let at = (bh * p.T + t) * p.HS + d;
      qx = q[at];
      gx = dout[at];
    }
    Qs[c * HS4 + d / 4u][d % 4u] = qx;
    Gs[c * HS4 + d / 4u][d % 4u] = gx;
  }
  // Past T: any finite row (the loop below stops at T).
  for (var c = li; c < TILE; c += LANES) { Is[c] = info[bh * p.T + min(t0 + c, p.T - 1u)]; }
}

@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let w = workgroup_index(wid, nwg);
  if (w >= p.blocks * p.BH) { return; }
  let bh = w / p.blocks;
  let b = bh / p.NH;
  let j0 = (w % p.blocks) * BLOCK;
  var kr: array<array<vec4<f32>, HS4>, R>;
  var vr: array<array<vec4<f32>, HS4>, R>;
  var real: array<bool, R>;
  var dka: array<array<vec4<f32>, HS4>, R>;
  var dva: array<array<vec4<f32>, HS4>, R>;
  for (var r = 0u; r < R; r++) {
    let j = j0 + li + r * LANES;
    let key = bh * p.S + min(j, p.S - 1u);
    for (var d = 0u; d < p.HS; d++) {
      kr[r][d / 4u][d % 4u] = k[key * p.HS + d];
      vr[r][d / 4u][d % 4u] = v[key * p.HS + d];
    }
    real[r] = j < p.S && key_is_real(b, j);
  }
  let tmin = j0 - min(j0, p.P);              // max(0, j0 - P) without wrapping
  for (var t0 = tmin; t0 < p.T; t0 += TILE) {
    workgroupBarrier();
    stage_queries(bh, t0, li);
    workgroupBarrier();
    for (var c = 0u; c < min(TILE, p.T - t0); c++) {
      let t = t0 + c;
      let st = Is[c];
      var s4 = array<vec4<f32>, R>();   // zeroed explicitly, as in the forward
      var g4 = array<vec4<f32>, R>();
      for (var d = 0u; d < HS4; d++) {
        let qd = Qs[c * HS4 + d];
        let gd = Gs[c * HS4 + d];
        for (var r = 0u; r < R; r++) {
          s4[r] += qd * kr[r][d];
          g4[r] += gd * vr[r][d];
        }
      }
      var pz: array<f32, R>;   // p z: what v_j weighed in o_t
      var ds: array<f32, R>;
      for (var r = 0u; r < R; r++) {
        let j = j0 + li + r * LANES;
        let visible = j <= p.P + t;
        let s = (s4[r].x + s4[r].y + s4[r].z + s4[r].w) * p.scale;
        let x = select(NEG_BIG, s, visible && real[r]);
        let pr = select(0.0, exp(x - st.x) / st.y, visible || real[r]);
        let z = kept(bh, t, j);
        pz[r] = pr * z;
        ds[r] = select(0.0, pr * ((g4[r].x + g4[r].y + g4[r].z + g4[r].w) * z - st.z), visible);
      }
      for (var d = 0u; d < HS4; d++) {
        let qd = Qs[c * HS4 + d];
        let gd = Gs[c * HS4 + d];
        for (var r = 0u; r < R; r++) {
          dva[r][d] += pz[r] * gd;
          dka[r][d] += ds[r] * qd;
        }
      }
    }
  }
  for (var r = 0u; r < R; r++) {
    let j = j0 + li + r * LANES;
    if (j >= p.S) { continue; }
#if ${padding !== 'none'}
    if (real[r]) {
      for (var t = 0u; t < tmin; t++) {
        let st = info[bh * p.T + t];
        if (st.x == NEG_BIG) {
          let pz = kept(bh, t, j) / st.y;
          for (var d = 0u; d < p.HS; d++) { dva[r][d / 4u][d % 4u] += pz * dout[(bh * p.T + t) * p.HS + d]; }
        }
      }
    }
#endif
    let key = bh * p.S + j;
    for (var d = 0u; d < p.HS; d++) {
      dk[key * p.HS + d] = dka[r][d / 4u][d % 4u] * p.scale;
      dv[key * p.HS + d] = dva[r][d / 4u][d % 4u];
    }
  }
}`;
}
