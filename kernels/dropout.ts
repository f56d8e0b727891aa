// WGSL for dropout with a counter-based RNG: the keep/drop decision of element i is a pure function of (seed, i).
//
// Nothing is stored between forward and backward: backward runs this same kernel on g with the same seed,
// which regenerates the same mask. Grid: n invocations, 256 per workgroup, 2-D (i = gid.y * nwg.x * 256 + gid.x).
// A tensor larger than one binding runs in flat chunks (ops/bindings.ts): element i of a chunk is element
// start + i of the tensor, and that is the index hashed.
// Reference: test/reference/rows.ts (dropoutBits, the same hash on the CPU).

import { MIX32_WGSL } from './hash.js';

/**
 * bits(seed, i) = mix32(mix32(i) ^ seed), mix32 = "lowbias32" (Chris Wellons' hash-prospector: xorshift-multiply
 * rounds with full avalanche, bias ~0.17). Hashing i before the seed is xored in keeps two seeds from giving
 * masks that are simple index shifts of each other.
 * Keep element i when bits >= threshold = round(p * 2^32): an integer compare, so P(keep) = 1 - p to within 2^-32.
 *   y_i = keep_i ? x_i * scale : 0,   scale = 1 / (1 - p) (rounded to f32 once, on the CPU).
 * Bindings: x [n], y [n].
 */

export const DROPOUT_WGSL = /* wgsl */ `
struct Params { n: u32, start: u32, seed: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [n]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // [n]

${MIX32_WGSL}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * 256u) + gid.x;
  if (i >= p.n) { return; }
  let keep = mix32(mix32(p.start + i) ^ p.seed) >= p.threshold;
  y[i] = select(0.0, x[i] * p.scale, keep);
}`;
