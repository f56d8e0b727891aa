// WGSL for reductions over one axis of x viewed as [outer, R, inner]: sum (scaled, for mean) and max, plus max's backward.
//
// rows:    inner == 1. One 256-wide workgroup per row; each invocation folds a strided slice, then a tree
//          in workgroup memory. Grid: rows as 2-D workgroups (x up to 65535, then y).
// columns: inner > 1. One invocation per output (o, j), looping over R (reads coalesce across j).
// An x larger than one storage binding (XLNet's bias gradient sums the [B·P, V] logits' gradient) is
// reduced in pieces (ops/reduce.ts) whose bindings are windows starting at element xbase (x) and obase (out):
// rows in blocks of whole rows; columns, for one o at a time, in blocks of rows r and columns j, where the
// `accumulate` variant continues the sums (or maxima) already in out, so the result is the same bits.
// Reference: test/reference.ts (sum/max in float64).

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export type ReduceOp = 'sum' | 'max';
export const ROW_WG = 256;

export function reduceRowsWGSL(op: ReduceOp): string {
  return wgsl`
struct Params { rows: u32, R: u32, scale: f32, xbase: u32, obase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;   // [rows, R]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [rows]
var<workgroup> partial: array<f32, ${ROW_WG}>;

fn combine(a: f32, b: f32) -> f32 {
#if ${op === 'sum'}
  return a + b;
#else
  return max(a, b);
#endif
}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }   // uniform across the workgroup, so the barriers below stay uniform
  let base = p.xbase + row * p.R;
#if ${op === 'sum'}
  var acc = 0.0;
#else
  var acc = x[base];
#endif
  for (var r = lid; r < p.R; r += ${ROW_WG}u) { acc = combine(acc, x[base + r]); }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] = combine(partial[lid], partial[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { out[p.obase + row] = partial[0] * p.scale; }
}`;
}

/**
 * out[o, j] = scale · (sum or max over r of x[o, r, j]) for j < cols, reading x with row stride `inner`
 * (cols = inner unless a split launch covers a block of columns). With `accumulate` the sums (maxima) start
 * from out: a split along r continues them in order.
 */
export function reduceColumnsWGSL(op: ReduceOp, accumulate = false): string {
  return wgsl`
struct Params { outer: u32, R: u32, inner: u32, cols: u32, scale: f32, xbase: u32, obase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;   // [outer, R, inner]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [outer, cols]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * 256u) + gid.x;
  if (i >= p.outer * p.cols) { return; }
  let o = i / p.cols;
  let j = i % p.cols;
  let base = p.xbase + o * p.R * p.inner + j;
#if ${accumulate}
  var acc = out[p.obase + i];
  for (var r = 0u; r < p.R; r++) {
#if ${op === 'sum'}
    acc += x[base + r * p.inner];
#else
    acc = max(acc, x[base + r * p.inner]);
#endif
  }
#elif ${op === 'sum'}
  var acc = 0.0;
  for (var r = 0u; r < p.R; r++) { acc += x[base + r * p.inner]; }
#else
  var acc = x[base];
  for (var r = 1u; r < p.R; r++) { acc = max(acc, x[base + r * p.inner]); }
#endif
  out[p.obase + i] = acc * p.scale;
}`;
}

/** dx = g at the first position along R where x equals the max, 0 elsewhere (dx is cleared beforehand). */
export const MAX_BACKWARD_WGSL = /* wgsl */ `
struct Params { outer: u32, R: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;   // [outer, R, inner]
@group(0) @binding(2) var<storage, read> y: array<f32>;   // [outer, inner], the max
@group(0) @binding(3) var<storage, read> g: array<f32>;   // [outer, inner]
@group(0) @binding(4) var<storage, read_write> dx: array<f32>; // [outer, R, inner]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * 256u) + gid.x;
  if (i >= p.outer * p.inner) { return; }
  let o = i / p.inner;
  let j = i % p.inner;
  let base = o * p.R * p.inner + j;
  for (var r = 0u; r < p.R; r++) {
    if (x[base + r * p.inner] == y[i]) {
      dx[base + r * p.inner] = g[i];
      return;
    }
  }
}`;
