// WGSL for layer normalisation over the last C elements of each row: fused forward, fused dx, and deterministic dweight/dbias.
//
// x is viewed as [N, C] (C = numel(normalizedShape)). Forward and dx: one workgroup per row (grid: rows as 2-D
// workgroups, see kernels/rows.ts), each invocation holding its PER = ceil(C / wg) elements of the row in registers,
// so x (and g) are read from memory once; the row sums go through the tree of kernels/rows.ts.
// dweight/dbias: column sums over all rows, done in two fixed-order stages (no float atomics, so the result
// is bit-identical run to run): partial sums over blocks of rows, then a sum over the blocks.
// Reference: test/reference/rows.ts (layerNorm in float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { rowCommonWGSL } from './rows.js';

/**
 * Workgroup size and elements per invocation for rows of C: 32 invocations up to C = 1024 (GPT-2's 768: 24 each),
 * then twice as many per doubling, so no invocation holds more than 32 values until C passes 8192.
 * A small workgroup is what makes this fast on a CPU driver, where every barrier walks the whole workgroup: on
 * lavapipe, [2048, 768] went from 102 to 35–42 ms forward and from 85 to 61 ms backward against 256 invocations
 * reading x from memory in each pass (`npm run bench -- --quick --only layernorm --no-peers`). One 32-wide group
 * per row is also the classic GPU layout.
 */
export function layerNormLayout(C: number): { wg: number; per: number } {
  let wg = 32;
  while (wg < 256 && wg * 32 < C) wg *= 2;
  return { wg, per: Math.max(1, Math.ceil(C / wg)) };
}

/**
 * Forward: mean = sum x / C,  var = sum (x - mean)^2 / C  (biased, two passes over the registers: no cancellation
 *   as in E[x^2] - mean^2),  rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * weight + bias.
 * Bindings: x [N, C], (affine) weight [C], (affine) bias [C], y [N, C], mean [N], rstd [N].
 */
export function layerNormForwardWGSL(wg: number, per: number, hasWeight: boolean, hasBias: boolean): string {
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
  // xs[i] holds x[lid + i wg] - shift (0 past the row's end).
  let shift = x[base];
  var xs: array<f32, ${per}>;
  var acc = 0.0;
  for (var i = 0u; i < ${per}u; i++) {
    let c = lid + i * ${wg}u;
    var v = 0.0;
    if (c < p.C) { v = x[base + c] - shift; }
    xs[i] = v;
    acc += v;
  }
  let dev = row_sum(acc, lid) * inv_c;   // mean - shift
  acc = 0.0;
  for (var i = 0u; i < ${per}u; i++) {
    if (lid + i * ${wg}u < p.C) {
      let d = xs[i] - dev;
      acc += d * d;
    }
  }
  let r = inverseSqrt(row_sum(acc, lid) * inv_c + p.eps);
  if (lid == 0u) {
    mean[row] = shift + dev;
    rstd[row] = r;
  }
  for (var i = 0u; i < ${per}u; i++) {
    let c = lid + i * ${wg}u;
    if (c >= p.C) { break; }
    var v = (xs[i] - dev) * r;
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
 * Each invocation keeps its xhat and ghat in registers; the two row means come from one tree over vec2.
 * Bindings: x [N, C], (affine) weight [C], mean [N], rstd [N], g [N, C], dx [N, C].
 */
export function layerNormBackwardWGSL(wg: number, per: number, hasWeight: boolean): string {
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

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_id(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let mu = mean[row];
  let r = rstd[row];
  var xhat: array<f32, ${per}>;
  var ghat: array<f32, ${per}>;
  var acc = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < ${per}u; i++) {
    let c = lid + i * ${wg}u;
    var xh = 0.0;
    var gh = 0.0;
    if (c < p.C) {
      xh = (x[base + c] - mu) * r;
#if ${hasWeight}
      gh = g[base + c] * weight[c];
#else
      gh = g[base + c];
#endif
    }
    xhat[i] = xh;
    ghat[i] = gh;
    acc += vec2<f32>(gh, gh * xh);
  }
  let means = row_sum(acc, lid) / f32(p.C);
  for (var i = 0u; i < ${per}u; i++) {
    let c = lid + i * ${wg}u;
    if (c >= p.C) { break; }
    dx[base + c] = r * (ghat[i] - means.x - xhat[i] * means.y);
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
