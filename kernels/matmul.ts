// WGSL for batched matmul: C[z] = Σ_r op(A[z,r]) · op(B[z,r]) (+ bias), register-tiled through workgroup memory.
//
// Each output matrix is C[z] = Σ_{r < sumCount} op(A[z,r]) · op(B[z,r]), [M, N], op = identity or transpose:
//   a: array<f32>  A[z,r] stored [M, K] row-major, or [K, M] when transA (read transposed, no copy); or f16 (below)
//   b: array<f32>  B[z,r] stored [K, N],             or [N, K] when transB;                          or f16
//   bias (variant): array<f32> [N], added to every row in the store (linear's y = x·Wᵀ + b)
//   c: array<f32>  [Z, M, N], contiguous
// z runs over the "kept" batch dims (the output's), r over "summed" batch dims (a backward that sums a
// broadcast operand's gradient, r = 0 only in a forward). Each batch coordinate times a per-operand
// element stride gives where its matrix starts; a stride of 0 broadcasts that operand (a 2-D weight
// shared by the whole batch).
//
// Tiling: a workgroup of WX×WY invocations owns a BM×BN = (WY·TM)×(WX·TN) tile of C. The K loop walks
// BK-deep slices: the workgroup stages A[BM×BK] and B[BK×BN] in workgroup memory, then every invocation
// does a TM×TN outer product per k from registers, in vec4s. Invocation (tx, ty) owns TM/4 groups of 4
// consecutive rows, WY·4 rows apart, and TN/4 groups of 4 consecutive columns, WX·4 columns apart, so
// neighbouring invocations read neighbouring vec4s of the staged B tile. The sizes are parameters (MatmulTiles,
// below): which ones run is chosen per adapter, tuned once and cached (src/ops/matmul_tiles.ts). Every tile
// shape sums each output's K products in the same order, k ascending.
// Dispatch grid: [ceil(N / BN), ceil(M / BM), Z]. Out-of-range rows/columns/k are loaded as 0 and not
// stored, so any M, N, K >= 0 works. Reference: test/reference/matmul.ts (float64).
//
// Split products (ops/matmul.ts), for operands larger than one storage binding (GPT-2's LM head reads its
// [V, C] embedding; the logits [B·T, V] can outgrow a binding too), launch a 2-D product once per block of
// [M, N, K], each binding only the windows of A, B, C (and bias) that its block touches:
//   windowed:   each operand is a block of a larger row-major matrix: element (r, c) of the block is at
//               off + r·ld + c of its binding (lda, ldb, ldc; offA, offB, offC, offBias from the uniform).
//   accumulate: C += op(A)·op(B). The accumulators start from C, so the blocks of one K range continue the
//               same sums in the same order: a product split along K is bit-identical to one launch.
// Unsplit products use neither (their leading dims are K, N or M, as above, and their offsets 0).
//
// Fused epilogues (unsplit products only), applied in the store in this order to v = acc (+ bias[n]):
//   activation: pre[z, m, n] = v is stored (when `savePre`: the backward's input), then v = gelu(v), with the same
//               WGSL as the elementwise GELU (kernels/elementwise.ts), so the result has the unfused op's bits;
//   dropout:    v = keep ? v·keep_scale : 0, keep decided by kernels/dropout.ts's hash of the flat index of c;
//   residual:   v = r[z, m, n] + v  (r as contiguous as c): a block's x + dropout(proj(h)) in one pass.
// Each saves the unfused op's extra pass over c (a write and a read) and its launch.
//
// f16 operands (halfA, halfB): A or B holds IEEE halves two to a 32-bit word, read exactly as f32 (unpack2x16float)
// when staged, so an f16 operand costs half the memory traffic while the products and sums stay f32 (no
// `shader-f16` needed). In a split product a window's base counts halves. c is f32: the accumulator's precision,
// which the caller may round to f16.
//
// vec4 loads (vecA, vecB; unsplit products): when an operand's stored rows are a multiple of 4 elements long and
// every matrix of it starts on a multiple of 4, its tile is staged with one 16-byte load (8 for f16) of 4
// neighbours along the stored row instead of 4 scalar loads: a quarter of the load instructions. The staged
// values, and so the result's bits, are the same as the scalar path's. Rows along k (A not transposed, B
// transposed) are spread over 4 k rows of the staged tile; rows along m or n land as one vec4 of it.

import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { MATH_WGSL } from './elementwise.js';
import { MIX32_WGSL } from './hash.js';

/** Register and workgroup tile sizes. BM = WY·TM rows and BN = WX·TN columns of C per workgroup. */
export interface MatmulTiles {
  /** Invocations per workgroup along N (x) and M (y). */
  WX: number;
  WY: number;
  /** Outputs per invocation along M and N (the register tile). */
  TM: number;
  TN: number;
  /** Depth of one K slice staged in workgroup memory. */
  BK: number;
}

/**
 * The default, used where no tuned choice is cached for the adapter (src/ops/matmul_tiles.ts). Chosen on lavapipe
 * (bench/RESULTS.md): 128×128 workgroup tiles, 8×8 outputs per invocation, 8 deep. Larger register tiles won clearly
 * there (every workgroup-memory read is a per-lane gather on a CPU), and 128×128×8 with 8×8 per invocation is also the
 * classic f32 shape for discrete GPUs. Workgroup memory: 2 × 8 × (128 + 4) floats = 8.25 KiB, under WebGPU's
 * guaranteed 16 KiB; 256 invocations, WebGPU's guaranteed maximum (compatibility mode allows 128: there the first
 * candidate below that fits is the default).
 */
export const TILES: MatmulTiles = { WX: 16, WY: 16, TM: 8, TN: 8, BK: 8 };

/**
 * What tuneMatmul() (src/ops/matmul_tune.ts) races by default; each is used only where the adapter's limits allow it.
 * The design space that matters: the register tile (4×4 to 8×16 outputs per invocation: more reuse of each
 * workgroup-memory read, more registers), the workgroup tile (128×128 reuses each staged element most; 64×64 and
 * the 128×64 rectangles launch 2–4× more workgroups, which a large GPU needs for GPT-2-sized products, and use less
 * workgroup memory), and the K-slice depth (fewer barriers against more workgroup memory: BK 16 on 128×128 needs
 * 16.5 KiB, over the 16 KiB every adapter guarantees).
 */
export const TILE_CANDIDATES: readonly MatmulTiles[] = [
  TILES,
  { WX: 16, WY: 16, TM: 8, TN: 8, BK: 4 },
  { WX: 16, WY: 16, TM: 8, TN: 8, BK: 16 },
  { WX: 8, WY: 16, TM: 8, TN: 8, BK: 8 }, // 128×64, 128 invocations
  { WX: 8, WY: 8, TM: 8, TN: 16, BK: 8 }, // 64×128, an 8×16 register tile
  { WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 }, // 64×64, 64 invocations
  { WX: 16, WY: 16, TM: 4, TN: 4, BK: 16 }, // 64×64, 256 invocations with 4×4 each
];

/**
 * Tiles for products with at most 4 rows (decoding one token: x [B, 1, C] · Wᵀ), first that fits the adapter. The
 * square tile would compute 128 rows to keep 1; a 4 × 256 tile keeps the work (and the workgroup count)
 * proportional. Its 16-deep slice needs 16.75 KiB of workgroup memory; 8 deep, 8.4 KiB, fits every adapter.
 */
export const SKINNY_TILES: readonly MatmulTiles[] = [
  { WX: 64, WY: 1, TM: 4, TN: 4, BK: 16 },
  { WX: 64, WY: 1, TM: 4, TN: 4, BK: 8 },
];

/** The adapter limits a tile shape must respect. */
export type TileLimits = Pick<
  GPUSupportedLimits,
  'maxComputeWorkgroupSizeX' | 'maxComputeWorkgroupSizeY' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupStorageSize'
>;

/** Bytes of workgroup memory the kernel stages: As and Bs, BK rows of BM/4 + 1 and BN/4 + 1 vec4s (the padding). */
export function workgroupBytes({ WX, WY, TM, TN, BK }: MatmulTiles): number {
  return 16 * BK * ((WY * TM) / 4 + 1 + (WX * TN) / 4 + 1);
}

/**
 * Why the kernel cannot use `tiles` (on an adapter with `limits`, when given), or null when it can. The kernel holds
 * the register tile in vec4s (TM, TN multiples of 4) and has every invocation stage the same number of elements; at
 * most 16×16 outputs per invocation, as TM·TN accumulators must stay in registers (more spills on any GPU); BK a
 * multiple of 4, so vec4 loads along k stay inside one slice.
 */
export function tilesProblem(tiles: MatmulTiles, limits?: TileLimits): string | null {
  for (const k of ['WX', 'WY', 'TM', 'TN', 'BK'] as const) {
    const v: unknown = tiles[k];
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= 1)) return `${k} must be a positive integer, got ${JSON.stringify(v)}`;
  }
  const { WX, WY, TM, TN, BK } = tiles;
  const threads = WX * WY;
  if (TM % 4 !== 0 || TN % 4 !== 0) return `TM and TN must be multiples of 4 (got ${TM} and ${TN})`;
  if (TM > 16 || TN > 16) return `TM and TN must be at most 16 (got ${TM} and ${TN})`;
  if ((WY * TM * BK) % threads !== 0 || (WX * TN * BK) % threads !== 0) {
    return `each staged tile (${WY * TM}×${BK} and ${BK}×${WX * TN}) must split evenly over the ${threads} invocations`;
  }
  if (BK % 4 !== 0) return `BK must be a multiple of 4, for vec4 loads along k (got ${BK})`;
  if (!limits) return null;
  const l = limits;
  if (WX > l.maxComputeWorkgroupSizeX || WY > l.maxComputeWorkgroupSizeY || threads > l.maxComputeInvocationsPerWorkgroup) {
    return (
      `a ${WX}×${WY} workgroup is over this adapter's limits (${l.maxComputeWorkgroupSizeX}×${l.maxComputeWorkgroupSizeY}, ` +
      `${l.maxComputeInvocationsPerWorkgroup} invocations)`
    );
  }
  const bytes = workgroupBytes(tiles);
  if (bytes > l.maxComputeWorkgroupStorageSize) return `it stages ${bytes} bytes of workgroup memory, over this adapter's ${l.maxComputeWorkgroupStorageSize}`;
  return null;
}

/** The first of `preferred` that fits the adapter (every list here ends with a shape that fits any WebGPU adapter). */
export function firstFitting(preferred: readonly MatmulTiles[], limits: TileLimits): MatmulTiles {
  const fit = preferred.find((t) => tilesProblem(t, limits) === null);
  if (!fit) throw new Error(`matmul: none of the tile shapes ${preferred.map(tilesName).join(', ')} fits this adapter`);
  return fit;
}

/** A short unique name: "128x128x8/8x8" is BM×BN×BK with TM×TN outputs per invocation (WX = BN/TN, WY = BM/TM). */
export function tilesName({ WX, WY, TM, TN, BK }: MatmulTiles): string {
  return `${WY * TM}x${WX * TN}x${BK}/${TM}x${TN}`;
}

export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  bias: boolean;
  /** Operands are windows of larger matrices: leading dims and offsets come from the uniform. */
  windowed?: boolean;
  /** C += op(A)·op(B), continuing C's sums (needs `windowed`). */
  accumulate?: boolean;
  /** Epilogue (file header): GELU of v, storing v itself to `pre` when `savePre`. */
  activation?: 'gelu_tanh' | 'gelu_erf';
  savePre?: boolean;
  /** Epilogue: dropout of v (Params seed, threshold, keep_scale). */
  dropout?: boolean;
  /** Epilogue: v += r[z, m, n]. */
  residual?: boolean;
  /** A (B) is f16, two elements to a u32 word. */
  halfA?: boolean;
  halfB?: boolean;
  /** Stage A (B) with vec4 loads: its stored rows and matrix starts are multiples of 4 elements (unsplit only). */
  vecA?: boolean;
  vecB?: boolean;
}

/** Grid [x, y] covering an M×N output with `tiles`; z is the number of kept batch matrices. */
export function matmulGrid(M: number, N: number, tiles: MatmulTiles): [number, number] {
  return [Math.ceil(N / (tiles.WX * tiles.TN)), Math.ceil(M / (tiles.WY * tiles.TM))];
}

export function matmulWGSL(variant: MatmulVariant, tiles: MatmulTiles): string {
  const { transA, transB, bias, windowed = false, accumulate = false, activation, savePre = false, dropout = false, residual = false } = variant;
  const { halfA = false, halfB = false, vecA = false, vecB = false } = variant;
  const problem = tilesProblem(tiles);
  if (problem) throw new Error(`matmul tiles ${JSON.stringify(tiles)}: ${problem}`);
  const { WX, WY, TM, TN, BK } = tiles;
  const threads = WX * WY;
  const [BM, BN] = [WY * TM, WX * TN];
  if (accumulate && !windowed) throw new Error('matmul: the accumulate variant is for split products (windowed)');
  if (windowed && (activation || dropout || residual)) throw new Error('matmul: fused epilogues are for unsplit products only');
  if (savePre && !activation) throw new Error('matmul: savePre stores the input of an activation; there is none');
  if (windowed && (vecA || vecB)) throw new Error('matmul: vec4 loads are for unsplit products only');
  // vec4s staged per slice: A is BM×BK, B is BK×BN elements; a tile that does not split evenly leaves some idle.
  const [vecsA, vecsB] = [(BM * BK) / 4, (BK * BN) / 4];
  // Storage bindings in order: a, b, then whichever of bias, r, pre the variant has, then c.
  let next = 3;
  const slot = (): number => next++;
  const [biasAt, residualAt, preAt] = [bias ? slot() : 0, residual ? slot() : 0, savePre ? slot() : 0];
  const cAt = slot();
  return wgsl`
struct Params {
  M: u32, N: u32, K: u32,
  keptRank: u32, sumRank: u32, sumCount: u32,
#if ${windowed}
  lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32, offBias: u32,
#endif
#if ${dropout}
  seed: u32, threshold: u32, keep_scale: f32,
#endif
  keptShape: array<vec4<u32>, 2>, keptA: array<vec4<u32>, 2>, keptB: array<vec4<u32>, 2>,
  sumShape: array<vec4<u32>, 2>, sumA: array<vec4<u32>, 2>, sumB: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
${operandWGSL('a', 1, halfA, vecA)}
${operandWGSL('b', 2, halfB, vecB)}
#if ${bias}
@group(0) @binding(${biasAt}) var<storage, read> bias: array<f32>;
#endif
#if ${residual}
@group(0) @binding(${residualAt}) var<storage, read> r: array<f32>;
#endif
#if ${savePre}
@group(0) @binding(${preAt}) var<storage, read_write> pre: array<f32>;
#endif
@group(0) @binding(${cAt}) var<storage, read_write> c: array<f32>;
#if ${activation !== undefined}
${MATH_WGSL}
#endif
#if ${dropout}
${MIX32_WGSL}
#endif

const WX = ${WX}u;
const WY = ${WY}u;
const BK = ${BK}u;
const BM = ${BM}u;
const BN = ${BN}u;
const TM4 = ${TM / 4}u;
const TN4 = ${TN / 4}u;
const THREADS = ${threads}u;
// Staged tiles, k-major and in vec4s of 4 consecutive rows (As) or columns (Bs): As[k][m/4][m%4].
// One vec4 of padding per k row: when staging walks k fastest (A not transposed, B transposed), a row
// stride of BM floats would put 8 consecutive invocations on one bank; BM + 4 spreads them over 8.
const AS4 = ${BM / 4 + 1}u;
const BS4 = ${BN / 4 + 1}u;
var<workgroup> As: array<vec4<f32>, ${BK * (BM / 4 + 1)}>;
var<workgroup> Bs: array<vec4<f32>, ${BK * (BN / 4 + 1)}>;

// The row and column of C that acc holds at register (i, j) of invocation (lx, ly): see acc below.
fn c_row(m0: u32, ly: u32, i: u32) -> u32 { return m0 + (ly + (i / 4u) * WY) * 4u + i % 4u; }
fn c_col(n0: u32, lx: u32, j: u32) -> u32 { return n0 + (lx + (j / 4u) * WX) * 4u + j % 4u; }

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
#if ${windowed}
  let lda = p.lda;
  let ldb = p.ldb;
  let ldc = p.ldc;
  var baseA = p.offA;
  var baseB = p.offB;
  let baseC = p.offC + wid.z * p.M * ldc;
  let baseBias = p.offBias;
#else
  let lda = ${transA ? 'p.M' : 'p.K'};
  let ldb = ${transB ? 'p.K' : 'p.N'};
  let ldc = p.N;
  var baseA = 0u;
  var baseB = 0u;
  let baseC = wid.z * p.M * p.N;
  let baseBias = 0u;
#endif

  // Where matrix z of A and B starts: decompose z over the kept batch dims, innermost last.
  var rest = wid.z;
  for (var d = i32(p.keptRank) - 1; d >= 0; d--) {
    let size = p.keptShape[d / 4][d % 4];
    let i = rest % size;
    rest /= size;
    baseA += i * p.keptA[d / 4][d % 4];
    baseB += i * p.keptB[d / 4][d % 4];
  }

  // acc[(4 i4 + c) TN4 + j4] holds C[row (lid.y + i4 WY) 4 + c][columns (lid.x + j4 WX) 4 .. +4].
  var acc: array<vec4<f32>, ${(TM * TN) / 4}>;
#if ${accumulate}
  for (var i = 0u; i < ${TM}u; i++) {
    let gm = c_row(m0, lid.y, i);
    if (gm >= p.M) { continue; }
    for (var j = 0u; j < ${TN}u; j++) {
      let gn = c_col(n0, lid.x, j);
      if (gn >= p.N) { continue; }
      acc[i * TN4 + j / 4u][j % 4u] = c[baseC + gm * ldc + gn];
    }
  }
#endif
  var ra: array<vec4<f32>, ${TM / 4}>;
  var rb: array<vec4<f32>, ${TN / 4}>;
  for (var r = 0u; r < p.sumCount; r++) {
    var rrest = r;
    var offA = baseA;
    var offB = baseB;
    for (var d = i32(p.sumRank) - 1; d >= 0; d--) {
      let size = p.sumShape[d / 4][d % 4];
      let i = rrest % size;
      rrest /= size;
      offA += i * p.sumA[d / 4][d % 4];
      offB += i * p.sumB[d / 4][d % 4];
    }

    for (var k0 = 0u; k0 < p.K; k0 += BK) {
      // Stage A[m0 .. m0+BM, k0 .. k0+BK]. The flat index e walks the stored row (the contiguous
      // direction in memory) fastest, so neighbouring invocations read neighbouring words.
#if ${vecA}
      for (var s = 0u; s < ${Math.ceil(vecsA / threads)}u; s++) {
        let e = li + s * THREADS;
        if (e >= ${vecsA}u) { break; }
#if ${transA}
        let m = (e % ${BM / 4}u) * 4u;
        let k = e / ${BM / 4}u;
#else
        let k = (e % ${BK / 4}u) * 4u;
        let m = e / ${BK / 4}u;
#endif
        let gm = m0 + m;
        let gk = k0 + k;
        var v = vec4<f32>();
        if (gm < p.M && gk < p.K) {
#if ${transA}
          v = load_a4((offA + gk * lda + gm) / 4u);
        }
        As[k * AS4 + m / 4u] = v;
#else
          v = load_a4((offA + gm * lda + gk) / 4u);
        }
        for (var j = 0u; j < 4u; j++) { As[(k + j) * AS4 + m / 4u][m % 4u] = v[j]; }
#endif
      }
#else
      for (var s = 0u; s < ${(BM * BK) / threads}u; s++) {
        let e = li + s * THREADS;
#if ${transA}
        let m = e % BM;
        let k = e / BM;
#else
        let k = e % BK;
        let m = e / BK;
#endif
        let gm = m0 + m;
        let gk = k0 + k;
        var v = 0.0;
        if (gm < p.M && gk < p.K) {
#if ${transA}
          v = load_a(offA + gk * lda + gm);
#else
          v = load_a(offA + gm * lda + gk);
#endif
        }
        As[k * AS4 + m / 4u][m % 4u] = v;
      }
#endif
      // Stage B[k0 .. k0+BK, n0 .. n0+BN].
#if ${vecB}
      for (var s = 0u; s < ${Math.ceil(vecsB / threads)}u; s++) {
        let e = li + s * THREADS;
        if (e >= ${vecsB}u) { break; }
#if ${transB}
        let k = (e % ${BK / 4}u) * 4u;
        let n = e / ${BK / 4}u;
#else
        let n = (e % ${BN / 4}u) * 4u;
        let k = e / ${BN / 4}u;
#endif
        let gn = n0 + n;
        let gk = k0 + k;
        var v = vec4<f32>();
        if (gn < p.N && gk < p.K) {
#if ${transB}
          v = load_b4((offB + gn * ldb + gk) / 4u);
        }
        for (var j = 0u; j < 4u; j++) { Bs[(k + j) * BS4 + n / 4u][n % 4u] = v[j]; }
#else
          v = load_b4((offB + gk * ldb + gn) / 4u);
        }
        Bs[k * BS4 + n / 4u] = v;
#endif
      }
#else
      for (var s = 0u; s < ${(BN * BK) / threads}u; s++) {
        let e = li + s * THREADS;
#if ${transB}
        let k = e % BK;
        let n = e / BK;
#else
        let n = e % BN;
        let k = e / BN;
#endif
        let gn = n0 + n;
        let gk = k0 + k;
        var v = 0.0;
        if (gn < p.N && gk < p.K) {
#if ${transB}
          v = load_b(offB + gn * ldb + gk);
#else
          v = load_b(offB + gk * ldb + gn);
#endif
        }
        Bs[k * BS4 + n / 4u][n % 4u] = v;
      }
#endif
      workgroupBarrier();

      // Per k, a TM×TN outer product from registers: TM/4 + TN/4 vec4 reads of workgroup memory feed
      // TM·TN/4 vec4 multiply-adds. Neighbouring invocations read neighbouring vec4s of Bs (no bank
      // conflicts) and the same vec4 of As (a broadcast).
      for (var k = 0u; k < BK; k++) {
        for (var i4 = 0u; i4 < TM4; i4++) { ra[i4] = As[k * AS4 + lid.y + i4 * WY]; }
        for (var j4 = 0u; j4 < TN4; j4++) { rb[j4] = Bs[k * BS4 + lid.x + j4 * WX]; }
        for (var i = 0u; i < ${TM}u; i++) {
          let av = ra[i / 4u][i % 4u];
          for (var j4 = 0u; j4 < TN4; j4++) { acc[i * TN4 + j4] += av * rb[j4]; }
        }
      }
      // The next slice overwrites As/Bs: everyone must be done reading this one.
      workgroupBarrier();
    }
  }

  for (var i = 0u; i < ${TM}u; i++) {
    let gm = c_row(m0, lid.y, i);
    if (gm >= p.M) { continue; }
    for (var j = 0u; j < ${TN}u; j++) {
      let gn = c_col(n0, lid.x, j);
      if (gn >= p.N) { continue; }
      let at = baseC + gm * ldc + gn;
#if ${bias}
      var v = acc[i * TN4 + j / 4u][j % 4u] + bias[baseBias + gn];
#else
      var v = acc[i * TN4 + j / 4u][j % 4u];
#endif
#if ${savePre}
      pre[at] = v;
#endif
#if ${activation !== undefined}
      v = ${activation ?? 'gelu_tanh'}(v);
#endif
#if ${dropout}
      v = select(0.0, v * p.keep_scale, mix32(mix32(at) ^ p.seed) >= p.threshold);
#endif
#if ${residual}
      v = r[at] + v;
#endif
      c[at] = v;
    }
  }
}`;
}


/**
 * Operand `name`'s binding and loader: load_<name>(i) reads element i as f32; with `vec`, load_<name>4(i4) reads
 * elements 4·i4 .. 4·i4 + 3 in one load (16 bytes of f32, or 8 bytes of f16 as two words).
 */
function operandWGSL(name: 'a' | 'b', binding: number, half: boolean, vec: boolean): string {
  if (vec) {
    return half
      ? `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec2<u32>>;
fn load_${name}4(i4: u32) -> vec4<f32> { let w = ${name}[i4]; return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }`
      : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec4<f32>>;
fn load_${name}4(i4: u32) -> vec4<f32> { return ${name}[i4]; }`;
  }
  return half
    ? `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn load_${name}(i: u32) -> f32 { return unpack2x16float(${name}[i >> 1u])[i & 1u]; }`
    : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn load_${name}(i: u32) -> f32 { return ${name}[i]; }`;
}
