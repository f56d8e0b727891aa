// WGSL for layer normalisation over the last C elements of each row: fused forward, fused dx, and deterministic dweight/dbias.
//
// x is viewed as [N, C] (C = numel(normalizedShape)). Forward and dx: one workgroup per row, as in
// kernels/softmax.ts (strided slices + a tree in workgroup memory; grid: rows as 2-D workgroups).
// dweight/dbias: column sums over all rows, done in two fixed-order stages (no float atomics, so the result
// is bit-identical run to run): partial sums over blocks of rows, then a sum over the blocks.
// Reference: test/reference/rows.ts (layerNorm in float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { rowCommonWGSL } from './rows.js';

/**
 * Forward: mean = sum x / C,  var = sum (x - mean)^2 / C  (biased, two passes: no cancellation as in E[x^2] - mean^2),
 *   rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * weight + bias.
 * Bindings: x [N, C], (affine) weight [C], (affine) bias [C], y [N, C], mean [N], rstd [N].
 */
export function layerNormForwardWGSL(wg: number, hasWeight: boolean, hasBias: boolean): string {
  return wgsl`
struct Params { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [N, C]
#if ${hasWeight}
@group(0) @binding(2) var<storage, read> weight: array<f32>;       // [C]
#endif
#if ${hasBias}
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [C]
#endif
@group(0) @binding(4) var<storage, read_write> y: array<f32>;      // [N, C]
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;   // [N]
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;   // [N]
${rowCommonWGSL(wg)}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg);
  if (row >= p.rows) { return; }   // uniform across the workgroup, so the barriers below stay uniform
  let base = row * p.C;
  let inv_c = 1.0 / f32(p.C);
  // Centre on the row's first element: x - shift is exact when x is within a factor 2 of it (Sterbenz), so
  // for rows like 1000 +- 1 neither the sum nor x - mean rounds the deviations to f32's grid at 1000.
  let shift = x[base];
  var acc = 0.0;
  for (var c = lid; c < p.C; c += ${wg}u) { acc += x[base + c] - shift; }
  let dev = row_sum(acc, lid) * inv_c;   // mean - shift
  acc = 0.0;
  for (var c = lid; c < p.C; c += ${wg}u) {
    let d = (x[base + c] - shift) - dev;
    acc += d * d;
  }
  let r = inverseSqrt(row_sum(acc, lid) * inv_c + p.eps);
  if (lid == 0u) {
    mean[row] = shift + dev;
    rstd[row] = r;
  }
  for (var c = lid; c < p.C; c += ${wg}u) {
    var v = ((x[base + c] - shift) - dev) * r;
#if ${hasWeight}
    v *= weight[c];
#endif
#if ${hasBias}
    v += bias[c];
#endif
    y[base + c] = v;
  }
}`;
}

/**
 * dx, one row per workgroup. With xhat = (x - mean) * rstd and ghat = g * weight (g without weight):
 *   y = xhat * w + b,  dxhat = ghat,  and differentiating mean and rstd through xhat gives
 *   dx = rstd * (ghat - mean_c(ghat) - xhat * mean_c(ghat * xhat)).
 * The two row means come from one tree over vec2 (sum ghat, sum ghat * xhat).
 * Bindings: x [N, C], (affine) weight [C], mean [N], rstd [N], g [N, C], dx [N, C].
 */
export function layerNormBackwardWGSL(wg: number, hasWeight: boolean): string {
  return wgsl`
struct Params { rows: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [N, C]
#if ${hasWeight}
@group(0) @binding(2) var<storage, read> weight: array<f32>;       // [C]
#endif
@group(0) @binding(3) var<storage, read> mean: array<f32>;         // [N]
@group(0) @binding(4) var<storage, read> rstd: array<f32>;         // [N]
@group(0) @binding(5) var<storage, read> g: array<f32>;            // [N, C]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;     // [N, C]
${rowCommonWGSL(wg, 'vec2<f32>')}

fn ghat(i: u32, c: u32) -> f32 {
#if ${hasWeight}
  return g[i] * weight[c];
#else
  return g[i];
#endif
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let mu = mean[row];
  let r = rstd[row];
  var acc = vec2<f32>(0.0, 0.0);
  for (var c = lid; c < p.C; c += ${wg}u) {
    let gh = ghat(base + c, c);
    acc += vec2<f32>(gh, gh * (x[base + c] - mu) * r);
  }
  let means = row_sum(acc, lid) / f32(p.C);
  for (var c = lid; c < p.C; c += ${wg}u) {
    let xhat = (x[base + c] - mu) * r;
    dx[base + c] = r * (ghat(base + c, c) - means.x - xhat * means.y);
  }
}`;
}

/** Invocations per workgroup of the column kernels (one invocation per column). */
export const COLUMN_WG = 64;

/**
 * dweight/dbias stage 1: dweight = sum_rows g * xhat, dbias = sum_rows g, summed over one block of rows.
 * Invocation (c, block) adds rows [block * rows_per_block, ...) of column c, in order.
 * Grid: [ceil(C / 64), numBlocks]. Bindings: x [N, C], mean [N], rstd [N], g [N, C], pw [numBlocks, C], pb [numBlocks, C].
 */
export const LAYERNORM_PARAM_PARTIALS_WGSL = /* wgsl */ `
struct Params { rows: u32, C: u32, rows_per_block: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [N, C]
@group(0) @binding(2) var<storage, read> mean: array<f32>;         // [N]
@group(0) @binding(3) var<storage, read> rstd: array<f32>;         // [N]
@group(0) @binding(4) var<storage, read> g: array<f32>;            // [N, C]
@group(0) @binding(5) var<storage, read_write> pw: array<f32>;     // [numBlocks, C]
@group(0) @binding(6) var<storage, read_write> pb: array<f32>;     // [numBlocks, C]

@compute @workgroup_size(${COLUMN_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let block = gid.y;
  let start = block * p.rows_per_block;
  let end = min(start + p.rows_per_block, p.rows);
  var dw = 0.0;
  var db = 0.0;
  for (var row = start; row < end; row++) {
    let gv = g[row * p.C + c];
    dw += gv * (x[row * p.C + c] - mean[row]) * rstd[row];
    db += gv;
  }
  pw[block * p.C + c] = dw;
  pb[block * p.C + c] = db;
}`;

/**
 * dweight/dbias stage 2: the sum over blocks, block 0 first. Grid: [ceil(C / 64)].
 * Bindings: pw [numBlocks, C], pb [numBlocks, C], dweight [C], dbias [C].
 */
export const LAYERNORM_PARAM_TOTALS_WGSL = /* wgsl */ `
struct Params { blocks: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pw: array<f32>;           // [numBlocks, C]
@group(0) @binding(2) var<storage, read> pb: array<f32>;           // [numBlocks, C]
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>; // [C]
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;  // [C]

@compute @workgroup_size(${COLUMN_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var dw = 0.0;
  var db = 0.0;
  for (var b = 0u; b < p.blocks; b++) {
    dw += pw[b * p.C + c];
    db += pb[b * p.C + c];
  }
  dweight[c] = dw;
  dbias[c] = db;
}`;
