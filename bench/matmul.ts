// Matmul benchmark: validates, then times, our tiled kernel, a naive kernel and tfjs-backend-webgpu on one adapter, in one process.
//
//   npm run build && node dist/bench/matmul.js [--quick] [--large] [--tune]
//     --quick  smaller shapes (squares 128..512, GPT-2 matmuls with B·T = 256), for a CPU adapter
//     --large  adds 2048³
//     --tune   instead times a few tile configurations of our kernel (how kernels/matmul.ts's TILES was chosen)
//
// Every implementation is first checked against a float64 CPU product on random non-zero inputs (ours
// and the naive kernel write into a buffer filled with NaN beforehand), then timed: see compete().
// Results go to stdout and bench/out/matmul.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { Kernel, full, init, matmul, runtime, sync, tensor, type Tensor } from '../src/index.js';
import { TILES, matmulGrid, matmulWGSL, type MatmulTiles } from '../kernels/matmul.js';
import { tfjsPeer } from './peers/tfjs.js';
import type { Contender, PeerLoad } from './peers/types.js';

// Dawn's classes become globals and navigator.gpu is the one Dawn instance, before any peer is imported:
// tfjs-backend-webgpu registers itself only if navigator.gpu exists when it loads, and our init() uses
// navigator.gpu when there is one, so both get their device from the same instance and adapter.
// navigator.gpu also keeps the instance referenced for the life of the process (were it garbage-collected,
// Dawn would abort).
Object.assign(globalThis, globals);
Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true, writable: true });

const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
const LARGE = args.has('--large');
const TUNE = args.has('--tune');
/** Each timed batch runs about this long (at least one product). */
const BATCH_MS = QUICK ? 300 : 600;

interface Shape {
  name: string;
  M: number;
  K: number;
  N: number;
}

const BT = QUICK ? 256 : 1024; // GPT-2 small rows: B·T tokens
const SHAPES: Shape[] = [
  ...(QUICK ? [128, 256, 512] : [256, 512, 1024, ...(LARGE ? [2048] : [])]).map((n) => ({ name: `${n}³`, M: n, K: n, N: n })),
  { name: `GPT-2 MLP fc    [${BT},768]·[768,3072]`, M: BT, K: 768, N: 3072 },
  { name: `GPT-2 attn proj [${BT},768]·[768,768]`, M: BT, K: 768, N: 768 },
  { name: `GPT-2 MLP proj  [${BT},3072]·[3072,768]`, M: BT, K: 3072, N: 768 },
];

/** Tile configurations tried by --tune (BM×BN = WY·TM × WX·TN). */
const TUNE_TILES: MatmulTiles[] = [
  { WX: 16, WY: 16, TM: 4, TN: 4, BK: 16 },
  { WX: 8, WY: 8, TM: 8, TN: 8, BK: 16 },
  { WX: 16, WY: 16, TM: 8, TN: 8, BK: 8 },
  { WX: 16, WY: 16, TM: 8, TN: 8, BK: 4 },
  { WX: 8, WY: 8, TM: 8, TN: 16, BK: 8 },
];

/** The baseline: one output per invocation, every operand read straight from global memory. */
const NAIVE_WGSL = /* wgsl */ `
struct Params { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // [M, K]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [K, N]
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // [M, N]
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc += a[m * p.K + k] * b[k * p.N + n]; }
  c[m * p.N + n] = acc;
}`;

// ---- data and checks ----

/** Uniform in ±[0.25, 1): random, and never zero (a zero input would hide a wrong index). */
function randomNonZero(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
    out[i] = Math.sign(u || 1) * (0.25 + 0.75 * Math.abs(u));
  }
  return out;
}

/** C = A·B in float64 (i-k-j order so the inner loop walks rows of B and C). */
function reference(a: Float32Array, b: Float32Array, { M, K, N }: Shape): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const av = a[m * K + k]!;
      const bo = k * N;
      const co = m * N;
      for (let n = 0; n < N; n++) c[co + n]! += av * b[bo + n]!;
    }
  }
  return c;
}

/**
 * null if every element is within tolerance, else what is wrong. A float32 dot product of length K has a
 * rounding error of order sqrt(K)·u·Σ|a_k b_k| (u = 2^-24); with |a|, |b| in [0.25, 1), E|ab| ≈ 0.39, so
 * that is ≈ 2.3e-8·K^1.5. The tolerance allows 2.5 times that, plus 1e-5 relative.
 */
function check(got: Float32Array, want: Float64Array, K: number): string | null {
  if (got.length !== want.length) return `${got.length} values, expected ${want.length}`;
  const atol = 6e-8 * K ** 1.5;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= atol + 1e-5 * Math.abs(want[i]!))) {
      return `element ${i} is ${got[i]}, expected ${want[i]} (atol ${atol.toExponential(1)})`;
    }
  }
  return null;
}

// ---- timing ----

interface Timing {
  ms: number;
  gflops: number;
}

type Result = ({ valid: true } & Timing) | { valid: false; error: string };

const ROUNDS = 5;

/**
 * Validates every contender against `want`, then times the valid ones: a warm-up (pipeline compilation),
 * then ROUNDS rounds in which each contender in turn runs a batch of n back-to-back products and drains.
 * Interleaving the rounds means a burst of load from elsewhere on the machine hits all contenders alike;
 * the median round gives ms per product.
 */
async function compete(s: Shape, want: Float64Array, contenders: Contender[]): Promise<Result[]> {
  const results: Result[] = [];
  for (const c of contenders) {
    try {
      const error = check(await c.validate(), want, s.K);
      results.push(error ? { valid: false, error: `wrong result: ${error}` } : { valid: true, ms: 0, gflops: 0 });
    } catch (e) {
      results.push({ valid: false, error: (e as Error).message.split('\n')[0]! });
    }
  }
  const live = contenders.map((c, i) => ({ c, i, n: 0, samples: [] as number[] })).filter(({ i }) => results[i]!.valid);
  for (const x of live) {
    x.c.run();
    await x.c.drain();
    const t0 = performance.now();
    x.c.run();
    await x.c.drain();
    x.n = Math.max(1, Math.min(50, Math.ceil(BATCH_MS / (performance.now() - t0))));
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const x of live) {
      const t0 = performance.now();
      for (let i = 0; i < x.n; i++) x.c.run();
      await x.c.drain();
      x.samples.push((performance.now() - t0) / x.n);
    }
  }
  for (const x of live) {
    const ms = x.samples.sort((p, q) => p - q)[ROUNDS >> 1]!;
    results[x.i] = { valid: true, ms, gflops: (2 * s.M * s.N * s.K) / (ms * 1e6) };
  }
  return results;
}

// ---- the contenders ----

const naiveKernel = new Kernel('matmul_naive', NAIVE_WGSL);

/** Our op, as a model calls it. Its output comes from the buffer pool: the buffer it will get is filled
 *  with NaN first (full() then dispose() puts that buffer on top of the pool), and the check confirms it. */
function ours(s: Shape, a: Tensor, b: Tensor): Contender {
  return {
    async validate() {
      const poison = full([s.M, s.N], NaN);
      const id = poison.range.buf.id;
      poison.dispose();
      const c = matmul(a, b);
      if (c.range.buf.id !== id) throw new Error('bench: the output did not land in the NaN-filled buffer');
      const got = (await c.toArray()) as Float32Array;
      c.dispose();
      return got;
    },
    run: () => matmul(a, b).dispose(),
    drain: sync,
    dispose() {},
  };
}

/** A kernel launched directly into an [M, N] output filled with NaN beforehand. */
function direct(s: Shape, a: Tensor, b: Tensor, kernel: Kernel, params: Record<string, number | number[]>, grid: [number, number]): Contender {
  const c = full([s.M, s.N], NaN);
  const run = (): void => runtime().dispatch(kernel, { buffers: [a.range, b.range, c.range], params, grid, label: `${kernel.name} ${s.name}` });
  return {
    async validate() {
      run();
      return (await c.toArray()) as Float32Array;
    },
    run,
    drain: sync,
    dispose: () => c.dispose(),
  };
}

/** Our kernel with other tiles (a plain 2-D product: no batch dims). */
function oursWithTiles(s: Shape, a: Tensor, b: Tensor, tiles: MatmulTiles): Contender {
  const kernel = new Kernel(`matmul_tune ${JSON.stringify(tiles)}`, matmulWGSL({ transA: false, transB: false, bias: false }, tiles));
  const params = { M: s.M, N: s.N, K: s.K, keptRank: 0, sumRank: 0, sumCount: 1, keptShape: [], keptA: [], keptB: [], sumShape: [], sumA: [], sumB: [] };
  return direct(s, a, b, kernel, params, matmulGrid(s.M, s.N, tiles));
}

function naive(s: Shape, a: Tensor, b: Tensor): Contender {
  return direct(s, a, b, naiveKernel, { M: s.M, N: s.N, K: s.K }, [Math.ceil(s.N / 16), Math.ceil(s.M / 16)]);
}

// ---- main ----

const fmtResult = (r: Result | undefined): string =>
  !r ? 'not run' : r.valid ? `${r.ms.toFixed(1).padStart(8)} ms ${r.gflops.toFixed(2).padStart(6)} GFLOP/s` : `INVALID (${r.error})`;
/** How many times faster x is than y. */
const speedup = (x: Result | undefined, y: Result | undefined): number | null => (x?.valid && y?.valid ? y.ms / x.ms : null);
const fmtSpeedup = (r: number | null): string => (r === null ? '—' : `${r.toFixed(2)}×`);

const rt = await init();
const adapter = rt.gpu.name;
console.log(`adapter: ${adapter}`);
console.log(`our tiles: ${JSON.stringify(TILES)}${QUICK ? '   (--quick shapes)' : ''}`);
const loaded: PeerLoad = TUNE ? { ok: false, error: 'not used by --tune' } : await tfjsPeer.load();
if (!TUNE) console.log(loaded.ok ? `tfjs: ${loaded.version} on the same adapter` : `tfjs: not run (${loaded.error})`);

const results = [];
const tuning: unknown[] = [];
// --tune times tile configurations on a mid-size square and the widest GPT-2 shape.
const shapes = TUNE ? SHAPES.filter((s) => s.name === (QUICK ? '512³' : '1024³') || s.N === 3072) : SHAPES;
for (const [i, s] of shapes.entries()) {
  const a = randomNonZero(s.M * s.K, 2 * i + 1);
  const b = randomNonZero(s.K * s.N, 2 * i + 2);
  const want = reference(a, b, s);
  const ta = tensor(a, [s.M, s.K]);
  const tb = tensor(b, [s.K, s.N]);
  const gflop = (2 * s.M * s.N * s.K) / 1e9;
  console.log(`\n${s.name}  (${gflop.toFixed(2)} GFLOP)`);
  if (TUNE) {
    const contenders = TUNE_TILES.map((tiles) => oursWithTiles(s, ta, tb, tiles));
    const timed = await compete(s, want, contenders);
    TUNE_TILES.forEach((tiles, j) => {
      const what = `BM ${tiles.WY * tiles.TM} BN ${tiles.WX * tiles.TN} BK ${tiles.BK} (${tiles.WX}×${tiles.WY} invocations × ${tiles.TM}×${tiles.TN})`;
      console.log(`  ${what.padEnd(50)} ${fmtResult(timed[j])}`);
      tuning.push({ shape: s.name, tiles, ...timed[j]! });
    });
    for (const c of contenders) c.dispose();
  } else {
    const contenders = [ours(s, ta, tb), naive(s, ta, tb), ...(loaded.ok ? [tfjsPeer.matmulContender(s.M, s.K, s.N, a, b)] : [])];
    const [o, n, t] = await compete(s, want, contenders);
    for (const c of contenders) c.dispose();
    console.log(`  ours   ${fmtResult(o)}`);
    console.log(`  naive  ${fmtResult(n)}`);
    console.log(`  tfjs   ${fmtResult(t)}`);
    console.log(`  ours is ${fmtSpeedup(speedup(o, n))} as fast as the naive kernel, ${fmtSpeedup(speedup(o, t))} as fast as tfjs`);
    results.push({ ...s, gflop, ours: o, naive: n, tfjs: t ?? null, oursOverNaive: speedup(o, n), oursOverTfjs: speedup(o, t) });
  }
  ta.dispose();
  tb.dispose();
}

mkdirSync('bench/out', { recursive: true });
const report = {
  date: new Date().toISOString(),
  command: `node dist/bench/matmul.js ${process.argv.slice(2).join(' ')}`.trim(),
  adapter,
  tiles: TILES,
  tfjs: loaded.ok ? loaded.version : `not run: ${loaded.error}`,
  ...(TUNE ? { tuning } : { results }),
};
writeFileSync('bench/out/matmul.json', JSON.stringify(report, null, 2));
console.log('\nwrote bench/out/matmul.json');
// The Dawn device keeps Node's event loop alive; end explicitly once the report is written.
process.exit(0);
