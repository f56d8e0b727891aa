// WGSL for softmax / log-softmax over the last axis (optional additive mask) and their backward, plus the row-reduction pieces every row kernel shares.
//
// x is viewed as [N, C]: N rows (all leading axes flattened), C the normalised axis (for attention scores
// [B,NH,T,T]: N = B*NH*T, C = T). One workgroup per row, WG invocations (rowWorkgroupSize(C)); each
// invocation folds the strided slice c = lid, lid + WG, ... of its row, then a tree in workgroup memory
// combines the WG partial results. Grid: the N rows as 2-D workgroups (x up to 65535, then y), so
// row = wid.y * nwg.x + wid.x.
// Reference: test/reference/rows.ts (softmax, logSoftmax in float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

/** Invocations per row workgroup: the smallest power of two >= C in [32, 256], so short rows (T = 7) do not idle 249 lanes. */
export function rowWorkgroupSize(C: number): number {
  let wg = 32;
  while (wg < C && wg < 256) wg *= 2;
  return wg;
}

/**
 * Shared WGSL for row kernels:
 *   NEG_BIG          -FLT_MAX, the "minus infinity" we can compute with (WGSL may assume no infinities exist);
 *   row_id()         the row this workgroup owns;
 *   row_sum(v, lid)  the workgroup-wide sum of v (f32 or vec2<f32>), returned to every invocation.
 * row_sum contains barriers: call it from uniform control flow (every invocation of the workgroup).
 */
export function rowCommonWGSL(wg: number, sumType: 'f32' | 'vec2<f32>' = 'f32'): string {
  return /* wgsl */ `
const NEG_BIG: f32 = -3.4028234663852886e38;
fn row_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }

var<workgroup> sum_tree: array<${sumType}, ${wg}>;
fn row_sum(v: ${sumType}, lid: u32) -> ${sumType} {
  sum_tree[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sum_tree[lid] += sum_tree[lid + s]; }
    workgroupBarrier();
  }
  let total = sum_tree[0];
  // Nobody may overwrite sum_tree[0] (a second row_sum) before everyone has read it.
  workgroupBarrier();
  return total;
}`;
}

/**
 * Online softmax statistics: a pair ms = (m, s) with m the running max and s = sum_i exp(v_i - m).
 *   online_add(ms, v)   folds in one value with a single exp: e = exp(-|v - m|) is exp(v - m) when v <= m,
 *                       and exp(m - v), the factor that rescales the old sum to the new max, when v > m.
 *   row_max_sum(ms, lid) merges the pairs of the workgroup: m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m).
 * Start from (NEG_BIG, 0). Because nothing is ever below NEG_BIG, every exponent is <= 0 (no overflow), and a
 * row whose values are all NEG_BIG (fully masked) ends with m = NEG_BIG, s = C: uniform, never 0/0.
 */
export function onlineSoftmaxWGSL(wg: number): string {
  return /* wgsl */ `
fn online_add(ms: vec2<f32>, v: f32) -> vec2<f32> {
  let e = exp(-abs(v - ms.x));
  return select(vec2<f32>(ms.x, ms.y + e), vec2<f32>(v, ms.y * e + 1.0), v > ms.x);
}
fn online_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}
var<workgroup> ms_tree: array<vec2<f32>, ${wg}>;
fn row_max_sum(ms: vec2<f32>, lid: u32) -> vec2<f32> {
  ms_tree[lid] = ms;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { ms_tree[lid] = online_merge(ms_tree[lid], ms_tree[lid + s]); }
    workgroupBarrier();
  }
  return ms_tree[0];
}`;
}

/**
 * Forward: y = softmax(x + mask) = exp(v - m) / s, or log-softmax y = v - m - log s, with v = x + mask.
 * Two passes over the row: online (m, s), then the write.
 *   masked: mask is read through broadcast strides: element (row, c) is mask[mask_row_base(row) + c * mask_col],
 *           where mask_row_base splits the row index over x's leading dims (lead_shape, innermost last) and
 *           dots it with the mask's strides along them (0 where the mask is broadcast).
 * Bindings: x [N, C], (masked) mask [any shape broadcastable to x], y [N, C].
 */
export function softmaxForwardWGSL(wg: number, log: boolean, masked: boolean): string {
  return wgsl`
#if ${masked}
struct Params { rows: u32, C: u32, lead_rank: u32, mask_col: u32, lead_shape: array<vec4<u32>, 2>, mask_strides: array<vec4<u32>, 2> }
#else
struct Params { rows: u32, C: u32 }
#endif
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [N, C]
#if ${masked}
@group(0) @binding(2) var<storage, read> mask: array<f32>;         // broadcast to [N, C]
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;      // [N, C]
${rowCommonWGSL(wg)}
${onlineSoftmaxWGSL(wg)}

#if ${masked}
fn mask_row_base(row: u32) -> u32 {
  var rest = row;
  var base = 0u;
  for (var d = i32(p.lead_rank) - 1; d >= 0; d--) {
    let size = p.lead_shape[d / 4][d % 4];
    base += (rest % size) * p.mask_strides[d / 4][d % 4];
    rest /= size;
  }
  return base;
}
#endif

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg);
  if (row >= p.rows) { return; }   // uniform across the workgroup, so the barriers below stay uniform
  let base = row * p.C;
#if ${masked}
  let mbase = mask_row_base(row);
#endif
  var ms = vec2<f32>(NEG_BIG, 0.0);
  for (var c = lid; c < p.C; c += ${wg}u) {
#if ${masked}
    // max(): finfo.min + finfo.min overflows to -inf; clamping keeps every score finite.
    let v = max(x[base + c] + mask[mbase + c * p.mask_col], NEG_BIG);
#else
    let v = x[base + c];
#endif
    ms = online_add(ms, v);
  }
  ms = row_max_sum(ms, lid);
#if ${log}
  let shift = ms.x + log(ms.y);
#endif
  for (var c = lid; c < p.C; c += ${wg}u) {
#if ${masked}
    let v = max(x[base + c] + mask[mbase + c * p.mask_col], NEG_BIG);
#else
    let v = x[base + c];
#endif
#if ${log}
    y[base + c] = v - shift;
#else
    y[base + c] = exp(v - ms.x) / ms.y;
#endif
  }
}`;
}

/**
 * Backward, one row per workgroup, from y (the forward output) and g = dL/dy:
 *   softmax:      dx = y * (g - sum_j g_j y_j)
 *   log-softmax:  dx = g - exp(y) * sum_j g_j
 * Bindings: y [N, C], g [N, C], dx [N, C].
 */
export function softmaxBackwardWGSL(wg: number, log: boolean): string {
  return wgsl`
struct Params { rows: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;            // [N, C]
@group(0) @binding(2) var<storage, read> g: array<f32>;            // [N, C]
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;     // [N, C]
${rowCommonWGSL(wg)}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.C;
  var acc = 0.0;
  for (var c = lid; c < p.C; c += ${wg}u) {
#if ${log}
    acc += g[base + c];
#else
    acc += g[base + c] * y[base + c];
#endif
  }
  let total = row_sum(acc, lid);
  for (var c = lid; c < p.C; c += ${wg}u) {
#if ${log}
    dx[base + c] = g[base + c] - exp(y[base + c]) * total;
#else
    dx[base + c] = y[base + c] * (g[base + c] - total);
#endif
  }
}`;
}
