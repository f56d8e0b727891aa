// WGSL for elementwise ops: unary maps and their derivatives, broadcasting binary ops, fill, in-place add.
//
// All kernels use 256 invocations per workgroup and a 2-D grid (x up to 65535 workgroups, then y), so the
// flat element index is  i = gid.y * (num_workgroups.x * 256) + gid.x.  Reference: test/reference.ts.

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const WG = 256;

/** Unary ops y = f(x) (a scalar `s` is an extra argument for the *_s ops). */
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'relu' | 'gelu_tanh' | 'gelu_erf'
  | 'add_s' | 'mul_s' | 'rsub_s' | 'rdiv_s' | 'pow_s';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

/**
 * Shared math: tanh that cannot overflow, erf (Numerical Recipes erfc, |rel err| < 1.2e-7), and both GELUs. The
 * matmul epilogue (kernels/matmul.ts) includes this same text, so a fused GELU gives the bits of the unfused one.
 */
export const MATH_WGSL = /* wgsl */ `
fn tanh_safe(x: f32) -> f32 {
  // tanh saturates to +-1 in f32 beyond |x| = 9; some drivers return NaN for large |x|.
  return select(tanh(x), sign(x), abs(x) > 9.0);
}
fn erf_f32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = 1.0 - t * exp(p);
  return select(-r, r, x >= 0.0);
}
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GPT-2's gelu_new)
fn gelu_tanh(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_safe(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))); }
// x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
fn gelu_erf(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f32(x * INV_SQRT_2)); }
`;

const INDEX = /* wgsl */ `
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.y * (nwg.x * ${WG}u) + gid.x; }
`;

/** y[i] = f(x[i]) */
export function unaryWGSL(op: UnaryOp): string {
  return wgsl`
struct Params { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${MATH_WGSL}
${INDEX}
fn f(v: f32) -> f32 {
#if ${op === 'neg'}
  return -v;
#elif ${op === 'exp'}
  return exp(v);
#elif ${op === 'log'}
  return log(v);
#elif ${op === 'sqrt'}
  return sqrt(v);
#elif ${op === 'tanh'}
  return tanh_safe(v);
#elif ${op === 'relu'}
  return max(v, 0.0);
#elif ${op === 'gelu_tanh'}
  return gelu_tanh(v);
#elif ${op === 'gelu_erf'}
  return gelu_erf(v);
#elif ${op === 'add_s'}
  return v + p.s;
#elif ${op === 'mul_s'}
  return v * p.s;
#elif ${op === 'rsub_s'}
  return p.s - v;
#elif ${op === 'rdiv_s'}
  return p.s / v;
#elif ${op === 'pow_s'}
  // pow() is undefined for v < 0 in WGSL; integer exponents keep their sign rule.
  let m = pow(abs(v), p.s);
  let odd = fract(p.s * 0.5) != 0.0 && fract(p.s) == 0.0;
  return select(m, -m, v < 0.0 && odd);
#endif
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { y[i] = f(x[i]); }
}`;
}

/**
 * dx[i] = g[i] * f'(x[i]), written with whichever of x and y = f(x) gives the cheapest form:
 *   exp: y   log: 1/x   sqrt: 0.5/y   tanh: 1 - y^2   relu: [x > 0]   rdiv_s: -y/x   pow_s: s x^(s-1)
 *   gelu_tanh: 0.5(1+t) + 0.5 x (1-t^2) sqrt(2/pi)(1 + 3*0.044715 x^2),  t = tanh(sqrt(2/pi)(x + 0.044715 x^3))
 *   gelu_erf:  Phi(x) + x phi(x)
 */
export function unaryBackwardWGSL(op: UnaryOp): string {
  return wgsl`
struct Params { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
${MATH_WGSL}
${INDEX}
fn df(v: f32, out: f32) -> f32 {
#if ${op === 'exp'}
  return out;
#elif ${op === 'log'}
  return 1.0 / v;
#elif ${op === 'sqrt'}
  return 0.5 / out;
#elif ${op === 'tanh'}
  return 1.0 - out * out;
#elif ${op === 'relu'}
  return select(0.0, 1.0, v > 0.0);
#elif ${op === 'gelu_tanh'}
  let t = tanh_safe(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
  return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
#elif ${op === 'gelu_erf'}
  return 0.5 * (1.0 + erf_f32(v * INV_SQRT_2)) + v * INV_SQRT_2PI * exp(-0.5 * v * v);
#elif ${op === 'rdiv_s'}
  return -out / v;
#elif ${op === 'pow_s'}
  return p.s * out / v;
#else
  return 0.0;
#endif
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { dx[i] = g[i] * df(x[i], y[i]); }
}`;
}

/**
 * out[i] = a[ia] (op) b[ib] with NumPy broadcasting. For the general case the output index is split into
 * coordinates over `shape` (rank <= 8, innermost last) and each coordinate is multiplied by the operand's
 * stride, which is 0 along broadcast dimensions. `same` = both operands already have the output's shape.
 */
export function binaryWGSL(op: BinaryOp, same: boolean): string {
  return wgsl`
struct Params { n: u32, rank: u32, shape: array<vec4<u32>, 2>, sa: array<vec4<u32>, 2>, sb: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
#if ${same}
  let ia = i;
  let ib = i;
#else
  var rest = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let size = p.shape[d / 4][d % 4];
    let c = rest % size;
    rest = rest / size;
    ia += c * p.sa[d / 4][d % 4];
    ib += c * p.sb[d / 4][d % 4];
  }
#endif
#if ${op === 'add'}
  out[i] = a[ia] + b[ib];
#elif ${op === 'sub'}
  out[i] = a[ia] - b[ib];
#elif ${op === 'mul'}
  out[i] = a[ia] * b[ib];
#elif ${op === 'div'}
  out[i] = a[ia] / b[ib];
#endif
}`;
}

/** out[i] = value (f32 or i32 bits, given as u32). */
export const FILL_WGSL = /* wgsl */ `
struct Params { n: u32, bits: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { out[i] = p.bits; }
}`;

/** dst[i] += src[i] (gradient accumulation into .grad). */
export const ACCUMULATE_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { dst[i] = dst[i] + src[i]; }
}`;

/**
 * IEEE half precision in 32-bit words, with no `shader-f16` needed: an f16 tensor's elements 2i and 2i + 1 are the
 * low and high halves of word i (little-endian, as a Uint16Array sees them). f16 -> f32 is exact (unpack2x16float);
 * f32 -> f16 rounds to nearest, ties to even, in integer arithmetic so every adapter gives the same bits (a WGSL
 * f16() conversion may round either way): |x| >= 65520 becomes inf, below 2^-14 the result is subnormal (steps of
 * 2^-24), NaN stays a (quiet) NaN.
 */
const HALF_WGSL = /* wgsl */ `
fn half_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7e00u; }
  if (a >= 0x477ff000u) { return sign | 0x7c00u; }
  if (a >= 0x38800000u) {
    // Normal: rebias the exponent by 127 - 15 and keep 10 mantissa bits, rounding the 13 dropped bits to even.
    let r = a - 0x38000000u;
    return sign | ((r + 0xfffu + ((r >> 13u) & 1u)) >> 13u);
  }
  // Subnormal: |x| = m·2^(e - 150) with the implicit bit in m, so |x| / 2^-24 = m >> (126 - e), rounded to even.
  let e = a >> 23u;
  if (e < 102u) { return sign; }
  let m = (a & 0x7fffffu) | 0x800000u;
  let shift = 126u - e;
  let q = m >> shift;
  let rem = m & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  return sign | (q + select(0u, 1u, rem > half || (rem == half && (q & 1u) == 1u)));
}
`;

/** f32 -> f16: invocation w packs elements 2w and 2w + 1 into word w (n counts elements; a lone last one pads with 0). */
export const TO_HALF_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
${INDEX}
${HALF_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = flat_index(gid, nwg);
  let i = 2u * w;
  if (i >= p.n) { return; }
  let hi = select(0u, half_bits(x[min(i + 1u, p.n - 1u)]), i + 1u < p.n);
  y[w] = half_bits(x[i]) | (hi << 16u);
}`;

/** f16 -> f32, exactly. */
export const FROM_HALF_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < p.n) { y[i] = unpack2x16float(x[i >> 1u])[i & 1u]; }
}`;
