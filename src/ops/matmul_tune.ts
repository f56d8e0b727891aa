// tuneMatmul(): races the matmul kernel's tile shapes on this adapter, each validated against float64 first, and caches the fastest for it.
//
// 1. Every candidate is checked against the kernel's rules and this adapter's limits (tilesProblem); one that
//    fails is reported and dropped.
// 2. Validation: each survivor computes an awkward product (131×67 · 67×259: no size a multiple of any tile) in all
//    four transpose layouts, and every race shape, into NaN-filled outputs, all checked against float64 with the
//    worst-case dot-product bound (Reference, below). A candidate that fails (wrong values, a compile error on this
//    adapter) is reported and dropped; it is never chosen.
// 3. The race: rounds (default 5) in which every candidate, in an order rotated each round, times every shape;
//    a sample is the GPU time per product from timestamp queries (the profiler) where the adapter has them,
//    else wall-clock time to completion, over enough back-to-back runs to fill `budgetMs`. Interleaving the
//    rounds spreads load from elsewhere on the machine over every candidate alike; each (candidate, shape) keeps
//    its median sample.
// 4. The winner has the least geometric mean over the shapes (each shape counts by its ratio, not its size: 10 %
//    faster on the small product weighs as much as 10 % on the big one). It is cached for this adapter
//    (ops/matmul_tiles.ts) and used from then on.

import { TILE_CANDIDATES, matmulGrid, matmulWGSL, tilesName, tilesProblem, type MatmulTiles } from '../../kernels/matmul.js';
import { Kernel } from '../gpu/kernel.js';
import { runtime, sync } from '../gpu/runtime.js';
import { Generator } from '../random.js';
import { empty, tensor, type Tensor } from '../tensor.js';
import { describeTiles, saveMatmulTiles, type AdapterIdentity } from './matmul_tiles.js';

/** C [M, N] = op(A)·op(B): A stored [M, K] ([K, M] when transA), B stored [K, N] ([N, K] when transB). */
export interface TuneShape {
  name: string;
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
}

/**
 * The shapes raced by default: a square product, and GPT-2 124M's (C = 768) at `rows` = B·T tokens: the MLP's
 * wide up-projection (addmm), a weight gradient (dW = xᵀ·dy, K = B·T, read transposed), and a few-row product
 * read through a transposed weight (a 32-token prompt through linear). The default sizes are for a GPU;
 * { rows: 256, square: 512 } suits a CPU adapter.
 */
export function matmulTuneShapes({ rows = 1024, square = 1024 }: { rows?: number; square?: number } = {}): TuneShape[] {
  return [
    { name: `${square}³`, M: square, K: square, N: square },
    { name: `MLP fc [${rows},768]·[768,3072]`, M: rows, K: 768, N: 3072 },
    { name: `weight grad [${rows},768]ᵀ·[${rows},768]`, M: 768, K: rows, N: 768, transA: true },
    { name: 'few rows [32,768]·[2304,768]ᵀ', M: 32, K: 768, N: 2304, transB: true },
  ];
}

export interface TuneOptions {
  /** Tile shapes to race (default TILE_CANDIDATES, kernels/matmul.ts). */
  candidates?: readonly MatmulTiles[];
  /** Products to race them on (default matmulTuneShapes()). */
  shapes?: readonly TuneShape[];
  /** Interleaved rounds; each (candidate, shape) keeps its median (default 5). */
  rounds?: number;
  /** About how long one sample runs, in ms of GPU time (default 50; at most 50 runs). */
  budgetMs?: number;
  /** Cache the winner for this adapter and use it from now on (default true); false only reports it. */
  save?: boolean;
  /** Progress lines (validation, each round); silent by default. */
  log?: (line: string) => void;
}

/** How one candidate fared: dropped with the reason, or timed. */
export interface TuneCandidate {
  tiles: MatmulTiles;
  /** Why it was dropped: over a limit, or its output was wrong. */
  error?: string;
  /** Median ms per product, one per shape. */
  ms?: number[];
  /** Geometric mean of `ms`: the lower, the better. */
  score?: number;
}

export interface TuneResult {
  tiles: MatmulTiles;
  adapter: AdapterIdentity;
  timing: 'gpu-timestamps' | 'wall-clock';
  shapes: TuneShape[];
  rounds: number;
  candidates: TuneCandidate[];
  /** Where the choice was cached ('' when it was not). */
  savedTo: string;
}

/** float32's unit roundoff. */
const U = 2 ** -24;

/** The small product every candidate must get right in all four layouts: 131, 67 and 259 straddle every tile. */
const AWKWARD = { M: 131, K: 67, N: 259 };

/** One product's operands and output on the GPU, and its float64 reference on the rows that are checked. */
interface Product {
  shape: TuneShape;
  ta: Tensor;
  tb: Tensor;
  c: Tensor;
  reference: Reference;
}

/** Uniform in ±[0.25, 1): random and never zero (a zero input would hide a wrong index). */
function operand(n: number, rng: Generator): Float32Array {
  return Float32Array.from({ length: n }, () => {
    const u = rng.next() * 2 - 1;
    return (u < 0 ? -1 : 1) * (0.25 + 0.75 * Math.abs(u));
  });
}

function makeProduct(shape: TuneShape, rng: Generator): Product {
  const { M, K, N, transA, transB } = shape;
  const a = operand(M * K, rng);
  const b = operand(K * N, rng);
  return {
    shape,
    ta: tensor(a, transA ? [K, M] : [M, K]),
    tb: tensor(b, transB ? [N, K] : [K, N]),
    c: empty([M, N], 'f32', 'matmul_tune c'),
    reference: reference(shape, a, b),
  };
}

/**
 * The exact product on the rows that are checked, and how far a correct float32 kernel may be from it: the
 * worst-case bound of a float32 dot product, |ĉ − c| ≤ γ_K·Σ_k |a_k b_k| with γ_K = K·u / (1 − K·u) (Higham,
 * Accuracy and Stability of Numerical Algorithms, §3.1). It holds for any summation order, with or without fused
 * multiply-adds, so no correct kernel is ever dropped; a wrong index swaps at least one product |a_k b_k| ≥ 1/16
 * for another, far over the bound in some element (about 1e-4 for K = 67, 0.02 for K = 768). Every row is checked
 * when that is at most 2^26 multiply-adds, else evenly spaced rows, the first and last among them: whole rows
 * cover every column tile.
 */
interface Reference {
  rows: number[];
  /** [rows.length, N]: the float64 product and the bound. */
  exact: Float64Array;
  bound: Float64Array;
}

function reference({ M, K, N, transA, transB }: TuneShape, a: Float32Array, b: Float32Array): Reference {
  const count = Math.min(M, Math.max(2, Math.floor(2 ** 26 / Math.max(1, N * K))));
  const rows = count >= M ? Array.from({ length: M }, (_, m) => m) : Array.from({ length: count }, (_, i) => Math.round((i * (M - 1)) / (count - 1)));
  const gamma = (K * U) / (1 - K * U);
  const exact = new Float64Array(rows.length * N);
  const bound = new Float64Array(rows.length * N);
  rows.forEach((m, r) => {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      let abs = 0;
      for (let k = 0; k < K; k++) {
        const p = a[transA ? k * M + m : m * K + k]! * b[transB ? n * K + k : k * N + n]!;
        sum += p;
        abs += Math.abs(p);
      }
      exact[r * N + n] = sum;
      bound[r * N + n] = gamma * abs;
    }
  });
  return { rows, exact, bound };
}

/** null when `got` is within the bound on every checked element (NaN fails), else the first element that is not. */
function compare(got: Float32Array, { shape, reference: { rows, exact, bound } }: Product): string | null {
  const N = shape.N;
  for (const [r, m] of rows.entries()) {
    for (let n = 0; n < N; n++) {
      const [v, want, tol] = [got[m * N + n]!, exact[r * N + n]!, bound[r * N + n]!];
      if (!(Math.abs(v - want) <= tol)) return `${shape.name}: C[${m}, ${n}] is ${v}, expected ${want} (bound ${tol.toExponential(1)})`;
    }
  }
  return null;
}

/** One product of `tiles`, recorded (not submitted) through the runtime's one dispatch chokepoint. */
function launcher(tiles: MatmulTiles, p: Product): { kernel: Kernel; run: () => void } {
  const { M, K, N, transA = false, transB = false } = p.shape;
  // The same WGSL as src/ops/matmul.ts's kernel for this variant: the runtime shares the pipeline with it.
  const kernel = new Kernel(`matmul_tune:${transA ? 't' : 'n'}${transB ? 't' : 'n'}@${tilesName(tiles)}`, matmulWGSL({ transA, transB, bias: false }, tiles));
  const params = { M, N, K, keptRank: 0, sumRank: 0, sumCount: 1, keptShape: [], keptA: [], keptB: [], sumShape: [], sumA: [], sumB: [] };
  const grid = matmulGrid(M, N, tiles);
  const label = `matmul_tune ${describeTiles(tiles)} ${p.shape.name}`;
  return { kernel, run: () => runtime().dispatch(kernel, { buffers: [p.ta.range, p.tb.range, p.c.range], params, grid, label }) };
}

/** Runs one product into a NaN-filled output and checks it; a GPU error (this adapter cannot compile it) fails it too. */
async function validate(tiles: MatmulTiles, p: Product): Promise<string | null> {
  const rt = runtime();
  rt.write(p.c.range, new Float32Array(p.shape.M * p.shape.N).fill(NaN));
  try {
    launcher(tiles, p).run();
    return compare((await p.c.toArray()) as Float32Array, p);
  } catch (e) {
    await sync().catch(() => undefined);
    return `${p.shape.name}: ${(e as Error).message}`;
  }
}

/** Milliseconds per run over `n` back-to-back runs: GPU time of `kernel` from timestamps, or wall-clock to completion. */
async function sample(run: () => void, n: number, kernel: Kernel, gpuTiming: boolean): Promise<number> {
  const rt = runtime();
  if (gpuTiming) {
    rt.startProfile();
    for (let i = 0; i < n; i++) run();
    const timed = (await rt.stopProfile()).find((k) => k.kernel === kernel.name);
    if (!timed) throw new Error(`tuneMatmul: the profiler timed no ${kernel.name}`);
    return timed.ms / n;
  }
  await sync();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run();
  await sync();
  return (performance.now() - t0) / n;
}

const median = (xs: number[]): number => [...xs].sort((p, q) => p - q)[xs.length >> 1]!;
const geomean = (xs: number[]): number => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);

/** Races the candidates on this adapter (see the file header) and returns, uses and by default caches the fastest valid one. */
export async function tuneMatmul(options: TuneOptions = {}): Promise<TuneResult> {
  const { candidates = TILE_CANDIDATES, shapes = matmulTuneShapes(), rounds = 5, budgetMs = 50, save = true, log = () => undefined } = options;
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new RangeError(`tuneMatmul: rounds must be a positive integer, got ${rounds}`);
  if (!(budgetMs > 0)) throw new RangeError(`tuneMatmul: budgetMs must be positive, got ${budgetMs}`);
  if (shapes.length === 0) throw new RangeError('tuneMatmul: no shapes to race on');
  const rt = runtime();
  const gpuTiming = rt.gpu.features.has('timestamp-query');
  const results: TuneCandidate[] = candidates.map((tiles) => {
    const problem = tilesProblem(tiles, rt.limits);
    return problem ? { tiles, error: problem } : { tiles };
  });
  for (const r of results) if (r.error) log(`dropped ${JSON.stringify(r.tiles)}: ${r.error}`);

  const rng = new Generator(0x7113);
  const layouts = [false, true].flatMap((transA) => [false, true].map((transB) => ({ transA, transB })));
  const checks = layouts.map((t) => makeProduct({ name: `${AWKWARD.M}×${AWKWARD.K}·${AWKWARD.K}×${AWKWARD.N}${t.transA ? ' aᵀ' : ''}${t.transB ? ' bᵀ' : ''}`, ...AWKWARD, ...t }, rng));
  const products = shapes.map((s) => makeProduct(s, rng));
  try {
    for (const r of results) {
      if (r.error) continue;
      for (const p of [...checks, ...products]) {
        const error = await validate(r.tiles, p);
        if (error) {
          r.error = `failed validation: ${error}`;
          log(`dropped ${describeTiles(r.tiles)}: ${r.error}`);
          break;
        }
      }
      if (!r.error) log(`valid ${describeTiles(r.tiles)}`);
    }
    const racing = results.filter((r) => !r.error);
    if (racing.length === 0) throw new Error(`tuneMatmul: no candidate is valid on this adapter:\n${results.map((r) => `  ${JSON.stringify(r.tiles)}: ${r.error}`).join('\n')}`);

    // Batch sizes from one timed run each (the pipelines are compiled by now).
    const runs: { kernel: Kernel; run: () => void; n: number; samples: number[] }[][] = [];
    for (const r of racing) {
      const timed = [];
      for (const p of products) {
        const { kernel, run } = launcher(r.tiles, p);
        const once = await sample(run, 1, kernel, gpuTiming);
        timed.push({ kernel, run, n: Math.max(1, Math.min(50, Math.ceil(budgetMs / Math.max(once, 1e-3)))), samples: [] });
      }
      runs.push(timed);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < racing.length; i++) {
        for (const t of runs[(i + round) % racing.length]!) t.samples.push(await sample(t.run, t.n, t.kernel, gpuTiming));
      }
      log(`round ${round + 1} of ${rounds} done`);
    }
    racing.forEach((r, i) => {
      const ms = runs[i]!.map((t) => median(t.samples));
      r.ms = ms;
      r.score = geomean(ms);
    });
    const best = racing.reduce((w, r) => (r.score! < w.score! ? r : w));
    const timing = gpuTiming ? 'gpu-timestamps' : 'wall-clock';
    const record = {
      tuned: new Date().toISOString(),
      timing,
      rounds,
      shapes: shapes.map((s) => s.name),
      candidates: results.map(({ tiles, error, ms }) => (error ? { tiles, error } : { tiles, ms })),
    };
    const savedTo = save ? await saveMatmulTiles(best.tiles, record) : '';
    return { tiles: best.tiles, adapter: { ...rt.gpu.adapterInfo }, timing, shapes: [...shapes], rounds, candidates: results, savedTo };
  } finally {
    for (const p of [...checks, ...products]) for (const t of [p.ta, p.tb, p.c]) t.dispose();
  }
}
