// WGSL for softmax / log-softmax over the last axis (optional additive mask) and their backward.
//
// x is viewed as [N, C]: N rows (all leading axes flattened), C the normalised axis (for attention scores
// [B,NH,T,T]: N = B*NH*T, C = T). One workgroup per row, WG invocations (rowWorkgroupSize(C)); each
// invocation folds the strided slice c = lid, lid + WG, ... of its row, then a tree in workgroup memory
// combines the WG partial results. Grid: the N rows as 2-D workgroups (x up to 65535, then y), so
// row = wid.y * nwg.x + wid.x.
// Reference: test/reference/rows.ts (softmax, logSoftmax in float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { onlineSoftmaxWGSL, rowCommonWGSL } from './rows.js';

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

/** v = x + mask for column c of a row (mbase: mask_row_base(row); unused without a mask). */
fn score(base: u32, mbase: u32, c: u32) -> f32 {
#if ${masked}
  // max(): finfo.min + finfo.min overflows to -inf; clamping keeps every score finite.
  return max(x[base + c] + mask[mbase + c * p.mask_col], NEG_BIG);
#else
  return x[base + c];
#endif
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg);
  if (row >= p.rows) { return; }   // uniform across the workgroup, so the barriers below stay uniform
  let base = row * p.C;
#if ${masked}
  let mbase = mask_row_base(row);
#else
  let mbase = 0u;
#endif
  var ms = vec2<f32>(NEG_BIG, 0.0);
  for (var c = lid; c < p.C; c += ${wg}u) { ms = online_add(ms, score(base, mbase, c)); }
  ms = row_max_sum(ms, lid);
#if ${log}
  let shift = ms.x + log(ms.y);
#endif
  for (var c = lid; c < p.C; c += ${wg}u) {
    let v = score(base, mbase, c);
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
