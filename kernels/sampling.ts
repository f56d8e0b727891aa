// WGSL for next-token sampling: repetition penalty, temperature, bans, top-k, top-p and a seeded draw, one workgroup per row, never sorting V.
//
// Legend: B batch, V vocab, L history length, K tokens kept by top-k (ties included).
// Three kernels, each one workgroup of WG invocations per row (row = wid.y * nwg.x + wid.x), launched in order:
//   sample_prepare  logits [B, V], history [B, L], ban [n_ban] -> z [B, V] (processed scores), state [B], ids [B] (greedy)
//   sample_top_p    z, state -> state (the top-p cut)             launched only when top-p is on
//   sample_draw     z, state -> ids [B] i32                       launched unless greedy
// state[row] carries the row's facts between them (RowState below). Reference: test/reference/sampling.ts.
//
// Per row, with the two modes of docs/gpt2.md §8 (hf = §8.3, gpt2-chinese = §8.1):
//   z_i = x_i / t, except for every id in the history (once per distinct id: the write is idempotent)
//         z_i = pen(x_i) / t,  pen(x) = x < 0 ? x * r : x / r (hf, sign-aware)  or  x / r (gpt2-chinese);
//   z_i = -inf for banned ids (written as NEG_BIG = -FLT_MAX, whose exp(. - max) is exactly 0 as well);
//   top-k: keep z_i >= z_(k), the k-th largest value, so every tie at the threshold survives;
//   top-p: order the survivors by (z desc, id asc), e_i = exp(z_i - max), Z = sum e, before_r = sum_{j<r} e_j;
//          keep position r when before_r < p Z (hf: HF removes c_asc <= 1 - p, and c_asc = 1 - before / Z)
//          or before_r <= p Z (gpt2-chinese: it removes c[r-1] > p); position 0 always stays;
//   draw:  u = hash(seed, step, row) on a 2^-24 grid in [0, 1); walk the kept ids in increasing id order and
//          return the first whose running sum of e exceeds u * (sum of kept e).
// Greedy (temperature 0, or hf with top_p 0): the lowest id among the largest processed scores.
//
// Keys: key(v) maps an f32 to a u32 with the same order (flip all bits of negatives, set the sign bit of
// positives; -0 is folded onto +0 so the two stay a tie), so "the k-th largest value" is a radix select on
// integers and "keep v >= threshold" is an integer compare. Every real value has key > 0, so 0 means "keep all".
//
// The kept set is always an upper set of the (z desc, id asc) order, described by a cut (lo, m):
//   kept(i) = key_i > lo  or  (key_i == lo and rank_i < m),  rank_i = #{j < i : key_j == lo},
// which covers top-k alone (lo = key of z_(k), m = all), top-p's partially kept tie group, and no filter (lo = 0).
//
// Top-p finds its cut in one of two ways (the draw afterwards is the same):
//   sorted:    top-k on and K <= SORT_CAPACITY: gather the K survivors into workgroup memory, bitonic-sort
//              them by (key desc, id asc), prefix-sum their masses and find where the rule stops keeping.
//   bisection: otherwise (top-k off, k > capacity, or ties beyond it): A(x) = mass of survivors with key > x
//              falls as x grows, so binary lifting over the 32 key bits finds the smallest key lo whose first
//              token is kept; the tie group at lo keeps m = #{j : A(lo) + j e_lo passes the rule}.
//              33 passes over V (exp only inside the shrinking key interval), but exact, with no capacity
//              and no extra memory; capping the candidates instead would need this as its fallback anyway
//              (a flat distribution's nucleus is most of V).
//
// Compile time: the constant bound of every loop is multiplied by the uniform p.one (= 1), so that compilers
// cannot unroll it. lavapipe unrolls such loops, barriers and all, and then needs twice the CPU time (~8.5 s,
// not ~4 s) to build these three kernels; unrolling gains nothing here at run time.

import { MIX32_WGSL } from './hash.js';

/** Most top-k survivors sorted in workgroup memory (keys + ids: 8 KiB); more go through the bisection. */
export const SORT_CAPACITY = 1024;

/** Invocations per row; also the radix select's bins (8-bit digits). */
const WG = 256;

/** Uniforms (shared by the three kernels), the row state, and the small functions they all use. */
const COMMON = /* wgsl */ `
struct Params { rows: u32, V: u32, L: u32, n_ban: u32, seed: u32, step: u32, top_k: u32, greedy: u32, temperature: f32, penalty: f32, top_p: f32, p_on: u32, hf: u32, one: u32 }

/** What sample_prepare learns about a row and the later kernels use. */
struct RowState {
  top_key: u32,   // key of the largest score
  top_id: u32,    // its lowest id
  lo: u32,        // the cut (lo, m): kept(i) = key_i > lo or (key_i == lo and rank_i < m)
  m: u32,
  kept: u32,      // K = #{key >= top-k threshold}
}

const NONE: u32 = 0xffffffffu;
const NEG_BIG: f32 = -3.4028234663852886e38;   // -FLT_MAX, our -inf (as in kernels/rows.ts)

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }

fn key_of(v: f32) -> u32 {
  let b = bitcast<u32>(select(v, 0.0, v == 0.0));
  return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}
fn value_of(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k >> 31u) == 1u));
}
/** (ka, ia) comes before (kb, ib) in the (value desc, id asc) order. */
fn ahead(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia < ib);
}
/** The top-p rule for a token with mass "before" ahead of it: hf keeps before < tau, gpt2-chinese before <= tau. */
fn within(before: f32, tau: f32) -> bool {
  return select(before <= tau, before < tau, p.hf == 1u);
}`;

/** Invocations per run in the two-level scan: WG = RUN * RUN. */
const RUN = Math.sqrt(WG);

/**
 * Workgroup-wide scan of one value per invocation, in invocation order; returns (exclusive, inclusive, total).
 * Two levels and three barriers (on a CPU driver barriers, not additions, are the cost): RUN invocations each
 * scan a run of RUN values sequentially, one invocation scans the RUN run totals, everyone adds its run's offset.
 * Invocation i's exclusive value is bit for bit invocation i-1's inclusive one (the same f32 additions), so
 * "excl <= tau < incl" holds for at most one invocation. Contains barriers: call from uniform control flow.
 */
function scanWGSL(type: 'u32' | 'f32'): string {
  const zero = type === 'u32' ? '0u' : '0.0';
  return /* wgsl */ `
var<workgroup> scan_${type}_buf: array<${type}, ${WG}>;
var<workgroup> scan_${type}_runs: array<${type}, ${RUN}>;
var<workgroup> scan_${type}_total: ${type};
fn scan_${type}(v: ${type}, lid: u32) -> vec3<${type}> {
  scan_${type}_buf[lid] = v;
  workgroupBarrier();
  if (lid < ${RUN}u) {
    var acc = ${zero};
    for (var j = lid * ${RUN}u; j < (lid + 1u) * ${RUN}u * p.one; j++) {
      acc += scan_${type}_buf[j];
      scan_${type}_buf[j] = acc;
    }
    scan_${type}_runs[lid] = acc;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var acc = ${zero};
    for (var r = 0u; r < ${RUN}u * p.one; r++) {
      let t = scan_${type}_runs[r];
      scan_${type}_runs[r] = acc;
      acc += t;
    }
    scan_${type}_total = acc;
  }
  workgroupBarrier();
  let offset = scan_${type}_runs[lid / ${RUN}u];
  var excl = offset;
  if (lid % ${RUN}u != 0u) { excl = scan_${type}_buf[lid - 1u] + offset; }
  let r = vec3<${type}>(excl, scan_${type}_buf[lid] + offset, scan_${type}_total);
  workgroupBarrier();
  return r;
}`;
}

/**
 * sample_prepare: processed scores, the row's top token, and the top-k threshold by radix select.
 * Greedy rows are finished here (ids = top id). Bindings: logits [B, V], history [B, L], ban [n_ban], z [B, V],
 * state [B], ids [B].
 */
export const SAMPLE_PREPARE_WGSL = /* wgsl */ `
${COMMON}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;           // [B, V]
@group(0) @binding(2) var<storage, read> history: array<i32>;          // [B, L], -1 = empty
@group(0) @binding(3) var<storage, read> ban: array<i32>;              // [n_ban], each in [0, V)
@group(0) @binding(4) var<storage, read_write> z: array<f32>;          // [B, V]
@group(0) @binding(5) var<storage, read_write> state: array<RowState>; // [B]
@group(0) @binding(6) var<storage, read_write> ids: array<i32>;        // [B]
${scanWGSL('u32')}

var<workgroup> arg_k: array<u32, ${WG}>;
var<workgroup> arg_i: array<u32, ${WG}>;
var<workgroup> hist: array<atomic<u32>, ${WG}>;
var<workgroup> sel_bin: u32;
var<workgroup> sel_above: u32;
var<workgroup> sel_count: u32;

fn penalize(x: f32) -> f32 {
  if (p.hf == 1u && x < 0.0) { return x * p.penalty; }
  return x / p.penalty;
}

/** z = processed scores. storageBarrier orders the three writes: a history id overwrites x / t, a ban wins over both. */
fn process_scores(row: u32, base: u32, lid: u32) {
  for (var i = lid; i < p.V; i += ${WG}u) { z[base + i] = logits[base + i] / p.temperature; }
  storageBarrier();
  for (var j = lid; j < p.L; j += ${WG}u) {
    let id = history[row * p.L + j];
    if (id >= 0 && u32(id) < p.V) { z[base + u32(id)] = penalize(logits[base + u32(id)]) / p.temperature; }
  }
  storageBarrier();
  for (var j = lid; j < p.n_ban; j += ${WG}u) { z[base + u32(ban[j])] = NEG_BIG; }
  storageBarrier();
}

/** (key, id) of the largest score, lowest id among ties. */
fn row_argmax(base: u32, lid: u32) -> vec2<u32> {
  var bk = 0u;
  var bi = NONE;
  // Each invocation visits increasing ids, so a strict > keeps its lowest id of a tie.
  for (var i = lid; i < p.V; i += ${WG}u) {
    let k = key_of(z[base + i]);
    if (k > bk) { bk = k; bi = i; }
  }
  arg_k[lid] = bk;
  arg_i[lid] = bi;
  workgroupBarrier();
  for (var s = ${WG / 2}u * p.one; s > 0u; s >>= 1u) {
    if (lid < s && ahead(arg_k[lid + s], arg_i[lid + s], arg_k[lid], arg_i[lid])) {
      arg_k[lid] = arg_k[lid + s];
      arg_i[lid] = arg_i[lid + s];
    }
    workgroupBarrier();
  }
  let top = vec2<u32>(arg_k[0], arg_i[0]);
  workgroupBarrier();
  return top;
}

/**
 * (key of the k-th largest score, K = #{key >= it}), one 8-bit digit per pass from the top: histogram the digit
 * over the keys that match the digits fixed so far, then take the bin holding rank "need" counted from the top.
 */
fn radix_select(base: u32, lid: u32) -> vec2<u32> {
  var prefix = 0u;
  var above = 0u;
  for (var digit = 0u; digit < 4u * p.one; digit++) {
    let shift = 24u - 8u * digit;
    let fixed = ~(0xffffffffu >> (8u * digit));
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    for (var i = lid; i < p.V; i += ${WG}u) {
      let k = key_of(z[base + i]);
      if ((k & fixed) == prefix) { atomicAdd(&hist[(k >> shift) & 0xffu], 1u); }
    }
    workgroupBarrier();
    // Invocation lid looks at bin 255 - lid, so the exclusive scan counts the matching keys in higher bins.
    let bin = ${WG - 1}u - lid;
    let c = atomicLoad(&hist[bin]);
    let s = scan_u32(c, lid);
    let need = p.top_k - above;
    if (s.x < need && need <= s.y) {
      sel_bin = bin;
      sel_above = s.x;
      sel_count = c;
    }
    workgroupBarrier();
    prefix |= sel_bin << shift;
    above += sel_above;
  }
  return vec2<u32>(prefix, above + sel_count);
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) { return; }   // uniform across the workgroup, so the barriers below stay uniform
  let base = row * p.V;
  process_scores(row, base, lid);
  let top = row_argmax(base, lid);
  // (threshold, K); without top-k, threshold 0 keeps all V. The cut starts as (threshold, all).
  var topk = vec2<u32>(0u, p.V);
  if (p.top_k > 0u) { topk = radix_select(base, lid); }
  if (lid == 0u) {
    if (p.greedy == 1u) { ids[row] = i32(top.y); }
    state[row] = RowState(top.x, top.y, topk.x, NONE, topk.y);
  }
}`;

/**
 * sample_top_p: replaces the row's cut (lo = top-k threshold, m = all) by the top-p cut within it.
 * Bindings: z [B, V], state [B].
 */
export const SAMPLE_TOP_P_WGSL = /* wgsl */ `
${COMMON}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;                // [B, V]
@group(0) @binding(2) var<storage, read_write> state: array<RowState>; // [B]
${scanWGSL('f32')}

const CAP: u32 = ${SORT_CAPACITY}u;
var<workgroup> row_state: RowState;
var<workgroup> n_gathered: atomic<u32>;
var<workgroup> cut_pos: atomic<u32>;
var<workgroup> skey: array<u32, CAP>;
var<workgroup> sid: array<u32, CAP>;

/** Sorts skey/sid[0, n) (n a power of two) into (key desc, id asc) order: bitonic merges of doubling size. */
fn bitonic_sort(n: u32, lid: u32) {
  for (var size = 2u; size <= n; size <<= 1u) {
    for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
      for (var q = lid; q < n / 2u; q += ${WG}u) {
        let a = 2u * q - (q & (stride - 1u));
        let b = a + stride;
        // Blocks of "size" alternate direction, so the next merge sees a bitonic sequence; the last is forward.
        let forward = (a & size) == 0u;
        let b_first = ahead(skey[b], sid[b], skey[a], sid[a]);
        let a_first = ahead(skey[a], sid[a], skey[b], sid[b]);
        if (select(a_first, b_first, forward)) {
          let k = skey[a];
          let i = sid[a];
          skey[a] = skey[b];
          sid[a] = sid[b];
          skey[b] = k;
          sid[b] = i;
        }
      }
      workgroupBarrier();
    }
  }
}

/** Top-p cut (lo, m) over the n = K <= CAP top-k survivors (key >= threshold), sorted in workgroup memory. */
fn top_p_sorted(base: u32, threshold: u32, n: u32, vmax: f32, lid: u32) -> vec2<u32> {
  if (lid == 0u) {
    atomicStore(&n_gathered, 0u);
    atomicStore(&cut_pos, n);
  }
  workgroupBarrier();
  for (var i = lid; i < p.V; i += ${WG}u) {
    let k = key_of(z[base + i]);
    if (k >= threshold) {
      let slot = atomicAdd(&n_gathered, 1u);
      skey[slot] = k;
      sid[slot] = i;
    }
  }
  let n2 = max(2u, 1u << (32u - countLeadingZeros(n - 1u)));
  // Padding: key 0 is below every real value, so it sorts after the survivors.
  for (var j = n + lid; j < n2; j += ${WG}u) {
    skey[j] = 0u;
    sid[j] = NONE;
  }
  workgroupBarrier();
  bitonic_sort(n2, lid);
  // Invocation lid owns sorted positions [first, last): its masses, then the mass before each of them.
  let per = max(1u, n2 / ${WG}u);
  let first = lid * per;
  let last = min(first + per, n);
  var own = 0.0;
  for (var j = first; j < last; j++) { own += exp(value_of(skey[j]) - vmax); }
  let s = scan_f32(own, lid);
  let tau = p.top_p * s.z;
  var before = s.x;
  for (var j = first; j < last; j++) {
    if (!within(before, tau)) {
      atomicMin(&cut_pos, j);
      break;
    }
    before += exp(value_of(skey[j]) - vmax);
  }
  workgroupBarrier();
  // before_r grows with r, so positions [0, n_keep) are kept; position 0 (before = 0 < tau) always is.
  let n_keep = atomicLoad(&cut_pos);
  let lo = skey[n_keep - 1u];
  workgroupBarrier();
  // The kept part of lo's tie group runs from its first sorted position to n_keep - 1.
  if (lid == 0u) { atomicStore(&cut_pos, n_keep - 1u); }
  workgroupBarrier();
  for (var j = first; j < min(last, n_keep); j++) {
    if (skey[j] == lo) {
      atomicMin(&cut_pos, j);
      break;
    }
  }
  workgroupBarrier();
  return vec2<u32>(lo, n_keep - atomicLoad(&cut_pos));
}

/** Mass sum e_i of the top-k survivors (key >= threshold) with x < key <= hi. */
fn mass_between(base: u32, threshold: u32, x: u32, hi: u32, vmax: f32, lid: u32) -> f32 {
  var s = 0.0;
  for (var i = lid; i < p.V; i += ${WG}u) {
    let v = z[base + i];
    let k = key_of(v);
    if (k >= threshold && k > x && k <= hi) { s += exp(v - vmax); }
  }
  return scan_f32(s, lid).z;
}

/**
 * Top-p cut (lo, m) by binary lifting on A(x) = mass of survivors with key > x, which falls as x grows: find the
 * largest x whose A(x) already fails the rule (A(0) = Z fails it for p < 1); lo = x + 1 is then the smallest key
 * whose first token passes, and it carries mass (A drops there). Lifting keeps hi = x + 2 bit, the smallest key
 * known to pass, and A(hi), so each pass sums only (y, hi] and adds A(hi): A(y) = A(hi) + mass(y, hi]. Both are
 * fixed-order f32 sums, so A stays monotone, which lifting needs; at the end hi = x + 1 = lo.
 * The tie group at lo keeps members j = 0, 1, ... while A(lo) + j e_lo passes the rule:
 *   hf: A + j e < tau  =>  m = ceil((tau - A) / e);   gpt2-chinese: A + j e <= tau  =>  m = floor((tau - A) / e) + 1.
 */
fn top_p_bisect(base: u32, threshold: u32, vmax: f32, lid: u32) -> vec2<u32> {
  let tau = p.top_p * mass_between(base, threshold, max(threshold, 1u) - 1u, NONE, vmax, lid);
  var x = 0u;
  // NONE stands for 2^32: no real value has that key (or NONE's, a NaN's), and A(NONE) = 0 passes.
  var hi = NONE;
  var a_hi = 0.0;
  for (var bit = 0x80000000u * p.one; bit != 0u; bit >>= 1u) {
    let y = x | bit;
    let a = a_hi + mass_between(base, threshold, y, hi, vmax, lid);
    if (within(a, tau)) {
      hi = y;
      a_hi = a;
    } else {
      x = y;
    }
  }
  let r = (tau - a_hi) / exp(value_of(hi) - vmax);
  let m = select(floor(r) + 1.0, ceil(r), p.hf == 1u);
  return vec2<u32>(hi, u32(min(m, f32(p.V))));
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.V;
  if (lid == 0u) { row_state = state[row]; }
  // The path holds barriers, so its condition must be uniform: read the state through workgroupUniformLoad.
  let st = workgroupUniformLoad(&row_state);
  let vmax = value_of(st.top_key);
  var cut: vec2<u32>;
  if (p.top_k > 0u && st.kept <= CAP) {
    cut = top_p_sorted(base, st.lo, st.kept, vmax, lid);
  } else {
    cut = top_p_bisect(base, st.lo, vmax, lid);
  }
  if (lid == 0u) {
    state[row].lo = cut.x;
    state[row].m = cut.y;
  }
}`;

/**
 * sample_draw: the seeded draw over the kept tokens in id order. Invocation lid owns the contiguous ids
 * [first, end), so invocation order is id order: one scan gives the kept mass before each chunk, and the one
 * chunk holding tau = u * total walks to the crossing token. Bindings: z [B, V], state [B], ids [B].
 */
export const SAMPLE_DRAW_WGSL = /* wgsl */ `
${COMMON}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;                // [B, V]
@group(0) @binding(2) var<storage, read> state: array<RowState>;       // [B]
@group(0) @binding(3) var<storage, read_write> ids: array<i32>;        // [B]
${scanWGSL('u32')}
${scanWGSL('f32')}

var<workgroup> winner: atomic<u32>;

${MIX32_WGSL}
/** u = top 24 bits of hash(seed, step, row) / 2^24, exact in f32, in [0, 1). */
fn draw_u(row: u32) -> f32 {
  return f32(mix32(mix32(mix32(p.seed) ^ p.step) ^ row) >> 8u) / 16777216.0;
}

fn is_kept(k: u32, lo: u32, m: u32, rank: u32) -> bool {
  return k > lo || (k == lo && rank < m);
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.V;
  let st = state[row];
  let vmax = value_of(st.top_key);
  let chunk = (p.V + ${WG - 1}u) / ${WG}u;
  let first = min(lid * chunk, p.V);
  let end = min(first + chunk, p.V);
  // rank of this chunk's first tie (key == lo), in id order; only top-p keeps part of a tie group.
  var rank0 = 0u;
  if (p.p_on == 1u) {
    var ties = 0u;
    for (var i = first; i < end; i++) { if (key_of(z[base + i]) == st.lo) { ties++; } }
    rank0 = scan_u32(ties, lid).x;
  }
  var own = 0.0;
  var rank = rank0;
  for (var i = first; i < end; i++) {
    let v = z[base + i];
    let k = key_of(v);
    if (is_kept(k, st.lo, st.m, rank)) { own += exp(v - vmax); }
    if (k == st.lo) { rank++; }
  }
  let s = scan_f32(own, lid);
  let tau = draw_u(row) * s.z;
  if (lid == 0u) { atomicStore(&winner, NONE); }
  workgroupBarrier();
  if (s.x <= tau && tau < s.y) {
    var cum = s.x;
    var pick = NONE;
    rank = rank0;
    for (var i = first; i < end; i++) {
      let v = z[base + i];
      let k = key_of(v);
      let e = exp(v - vmax);
      if (is_kept(k, st.lo, st.m, rank) && e > 0.0) {
        cum += e;
        pick = i;
        if (cum > tau) { break; }
      }
      if (k == st.lo) { rank++; }
    }
    // Ran off the end (this sequential sum came out below the scan's): the chunk's last kept token.
    atomicMin(&winner, pick);
  }
  workgroupBarrier();
  if (lid == 0u) {
    let w = atomicLoad(&winner);
    // No chunk holds tau only when u * total rounded up to total (u within 2^-24 of 1): take the top token.
    ids[row] = i32(select(w, st.top_id, w == NONE));
  }
}`;
