// The adapter's own roofs, measured with tiny kernels: a large vec4 copy (GB/s) and an FMA-only loop (GFLOP/s) in f32, and in f16 where the adapter has shader-f16.

import { Kernel, empty, runtime, tensor, type Tensor } from '../src/index.js';
import { compare, randomNonZero, timeGpu } from './common.js';

export interface Roofs {
  /** Bytes read + written per second by a straight copy, in GB/s (1e9). */
  copyGBs: number;
  /** f32 multiply-adds per second ×2, in GFLOP/s (1e9). */
  fmaGflops: number;
  /** The same loop in f16 (`shader-f16`), or null where the adapter lacks it: what an f16-math kernel could reach. */
  fmaF16Gflops: number | null;
  copyBytes: number;
}

/** out[i] = src[i], one vec4 per invocation per step of a grid-stride loop. Bytes moved: 2 × the buffer. */
const COPY_WGSL = /* wgsl */ `
struct Params { n4: u32, stride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  for (var i = gid.x; i < p.n4; i += p.stride) { dst[i] = src[i]; }
}`;

/**
 * Eight independent vec4 chains per invocation, acc = fma(acc, a, b), `iters` times: 8 × 4 × 2 = 64 FLOP per
 * iteration with no memory traffic. a and b come from the uniform so nothing folds at compile time; the sum is stored
 * so nothing is dead. With a = 1 - 2^-10 and b = 2^-10 every chain converges towards 1 and stays finite. T is the
 * arithmetic's type: f32, or f16 (a, b and the start values are exact halves).
 */
const fmaWGSL = (T: 'f32' | 'f16'): string => /* wgsl */ `${T === 'f16' ? 'enable f16;' : ''}
struct Params { iters: u32, a: f32, b: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let a = vec4<${T}>(${T}(p.a));
  let b = vec4<${T}>(${T}(p.b));
  let s = ${T}(f32(gid.x % 7u) * 0.01);
  var c0 = vec4<${T}>(s); var c1 = vec4<${T}>(s + 0.1); var c2 = vec4<${T}>(s + 0.2); var c3 = vec4<${T}>(s + 0.3);
  var c4 = vec4<${T}>(s + 0.4); var c5 = vec4<${T}>(s + 0.5); var c6 = vec4<${T}>(s + 0.6); var c7 = vec4<${T}>(s + 0.7);
  for (var i = 0u; i < p.iters; i++) {
    c0 = fma(c0, a, b); c1 = fma(c1, a, b); c2 = fma(c2, a, b); c3 = fma(c3, a, b);
    c4 = fma(c4, a, b); c5 = fma(c5, a, b); c6 = fma(c6, a, b); c7 = fma(c7, a, b);
  }
  let t = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
  out[gid.x] = f32(t.x + t.y + t.z + t.w);
}`;

const copyKernel = new Kernel('roof_copy', COPY_WGSL);
const fmaKernels = { f32: new Kernel('roof_fma', fmaWGSL('f32')), f16: new Kernel('roof_fma_f16', fmaWGSL('f16')) };

/** A number in [0, 65504] rounded to the nearest half (f16), ties to even (subnormals have the spacing 2^-24). */
function roundHalf(v: number): number {
  if (v === 0) return 0;
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = v / ulp;
  const f = Math.floor(q);
  const r = q - f > 0.5 || (q - f === 0.5 && f % 2 === 1) ? f + 1 : f;
  return r * ulp;
}

/**
 * Float64 of what one FMA invocation stores. In f32 the recurrence has no rounding worth a tolerance above 1e-4
 * relative. In f16 each step rounds to 11 bits, so a chain stalls where (1 - x)·2^-10 falls under half an ulp
 * (near 0.75, not 1): the reference rounds each step too, and a tolerance of 1e-2 covers WGSL's freedom to round
 * conversions either way, while a loop that did not run (start values summing to 11.5) is far outside it.
 */
function fmaExpected(gid: number, iters: number, a: number, b: number, type: 'f32' | 'f16'): number {
  const round = type === 'f32' ? (v: number): number => v : roundHalf;
  const s = round(Math.fround((gid % 7) * 0.01));
  let total = 0;
  for (let c = 0; c < 8; c++) {
    let x = round(Math.fround(s + Math.fround(0.1 * c)));
    for (let i = 0; i < iters; i++) x = round(x * a + b);
    total += 4 * x;
  }
  return total;
}

/**
 * Measures both roofs on the current device, each validated first. `quick` uses a 32 MiB copy and fewer FMA
 * workgroups; otherwise 256 MiB (or the largest binding the adapter allows) and enough workgroups to fill a big GPU.
 */
export async function measureRoofs(quick: boolean, budgetMs: number): Promise<Roofs> {
  const rt = runtime();
  const bytes = Math.min(quick ? 32 << 20 : 256 << 20, rt.limits.maxStorageBufferBindingSize);
  const n = bytes / 4;
  const host = randomNonZero(n, 7);
  const src = tensor(host, [n]);
  const dst = empty([n]);
  const wgs = Math.min(quick ? 256 : 4096, Math.ceil(n / 4 / 256));
  const copy = (): void =>
    rt.dispatch(copyKernel, { buffers: [src.range, dst.range], params: { n4: n / 4, stride: wgs * 256 }, grid: [wgs], label: 'roof copy' });
  copy();
  const copied = (await dst.toArray()) as Float32Array;
  const sample = Array.from({ length: 4096 }, (_, i) => Math.floor((i * n) / 4096));
  const err = compare(sample.map((i) => copied[i]!), sample.map((i) => host[i]!), 0, 0, 'roof copy');
  if (err) throw new Error(err);
  const copyMs = (await timeGpu(copy, budgetMs)).ms;
  for (const t of [src, dst] as Tensor[]) t.dispose();

  const fmaGroups = quick ? 64 : 4096;
  const iters = quick ? 4096 : 16384;
  const [a, b] = [1 - 2 ** -10, 2 ** -10];
  /** GFLOP/s of the FMA loop in `type`, validated first. */
  const fmaRoof = async (type: 'f32' | 'f16'): Promise<number> => {
    const out = empty([fmaGroups * 256]);
    const fma = (): void => rt.dispatch(fmaKernels[type], { buffers: [out.range], params: { iters, a, b }, grid: [fmaGroups], label: `roof fma ${type}` });
    fma();
    const got = (await out.toArray()) as Float32Array;
    const want = [0, 1, 6, 7, 255].map((g) => fmaExpected(g, iters, a, b, type));
    const err = compare([0, 1, 6, 7, 255].map((g) => got[g]!), want, 0, type === 'f32' ? 1e-4 : 1e-2, `roof fma ${type}`);
    if (err) throw new Error(err);
    const ms = (await timeGpu(fma, budgetMs)).ms;
    out.dispose();
    return (fmaGroups * 256 * iters * 64) / (ms * 1e6);
  };
  return {
    copyGBs: (2 * bytes) / (copyMs * 1e6),
    fmaGflops: await fmaRoof('f32'),
    fmaF16Gflops: rt.gpu.features.has('shader-f16') ? await fmaRoof('f16') : null,
    copyBytes: bytes,
  };
}
