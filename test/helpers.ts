// Test helpers: device setup, seeded random data, float64 comparisons and gradient checks by finite differences.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect } from 'vitest';
import { init, parseSafetensors, tensor, toFloat32, type Tensor } from '../src/index.js';
import { readCorpus, bundledCorpusPath } from '../datasets/corpus.js';
import { mulberry32 } from './reference/random.js';

/** A case folder of ../shared/fixtures/hf (Hugging Face reference outputs). */
export const hfFixture = (name: string): string => path.join(fileURLToPath(new URL('../../shared/fixtures/hf', import.meta.url)), name);

/** The F32 tensors of a fixture's safetensors file (expected outputs or gradients) by name, as float64. */
export function fixtureTensors(name: string, file = 'expected.safetensors'): Map<string, Float64Array> {
  const { tensors } = parseSafetensors(new Uint8Array(readFileSync(path.join(hfFixture(name), file))));
  return new Map([...tensors].map(([k, v]) => [k, Float64Array.from(toFloat32(v))]));
}

/**
 * The gradients left by backward() against a fixture's grads.safetensors: the same parameter names, and each
 * within 1e-3 of that tensor's largest gradient (max |got - want| <= 1e-3 · max |want|).
 */
export async function expectFixtureGrads(named: [string, Tensor][], fixture: string): Promise<void> {
  const grads = fixtureTensors(fixture, 'grads.safetensors');
  const params = new Map(named);
  expect([...params.keys()].sort()).toEqual([...grads.keys()].sort());
  for (const [name, g] of grads) {
    const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expectClose(await values(params.get(name)!.grad!), g, { atol: 1e-3 * scale, rtol: 0 }, `d loss / d ${name}`);
  }
}

/** An output stream for CLI commands that keeps what is written (not a TTY, so progress prints plain lines). */
export function sink(): NodeJS.WriteStream & { text: string } {
  const s = { text: '', isTTY: false, write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

/** Opens the WebGPU device once per test file. Fails (never skips) when there is no adapter. */
export function useGpu(): void {
  beforeAll(async () => {
    await init();
  });
}

export { mulberry32 };

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const next = mulberry32(seed);
  return Float64Array.from({ length: n }, () => lo + next() * (hi - lo));
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The float32 values a GPU tensor made from `x` really holds, as float64 (so references see the same inputs). */
export function f32(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float32Array.from(x as ArrayLike<number>));
}

export async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

/** |actual - expected| <= atol + rtol |expected| elementwise; reports the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol: number }, what = 'values'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.fail(`${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

export interface GradCheckInput {
  shape: number[];
  /** Defaults to uniform [-1, 1). */
  data?: ArrayLike<number>;
  /** i32 inputs (ids) get no gradient. */
  dtype?: 'f32' | 'i32';
  requiresGrad?: boolean;
}

/**
 * Runs `gpu` on float32 tensors and checks, against the float64 reference `ref`:
 *   1. the forward output, and
 *   2. every input gradient from backward(), against central finite differences of
 *      L(x) = sum(ref(x) * R) for a random R, in float64 (h = 1e-6): the oracle nobody here tuned.
 */
export async function gradCheck(opts: {
  inputs: GradCheckInput[];
  gpu: (...xs: Tensor[]) => Tensor;
  ref: (...xs: Float64Array[]) => Float64Array;
  seed?: number;
  forwardTol?: { atol: number; rtol: number };
  gradTol?: { atol: number; rtol: number };
  name?: string;
}): Promise<void> {
  const seed = opts.seed ?? 1;
  const name = opts.name ?? 'op';
  const xs = opts.inputs.map((inp, i) =>
    inp.dtype === 'i32' ? Float64Array.from(inp.data!) : f32(inp.data ?? rand(numel(inp.shape), seed * 101 + i)),
  );
  const ts = opts.inputs.map((inp, i) =>
    inp.dtype === 'i32'
      ? tensor(Int32Array.from(xs[i]!), inp.shape, { dtype: 'i32' })
      : tensor(Float32Array.from(xs[i]!), inp.shape, { requiresGrad: inp.requiresGrad ?? true }),
  );
  const y = opts.gpu(...ts);
  const expected = opts.ref(...xs);
  expectClose(await values(y), expected, opts.forwardTol ?? { atol: 1e-5, rtol: 1e-5 }, `${name} forward`);

  const R = f32(rand(expected.length, seed * 7 + 3));
  y.backward(tensor(Float32Array.from(R), y.shape));
  const loss = (inputs: Float64Array[]): number => {
    const out = opts.ref(...inputs);
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i]! * R[i]!;
    return s;
  };
  for (let i = 0; i < ts.length; i++) {
    const inp = opts.inputs[i]!;
    if (inp.dtype === 'i32' || inp.requiresGrad === false) continue;
    const grad = ts[i]!.grad;
    expect(grad, `${name}: input ${i} got no gradient`).not.toBeNull();
    const fd = new Float64Array(xs[i]!.length);
    for (let j = 0; j < fd.length; j++) {
      const x = xs[i]!;
      const orig = x[j]!;
      const h = 1e-6 * Math.max(1, Math.abs(orig));
      x[j] = orig + h;
      const up = loss(xs);
      x[j] = orig - h;
      const down = loss(xs);
      x[j] = orig;
      fd[j] = (up - down) / (2 * h);
    }
    expectClose(await values(grad!), fd, opts.gradTol ?? { atol: 1e-4, rtol: 1e-3 }, `${name} d/dinput${i}`);
  }
  for (const t of ts) t.dispose();
  y.dispose();
}

/**
 * A tiny GPT2-Chinese run in `dir`: the bundled corpus's first 10 articles as train.json and a 1-layer, 32-wide
 * config.json; returns the `train` flags for them (2 epochs of batch 2, n_ctx 32). Dropout stays on (0.1).
 */
export async function tinyTrainRun(dir: string): Promise<string[]> {
  const poems = (await readCorpus(bundledCorpusPath())).slice(0, 10);
  writeFileSync(path.join(dir, 'train.json'), JSON.stringify(poems));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 32, vocab_size: 13317 }));
  return [
    '--model-config', path.join(dir, 'config.json'),
    '--raw-data-path', path.join(dir, 'train.json'),
    '--epochs', '2', '--batch-size', '2', '--stride', '32', '--num-pieces', '2', '--min-length', '10',
    '--warmup-steps', '3', '--lr', '2e-3',
  ];
}
