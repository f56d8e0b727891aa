// Benchmark plumbing shared by bench/*.ts: seeded non-zero data, float64 checks with stated tolerances, GPU-timestamp and wall-clock timing.

import { full, runtime, sync, type Tensor } from '../src/index.js';
import { mulberry32 } from '../test/reference/random.js';

/** Uniform in ±[0.25, 1)·scale: random and never zero (a zero input would hide a wrong index). */
export function randomNonZero(n: number, seed: number, scale = 1): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => {
    const u = next() * 2 - 1;
    return scale * Math.sign(u || 1) * (0.25 + 0.75 * Math.abs(u));
  });
}

/** A seeded stream of integers in [0, n). */
export function randomInts(count: number, n: number, seed: number): Int32Array {
  const u = randomNonZero(count, seed);
  return Int32Array.from(u, (x) => Math.min(n - 1, Math.floor(((Math.abs(x) - 0.25) / 0.75) * n)));
}

/** null when every got[i] is within atol + rtol·|want[i]| (NaN fails), else the worst element. */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): string | null {
  if (got.length !== want.length) return `${what}: ${got.length} values, expected ${want.length}`;
  let worst = -1;
  let excess = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) - (atol + rtol * Math.abs(want[i]!));
    if (!(e <= 0) && (worst < 0 || !(e <= excess))) {
      worst = i;
      excess = e;
      if (Number.isNaN(e)) break;
    }
  }
  return worst < 0 ? null : `${what}: element ${worst} is ${got[worst]}, expected ${want[worst]} (atol ${atol.toExponential(1)}, rtol ${rtol.toExponential(1)})`;
}

/**
 * A float32 dot product of length K has a rounding error of order sqrt(K)·u·Σ|a_k b_k| (u = 2^-24). With inputs in
 * ±[0.25, 1)·sa and ±[0.25, 1)·sb, E|ab| ≈ 0.39·sa·sb, so that is ≈ 2.3e-8·K^1.5·sa·sb; the tolerance allows 2.5
 * times that plus 1e-5 relative (bench/RESULTS.md: no correct kernel has come near it, a wrong index is off by O(1)).
 */
export function dotTolerance(K: number, scale = 1): number {
  return 6e-8 * K ** 1.5 * scale;
}

/**
 * Returns an [shape] output slot filled with NaN, freed again: the next allocation of that size gets exactly this
 * buffer back from the pool, so an op that forgets to write an element is caught by the check.
 */
export function poisonNextOutput(shape: readonly number[]): number {
  const t = full(shape, NaN);
  const id = t.range.buf.id;
  t.dispose();
  return id;
}

/** Throws unless `t` landed in the poisoned buffer `id` (else the poison proves nothing). */
export function expectPoisoned(t: Tensor, id: number, what: string): void {
  if (t.range.buf.id !== id) throw new Error(`bench: ${what} did not land in the NaN-filled buffer`);
}

/** GPU time of the kernels whose names pass `keep`, per run, from timestamp queries (gpu/profiler.ts). */
export interface GpuTiming {
  /** Mean GPU milliseconds per run of the kept kernels. */
  ms: number;
  runs: number;
  dispatches: number;
}

/**
 * Times `run` (which records GPU work) with timestamp queries: one warm-up run (pipeline compilation), one profiled
 * run to size the batch, then enough runs to fill about `budgetMs` of GPU time (1 to 50). Each dispatch gets its own
 * pass while profiling, so this is kernel time, free of the CPU's encoding; `keep` selects kernels by name.
 */
export async function timeGpu(run: () => void, budgetMs: number, keep: (kernel: string) => boolean = () => true): Promise<GpuTiming> {
  run();
  await sync();
  const once = await profile(run, 1, keep);
  const runs = Math.max(1, Math.min(50, Math.ceil(budgetMs / Math.max(once.ms, 1e-3))));
  return runs === 1 ? once : profile(run, runs, keep);
}

async function profile(run: () => void, runs: number, keep: (kernel: string) => boolean): Promise<GpuTiming> {
  runtime().startProfile();
  for (let i = 0; i < runs; i++) run();
  const report = await runtime().stopProfile();
  const kept = report.filter((k) => keep(k.kernel));
  if (kept.length === 0) throw new Error(`bench: no kernel was timed (profiled: ${report.map((k) => k.kernel).join(', ') || 'none'})`);
  return {
    ms: kept.reduce((t, k) => t + k.ms, 0) / runs,
    runs,
    dispatches: kept.reduce((t, k) => t + k.dispatches, 0) / runs,
  };
}

/** One implementation in a side-by-side race: `run` records one unit of work, `drain` waits for all of it. */
export interface Racer {
  run(): void;
  drain(): Promise<void>;
}

/**
 * Wall-clock milliseconds per run of each racer, measured alike: a warm-up, a batch size per racer that fills about
 * `budgetMs`, then `rounds` rounds in which each racer in turn runs its batch back to back and drains. Interleaved
 * rounds make a burst of load from elsewhere on the machine hit every racer alike; the median round is reported.
 */
export async function race(racers: Racer[], budgetMs: number, rounds = 5): Promise<number[]> {
  const sized = [];
  for (const r of racers) {
    r.run();
    await r.drain();
    const t0 = performance.now();
    r.run();
    await r.drain();
    sized.push({ r, n: Math.max(1, Math.min(50, Math.ceil(budgetMs / (performance.now() - t0)))), samples: [] as number[] });
  }
  for (let round = 0; round < rounds; round++) {
    for (const x of sized) {
      const t0 = performance.now();
      for (let i = 0; i < x.n; i++) x.r.run();
      await x.r.drain();
      x.samples.push((performance.now() - t0) / x.n);
    }
  }
  return sized.map((x) => x.samples.sort((p, q) => p - q)[rounds >> 1]!);
}
