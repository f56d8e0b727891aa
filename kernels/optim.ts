// WGSL for optimizer updates: fused AdamW, and the two-level sum of squares + scale used by grad-norm clipping.
//
// AdamW (torch.optim.AdamW, decoupled weight decay), one invocation per parameter element, in place:
//   p <- p - lr*wd*p
//   m <- m + (1-b1) (g - m)          v <- b2 v + (1-b2) g^2        (torch: exp_avg.lerp_(g, 1-b1))
//   p <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - b1^t, bc2 = 1 - b2^t
// written exactly in torch's order of operations so f32 results track torch's. As in torch, the scalars 1 - lr*wd,
// 1 - b1 and 1 - b2 are formed in float64 on the CPU and rounded to f32 once (1 - f32(0.999) in f32 would be
// 0.0010000467, 4.7e-5 off torch's 0.001).
//
// Guarded AdamW (under dynamic loss scaling, optim/grad_scaler.ts): the update is skipped on the GPU when the step's
// gradients held an inf or NaN (found[0] != 0), so the CPU cannot know the step count t; it lives on the GPU
// (steps[0], counted by STEP_COUNT_WGSL) and the bias corrections are formed there in f32 from log2(b1), log2(b2)
// (float64 on the CPU, rounded once): bc = 1 - exp2(t·log2 b). torch's AdamW(capturable=True) does the same.
// Reference: test/reference/optim.ts (float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { rowCommonWGSL } from './rows.js';

const WG = 256;

export function adamwWGSL(guarded: boolean): string {
  return wgsl`
#if ${guarded}
struct Params { n: u32, beta2: f32, one_minus_beta1: f32, one_minus_beta2: f32, eps: f32, decay: f32, lr: f32, log2_beta1: f32, log2_beta2: f32 }
#else
struct Params { n: u32, beta2: f32, one_minus_beta1: f32, one_minus_beta2: f32, eps: f32, decay: f32, step_size: f32, bc2_sqrt: f32 }
#endif
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;      // [n]
@group(0) @binding(2) var<storage, read_write> param: array<f32>; // [n]
@group(0) @binding(3) var<storage, read_write> exp_avg: array<f32>;    // m [n]
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<f32>; // v [n]
#if ${guarded}
@group(0) @binding(5) var<storage, read> found: array<u32>;  // [1]: nonzero skips the step
@group(0) @binding(6) var<storage, read> steps: array<f32>;  // [1]: t, steps taken including this one
#endif

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * ${WG}u) + gid.x;
  if (i >= p.n) { return; }
#if ${guarded}
  if (found[0] != 0u) { return; }
  let t = steps[0];
  let step_size = p.lr / (1.0 - exp2(t * p.log2_beta1));
  let bc2_sqrt = sqrt(1.0 - exp2(t * p.log2_beta2));
#else
  let step_size = p.step_size;
  let bc2_sqrt = p.bc2_sqrt;
#endif
  let g = grad[i];
  let w = param[i] * p.decay;
  let m = exp_avg[i] + p.one_minus_beta1 * (g - exp_avg[i]);
  let v = p.beta2 * exp_avg_sq[i] + p.one_minus_beta2 * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  param[i] = w - step_size * m / (sqrt(v) / bc2_sqrt + p.eps);
}`;
}

/** steps[0] += 1 unless found[0] (one invocation, before a guarded AdamW update). */
export const STEP_COUNT_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> found: array<u32>;       // [1]
@group(0) @binding(1) var<storage, read_write> steps: array<f32>; // [1]

@compute @workgroup_size(1)
fn main() {
  if (found[0] == 0u) { steps[0] = steps[0] + 1.0; }
}`;

/**
 * Dynamic loss scaling (torch.amp.GradScaler): scale [1], growth_tracker [1] (a count, exact in f32) and found [1]:
 *   unscale: g <- g · (1 / scale), found <- 1 if any result is inf or NaN (an exponent of all ones: WGSL has no
 *            isinf, and a compiler may assume no NaN in float comparisons, so the bits are tested);
 *   update:  after an inf/NaN, scale <- scale · backoff and the tracker restarts; otherwise the tracker counts
 *            clean steps, and at growth_interval of them scale <- scale · growth (kept only if finite) and the
 *            tracker restarts (torch's _amp_update_scale_).
 */
export const UNSCALE_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scale: array<f32>;              // [1]
@group(0) @binding(2) var<storage, read_write> found: array<atomic<u32>>; // [1]
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;        // [n]

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * ${WG}u) + gid.x;
  if (i >= p.n) { return; }
  let g = grad[i] * (1.0 / scale[0]);
  grad[i] = g;
  if ((bitcast<u32>(g) & 0x7f800000u) == 0x7f800000u) { atomicOr(&found[0], 1u); }
}`;

export const SCALE_UPDATE_WGSL = /* wgsl */ `
struct Params { growth: f32, backoff: f32, interval: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;   // [1]
@group(0) @binding(2) var<storage, read_write> tracker: array<f32>; // [1]
@group(0) @binding(3) var<storage, read> found: array<u32>;         // [1]

@compute @workgroup_size(1)
fn main() {
  if (found[0] != 0u) {
    scale[0] = scale[0] * p.backoff;
    tracker[0] = 0.0;
    return;
  }
  let clean = tracker[0] + 1.0;
  if (clean < p.interval) {
    tracker[0] = clean;
    return;
  }
  let grown = scale[0] * p.growth;
  if ((bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u) { scale[0] = grown; }
  tracker[0] = 0.0;
}`;

/** Elements one workgroup of the sum of squares folds: the fixed blocks that make the norm reproducible. */
export const SUMSQ_CHUNK = 4096;

/**
 * partial[offset + wid] = sum of x[k]^2 over the SUMSQ_CHUNK elements k this workgroup covers: each of the `wg`
 * invocations folds SUMSQ_CHUNK / wg of them, strided by wg for coalescing, then a wg-wide tree adds them up.
 * Each gradient tensor writes its own slice of `partial`, so one final pass reduces all of them in a fixed order.
 */
export function sumsqPartialWGSL(wg: number): string {
  return /* wgsl */ `
struct Params { n: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [n]
@group(0) @binding(2) var<storage, read_write> partial: array<f32>; // [total workgroups over all tensors]
${rowCommonWGSL(wg)}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = row_id(wid, nwg);
  let base = group * ${SUMSQ_CHUNK}u;
  var s = 0.0;
  for (var k = 0u; k < ${SUMSQ_CHUNK / wg}u; k++) {
    let i = base + k * ${wg}u + lid;
    if (i < p.n) { s += x[i] * x[i]; }
  }
  let total = row_sum(s, lid);
  if (lid == 0u) { partial[p.offset + group] = total; }
}`;
}

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
