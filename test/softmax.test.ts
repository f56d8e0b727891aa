// Softmax and log-softmax (with additive masks) against float64 references; gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { logSoftmax, softmax } from './reference/rows.js';
import { expectClose, f32, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

const FWD = { atol: 1e-6, rtol: 1e-5 };
const FINFO_MIN = -3.4028234663852886e38;

// Row lengths 1, 3, 7, a workgroup plus one, and rows longer than one workgroup; 1 row and odd row counts.
const SHAPES: number[][] = [[1, 1], [5, 1], [1, 3], [5, 7], [3, 257], [1, 1000], [3, 1537], [2, 3, 5, 7], [9]];

describe('softmax', () => {
  it('matches the float64 reference on awkward shapes, with logits far from 0 (needs the max subtracted)', async () => {
    for (const shape of SHAPES) {
      for (const scale of [1, 100]) {
        const data = f32(rand(numel(shape), shape.length * 1000 + numel(shape), -scale, scale));
        const x = w.tensor(Float32Array.from(data), shape);
        const y = w.softmax(x);
        expect(y.shape).toEqual(shape);
        expectClose(await values(y), softmax(data, shape), FWD, `softmax [${shape}] scale ${scale}`);
        x.dispose();
        y.dispose();
      }
    }
  });

  it('logSoftmax matches the float64 reference on awkward shapes', async () => {
    for (const shape of SHAPES) {
      const data = f32(rand(numel(shape), numel(shape) + 7, -30, 30));
      const x = w.tensor(Float32Array.from(data), shape);
      const y = w.logSoftmax(x, shape.length - 1);
      // Log-probabilities reach about -60 here: an f32 ulp there is 4e-6.
      expectClose(await values(y), logSoftmax(data, shape[shape.length - 1]!), { atol: 1e-5, rtol: 1e-6 }, `logSoftmax [${shape}]`);
      x.dispose();
      y.dispose();
    }
  });

  it('gradients match finite differences (rows of 1, 7 and 257)', async () => {
    for (const shape of [[3, 1], [3, 7], [2, 257]]) {
      await gradCheck({ name: `softmax [${shape}]`, inputs: [{ shape }], gpu: (x) => w.softmax(x), ref: (x) => softmax(x, shape) });
      const C = shape[1]!;
      await gradCheck({ name: `logSoftmax [${shape}]`, inputs: [{ shape }], gpu: (x) => w.logSoftmax(x), ref: (x) => logSoftmax(x, C) });
    }
  });
});

/** A mask of `shape` holding 0 or `neg`, with position i masked when pick(i) is true. */
function maskData(shape: number[], pick: (i: number) => boolean, neg = -1e30): Float64Array {
  return Float64Array.from({ length: numel(shape) }, (_, i) => (pick(i) ? neg : 0));
}

/** A causal mask [T, T]: key j is hidden from query i when j > i. */
function causal(T: number, neg = -1e30): Float64Array {
  return maskData([T, T], (i) => i % T > Math.floor(i / T), neg);
}

describe('softmax with an additive mask', () => {
  // scores [B, NH, T, T] = [2, 3, 5, 5]; masks of each broadcast shape attention uses.
  const xs = [2, 3, 5, 5];
  const CASES: [string, number[], Float64Array][] = [
    ['causal [T,T]', [5, 5], causal(5)],
    ['padding [B,1,1,T]', [2, 1, 1, 5], maskData([2, 1, 1, 5], (i) => i === 3 || i === 9)],
    ['row [T]', [5], maskData([5], (i) => i === 0)],
    ['causal + padding [B,1,T,T] with finfo.min', [2, 1, 5, 5], maskData([2, 1, 5, 5], (i) => i % 5 > Math.floor(i / 5) % 5 || i % 5 === 0, FINFO_MIN)],
    ['full [B,NH,T,T]', xs, Float64Array.from(rand(numel(xs), 4, -3, 3))],
  ];

  it('matches the float64 reference for every broadcast shape; masked entries are exactly 0', async () => {
    for (const [name, ms, m] of CASES) {
      const data = f32(rand(numel(xs), 11, -4, 4));
      const mf = f32(m);
      const x = w.tensor(Float32Array.from(data), xs);
      const mask = w.tensor(Float32Array.from(mf), ms);
      const y = await values(w.softmax(x, -1, mask));
      const expected = softmax(data, xs, mf, ms);
      expectClose(y, expected, FWD, `softmax mask ${name}`);
      for (let i = 0; i < y.length; i++) if (expected[i] === 0) expect(y[i], `${name}: masked element ${i}`).toBe(0);
    }
  });

  it('a fully masked row is uniform (never NaN), also when x + mask overflows to -inf', async () => {
    // Row 0 hides every key. Rows 1 and 2 mask keys where x itself is -3e38, so x + finfo.min = -inf in f32:
    // row 1 keeps two keys, row 2 is all -inf (clamped to -FLT_MAX, hence uniform).
    const H = -3e38;
    const x = w.tensor(Float32Array.from([1, 2, 3, 4, H, 0.5, H, 1, H, H, H, H]), [3, 4]);
    const M = FINFO_MIN;
    const mask = w.tensor(Float32Array.from([M, M, M, M, M, 0, M, 0, M, M, M, M]), [3, 4]);
    const y = await values(w.softmax(x, -1, mask));
    const e = Math.exp(0.5 - 1);
    expectClose(y, [0.25, 0.25, 0.25, 0.25, 0, e / (1 + e), 0, 1 / (1 + e), 0.25, 0.25, 0.25, 0.25], FWD, 'fully masked rows');
  });

  it('the gradient of a fully masked row is y * (g - sum g y) with y uniform', async () => {
    const x = w.tensor(Float32Array.from(rand(6, 3)), [1, 6], { requiresGrad: true });
    const mask = w.full([6], -1e30);
    const y = w.softmax(x, -1, mask);
    const g = f32(rand(6, 5));
    y.backward(w.tensor(Float32Array.from(g), [1, 6]));
    const dot = g.reduce((s, v) => s + v / 6, 0);
    expectClose(await values(x.grad!), Array.from(g, (v) => (v - dot) / 6), FWD, 'fully masked dx');
  });

  it('gradients for x and for the mask (summed over its broadcast dims) match finite differences', async () => {
    const shape = [2, 3, 5];
    // Partly masked rows only: finite differences cannot see through a fully masked row (x + 1e30 rounds x away).
    const masks: [number[], Float64Array][] = [
      [[3, 5], Float64Array.from(rand(15, 8, -2, 2), (v, i) => (i % 5 === 4 ? -1e30 : v))],
      [[5], Float64Array.from(rand(5, 9, -2, 2))],
      [[2, 1, 5], Float64Array.from(rand(10, 10, -2, 2), (v, i) => (i === 1 ? -1e30 : v))],
      [shape, Float64Array.from(rand(30, 12, -2, 2))],
    ];
    for (const [ms, m] of masks) {
      await gradCheck({
        name: `softmax x[${shape}] mask[${ms}]`,
        inputs: [{ shape }, { shape: ms, data: m }],
        gpu: (x, mask) => w.softmax(x, -1, mask),
        ref: (x, mask) => softmax(x, shape, mask, ms),
      });
    }
    // A constant mask (no gradient wanted) still gives x its gradient.
    const ms = [3, 5];
    await gradCheck({
      name: 'softmax with a constant mask',
      inputs: [{ shape }, { shape: ms, data: masks[0]![1], requiresGrad: false }],
      gpu: (x, mask) => w.softmax(x, -1, mask),
      ref: (x, mask) => softmax(x, shape, mask, ms),
    });
  });
});

describe('softmax: bad input and memory', () => {
  it('rejects bad dims, masks and dtypes before any GPU work', () => {
    const x = w.zeros([2, 3, 4]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.softmax(x, 1)).toThrow(/softmax: only the last dim is supported \(got dim 1 of x \[2,3,4\]\)/);
    expect(() => w.logSoftmax(x, 0)).toThrow(/logSoftmax: only the last dim/);
    expect(() => w.softmax(x, 3)).toThrow(/softmax: dim 3 is out of range/);
    expect(() => w.softmax(x, -1, w.zeros([3]))).toThrow(/softmax: shapes \[2,3,4\] and \[3\] cannot be broadcast/);
    expect(() => w.softmax(x, -1, w.zeros([5, 1, 1, 4]))).toThrow(/softmax: mask \[5,1,1,4\] must broadcast to the shape of x \[2,3,4\]/);
    expect(() => w.softmax(w.zeros([], { dtype: 'f32' }))).toThrow(/softmax: x must have at least one dimension/);
    expect(() => w.softmax(w.zeros([2], { dtype: 'i32' }))).toThrow(/softmax: expected f32 for x, got i32/);
    expect(() => w.softmax(x, -1, w.zeros([4], { dtype: 'i32' }))).toThrow(/softmax: expected f32 for mask, got i32/);
    expect(w.runtime().stats.dispatches).toBe(before);
  });

  it('forward + backward inside tidy() leave only the gradients alive', async () => {
    const x = w.tensor(Float32Array.from(rand(40, 1)), [2, 4, 5], { requiresGrad: true });
    const mask = w.tensor(Float32Array.from([0, 0, 0, 0, -1e30]), [5], { requiresGrad: true });
    const base = w.liveBuffers();
    w.tidy(() => {
      w.sum(w.mul(w.softmax(x, -1, mask), w.logSoftmax(x))).backward();
    });
    expect(w.liveBuffers()).toBe(base + 2);
    await w.sync();
    x.grad!.dispose();
    mask.grad!.dispose();
    expect(w.liveBuffers()).toBe(base);
  });
});
