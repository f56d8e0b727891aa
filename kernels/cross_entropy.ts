// WGSL for fused cross-entropy: per-row log-sum-exp and loss in one pass over the logits, the mean/sum on the GPU, and the backward.
//
// logits [N, V], targets [N] i32. A row whose target equals ignore_index contributes loss 0, is not counted
// in the mean, and gets a zero gradient. A target outside [0, V) (and not ignore_index) is never used as an
// index: its loss and its gradient row are NaN, so the bad label shows up in the loss instead of a GPU fault.
// Logits larger than one storage binding go in blocks of rows (ops/loss.ts); each block binds windows of
// the tensors, whose first element is `lbase` (logits, dlogits) or `rbase` (per-row arrays) of the binding.
// Reference: test/reference/rows.ts (crossEntropy in float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { onlineSoftmaxWGSL, rowCommonWGSL } from './rows.js';

export type Reduction = 'mean' | 'sum' | 'none';

/**
 * A quiet NaN, made at run time from bits passed in the uniform (NAN_BITS): WGSL has no NaN literal, Tint
 * rejects a NaN constant (bitcast of constant bits is folded), and 0.0 / 0.0 may be assumed away.
 */
const NAN = /* wgsl */ `bitcast<f32>(p.nan_bits)`;
export const NAN_BITS = 0x7fc00000;

/**
 * Forward, one workgroup per row (see kernels/softmax.ts for the row layout and grid):
 *   lse_i  = log sum_j exp(logits_ij)  = m + log s   from the online (max, sum) pair, one read of the row
 *   loss_i = lse_i - logits_i,t        (t = targets_i), 0 for ignored rows
 * Bindings: logits [N, V], targets [N], lse [N] (saved for backward), loss [N] (a block's rows of each).
 */
export function crossEntropyRowsWGSL(wg: number): string {
  return wgsl`
struct Params { rows: u32, V: u32, ignore_index: i32, nan_bits: u32, lbase: u32, rbase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;       // [N, V]
@group(0) @binding(2) var<storage, read> targets: array<i32>;      // [N]
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;    // [N]
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;   // [N]
${rowCommonWGSL(wg)}
${onlineSoftmaxWGSL(wg)}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let block_row = row_id(wid, nwg);
  if (block_row >= p.rows) { return; }
  let base = p.lbase + block_row * p.V;
  let row = p.rbase + block_row;
  var ms = vec2<f32>(NEG_BIG, 0.0);
  for (var c = lid; c < p.V; c += ${wg}u) { ms = online_add(ms, logits[base + c]); }
  ms = row_max_sum(ms, lid);
  if (lid == 0u) {
    let l = ms.x + log(ms.y);
    lse[row] = l;
    let t = targets[row];
    if (t == p.ignore_index) {
      loss[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.V) {
      loss[row] = ${NAN};
    } else {
      loss[row] = l - logits[base + u32(t)];
    }
  }
}`;
}

/** Invocations of the single workgroup that reduces the per-row losses. */
export const REDUCE_WG = 256;

/**
 * Reduction of the per-row losses by one 256-wide workgroup, in a fixed order (deterministic):
 *   sum:  out = sum_i loss_i
 *   mean: out = sum_i loss_i / count, count = #{i : targets_i != ignore_index}; count is also written out
 *         (backward divides by it). No non-ignored rows: out = NaN, as in PyTorch.
 * Bindings: loss [N], targets [N], out [1], (mean) count [1] (f32, exact up to 2^24 rows).
 */
export function crossEntropyReduceWGSL(mean: boolean): string {
  return wgsl`
struct Params { rows: u32, ignore_index: i32, nan_bits: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> loss: array<f32>;         // [N]
@group(0) @binding(2) var<storage, read> targets: array<i32>;      // [N]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [1]
#if ${mean}
@group(0) @binding(4) var<storage, read_write> count: array<f32>;  // [1]
#endif
${rowCommonWGSL(REDUCE_WG, 'vec2<f32>')}

@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  // (sum of losses, number of non-ignored rows) over this invocation's strided slice, then the whole workgroup.
  var acc = vec2<f32>(0.0, 0.0);
  for (var i = lid; i < p.rows; i += ${REDUCE_WG}u) {
    acc += vec2<f32>(loss[i], select(1.0, 0.0, targets[i] == p.ignore_index));
  }
  let total = row_sum(acc, lid);
  if (lid == 0u) {
#if ${mean}
    out[0] = select(total.x / total.y, ${NAN}, total.y == 0.0);
    count[0] = total.y;
#else
    out[0] = total.x;
#endif
  }
}`;
}

/** Logits of one row each backward workgroup writes: 256 invocations × 8 columns. */
export const BACKWARD_COLUMNS = 2048;

/**
 * Backward (no reduction needed: lse is saved):
 *   dlogits_ij = (softmax_ij - [j == t_i]) * scale_i,   softmax_ij = exp(logits_ij - lse_i)
 *   scale_i = g_i (none), g (sum), g / count (mean); 0 for ignored rows, NaN for out-of-range targets.
 * A workgroup owns 2048 columns of one row: the row's target, lse and scale are loaded once, and invocation lid writes
 * columns lid, lid + 256, ... of the block (neighbours write neighbouring words). The row comes from the workgroup id,
 * so no invocation divides by V. Against one invocation per logit (row = i / V) this halved the time on lavapipe:
 * [512, 8000] in 32–35 ms against 55–73 ms (a scratch comparison of the two kernels, interleaved, machine loaded).
 * Bindings: logits [N, V], targets [N], lse [N], g ([N] for none, [1] otherwise), (mean) count [1], dlogits [N, V]
 * (a block's rows of each, but all of g and count). Grid: [ceil(V / 2048), min(N, 65535), ceil(N / 65535)]; row = wid.z · nwg.y + wid.y.
 */
export function crossEntropyBackwardWGSL(reduction: Reduction): string {
  return wgsl`
struct Params { rows: u32, V: u32, ignore_index: i32, nan_bits: u32, lbase: u32, rbase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;       // [N, V]
@group(0) @binding(2) var<storage, read> targets: array<i32>;      // [N]
@group(0) @binding(3) var<storage, read> lse: array<f32>;          // [N]
@group(0) @binding(4) var<storage, read> g: array<f32>;            // [N] or [1]
#if ${reduction === 'mean'}
@group(0) @binding(5) var<storage, read> count: array<f32>;        // [1]
#endif
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>; // [N, V]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let block_row = wid.z * nwg.y + wid.y;
  if (block_row >= p.rows) { return; }
  let row = p.rbase + block_row;
  let t = targets[row];
#if ${reduction === 'none'}
  var scale = g[row];
#elif ${reduction === 'sum'}
  var scale = g[0];
#else
  var scale = g[0] / count[0];
#endif
  // An ignored row gets exactly 0 everywhere (whatever its logits hold); an out-of-range target NaN everywhere.
  let ignored = t == p.ignore_index;
  if (!ignored && (t < 0 || u32(t) >= p.V)) { scale = ${NAN}; }
  let l = lse[row];
  let base = p.lbase + block_row * p.V;
  for (var k = 0u; k < ${BACKWARD_COLUMNS / 256}u; k++) {
    let col = wid.x * ${BACKWARD_COLUMNS}u + k * 256u + lid;
    if (col >= p.V) { break; }
    let prob = exp(logits[base + col] - l);
    dlogits[base + col] = select((prob - select(0.0, 1.0, i32(col) == t)) * scale, 0.0, ignored);
  }
}`;
}
