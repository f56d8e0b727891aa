// WGSL for optimizer updates: fused AdamW, and the two-level sum of squares + scale used by grad-norm clipping.
//
// AdamW (torch.optim.AdamW, decoupled weight decay), one invocation per parameter element, in place:
//   p <- p - lr*wd*p
//   m <- m + (1-b1) (g - m)          v <- b2 v + (1-b2) g^2        (torch: exp_avg.lerp_(g, 1-b1))
//   p <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - b1^t, bc2 = 1 - b2^t
// written exactly in torch's order of operations so f32 results track torch's. As in torch, the scalars 1 - lr*wd,
// 1 - b1 and 1 - b2 are formed in float64 on the CPU and rounded to f32 once (1 - f32(0.999) in f32 would be
// 0.0010000467, 4.7e-5 off torch's 0.001).
// Reference: test/reference/optim.ts (float64).

import { rowCommonWGSL } from './rows.js';

const WG = 256;

export const ADAMW_WGSL = /* wgsl */ `
struct Params { n: u32, beta2: f32, one_minus_beta1: f32, one_minus_beta2: f32, eps: f32, decay: f32, step_size: f32, bc2_sqrt: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;      // [n]
@group(0) @binding(2) var<storage, read_write> param: array<f32>; // [n]
@group(0) @binding(3) var<storage, read_write> exp_avg: array<f32>;    // m [n]
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<f32>; // v [n]

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * ${WG}u) + gid.x;
  if (i >= p.n) { return; }
  let g = grad[i];
  let w = param[i] * p.decay;
  let m = exp_avg[i] + p.one_minus_beta1 * (g - exp_avg[i]);
  let v = p.beta2 * exp_avg_sq[i] + p.one_minus_beta2 * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  param[i] = w - p.step_size * m / (sqrt(v) / p.bc2_sqrt + p.eps);
}`;

/**
 * partial[offset + wid] = sum of x[k]^2 over the k this workgroup covers (a 256-wide tree per workgroup).
 * Each gradient tensor writes its own slice of `partial`, so one final pass reduces all of them in a fixed order.
 */
export const SUMSQ_PARTIAL_WGSL = /* wgsl */ `
struct Params { n: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [n]
@group(0) @binding(2) var<storage, read_write> partial: array<f32>; // [total workgroups over all tensors]
${rowCommonWGSL(WG)}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = row_id(wid, nwg);
  // Each workgroup folds ${WG * 16} consecutive elements: 16 per invocation, strided for coalescing.
  let base = group * ${WG * 16}u;
  var s = 0.0;
  for (var k = 0u; k < 16u; k++) {
    let i = base + k * ${WG}u + lid;
    if (i < p.n) { s += x[i] * x[i]; }
  }
  let total = row_sum(s, lid);
  if (lid == 0u) { partial[p.offset + group] = total; }
}`;

export const SUMSQ_CHUNK = WG * 16;

/** norm[0] = sqrt(sum(partial)); one workgroup, fixed order, so the norm is bit-reproducible. */
export const NORM_FINAL_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;   // [n]
@group(0) @binding(2) var<storage, read_write> norm: array<f32>; // [1]
${rowCommonWGSL(WG)}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += ${WG}u) { s += partial[i]; }
  let total = row_sum(s, lid);
  if (lid == 0u) { norm[0] = sqrt(total); }
}`;

/** g *= min(1, max_norm / (norm + 1e-6)), reading the norm from the GPU (torch.nn.utils.clip_grad_norm_). */
export const CLIP_SCALE_WGSL = /* wgsl */ `
struct Params { n: u32, max_norm: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> norm: array<f32>;       // [1]
@group(0) @binding(2) var<storage, read_write> grad: array<f32>; // [n]

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * ${WG}u) + gid.x;
  if (i >= p.n) { return; }
  let coef = min(1.0, p.max_norm / (norm[0] + 1e-6));
  grad[i] = grad[i] * coef;
}`;
