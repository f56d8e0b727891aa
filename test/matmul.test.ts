// matmul and linear against float64 references on awkward shapes, their gradients against finite differences, and their errors.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { linearRef, matmulRef } from './reference/matmul.js';
import { expectClose, f32, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

/**
 * Forward tolerance for dot products of length K. The kernel sums K float32 products in order; with inputs
 * in [-1, 1) the rounding error grows like sqrt(K)·u·Σ|a_k b_k| ≈ 1.5e-8·K^1.5 (u = 2^-24, E|ab| = 1/4;
 * the probabilistic bound of Higham & Mary, 2019), so the 1e-5 used elsewhere holds up to K = 64 and
 * grows as K^1.5 beyond.
 */
function tol(K: number): { atol: number; rtol: number } {
  return { atol: 1e-5 * Math.max(1, (K / 64) ** 1.5), rtol: 1e-5 };
}

let seed = 1;

/** Runs matmul on random data and checks shape and values against the float64 reference. */
async function checkMatmul(as: number[], bs: number[], opts: w.MatmulOptions = {}): Promise<void> {
  const a = f32(rand(numel(as), seed++));
  const b = f32(rand(numel(bs), seed++));
  const ref = matmulRef({ data: a, shape: as, trans: opts.transA }, { data: b, shape: bs, trans: opts.transB });
  const ta = w.tensor(Float32Array.from(a), as);
  const tb = w.tensor(Float32Array.from(b), bs);
  const y = w.matmul(ta, tb, opts);
  const what = `matmul [${as}]${opts.transA ? 'ᵀ' : ''} [${bs}]${opts.transB ? 'ᵀ' : ''}`;
  expect(y.shape, `${what}: shape`).toEqual(ref.shape);
  const K = opts.transA ? as[as.length - 2]! : as[as.length - 1]!;
  expectClose(await values(y), ref.data, tol(K), what);
  for (const t of [ta, tb, y]) t.dispose();
}

/** [M, K] · [K, N] as stored shapes for the given transposes. */
function stored(M: number, K: number, N: number, transA = false, transB = false): [number[], number[]] {
  return [transA ? [K, M] : [M, K], transB ? [N, K] : [K, N]];
}

// M×K×N. The default tiles are 128×128 with an 8-deep K slice, registers hold 4-wide groups: these straddle every
// boundary, include 1s and primes (test/matmul_tiles.test.ts runs the other tile shapes).
const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 1],
  [7, 13, 5],
  [65, 33, 129],
  [128, 1, 200],
  [127, 8, 128],
  [128, 9, 129],
  [131, 31, 257],
  [3, 257, 2],
];

describe('matmul forward', () => {
  it('2-D products on awkward sizes', async () => {
    for (const [M, K, N] of SIZES) await checkMatmul(...stored(M, K, N));
  });

  it('all four transpose combinations, on sizes that straddle the tiles', async () => {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const [M, K, N] of [[7, 13, 5], [131, 33, 129], [1, 5, 70]] as const) {
        await checkMatmul(...stored(M, K, N, transA, transB), { transA, transB });
      }
    }
  });

  it('batches: batch 1, equal batches, broadcast 2-D × 3-D, 3-D × 2-D and [2,1,..] × [1,3,..]', async () => {
    await checkMatmul([1, 7, 13], [1, 13, 5]);
    await checkMatmul([3, 130, 19], [3, 19, 133]);
    await checkMatmul([130, 19], [3, 19, 133]);
    await checkMatmul([3, 70, 19], [19, 66]);
    await checkMatmul([2, 5, 70, 19], [19, 66]);
    await checkMatmul([2, 1, 9, 11], [1, 3, 11, 4]);
    await checkMatmul([4, 1, 9, 11], [3, 11, 4]);
    await checkMatmul([2, 1, 11, 9], [1, 3, 4, 11], { transA: true, transB: true });
    await checkMatmul([3, 19, 70], [19, 66], { transA: true });
  });

  it('1-D operands follow torch.matmul: vector·vector, matrix·vector, vector·matrix, batched', async () => {
    await checkMatmul([13], [13]);
    await checkMatmul([7, 13], [13]);
    await checkMatmul([13], [13, 5]);
    await checkMatmul([2, 7, 13], [13]);
    await checkMatmul([13], [2, 13, 5]);
  });

  it('empty dims give empty results, and K = 0 gives zeros', async () => {
    const y = w.matmul(w.zeros([0, 3]), w.zeros([3, 4]));
    expect(y.shape).toEqual([0, 4]);
    const z = w.matmul(w.tensor(new Float32Array(0), [3, 0]), w.tensor(new Float32Array(0), [0, 2]));
    expect(z.shape).toEqual([3, 2]);
    expect(Array.from(await z.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('linear forward', () => {
  it('with and without bias, on 1-D, 2-D and 3-D inputs', async () => {
    for (const [xs, outF, withBias] of [
      [[5, 13], 7, true],
      [[5, 13], 7, false],
      [[2, 33, 70], 65, true],
      [[2, 33, 70], 65, false],
      [[13], 3, true],
      [[1, 1], 1, true],
    ] as [number[], number, boolean][]) {
      const inF = xs[xs.length - 1]!;
      const x = f32(rand(numel(xs), seed++));
      const wt = f32(rand(outF * inF, seed++));
      const bias = withBias ? f32(rand(outF, seed++)) : undefined;
      const inputs = [w.tensor(Float32Array.from(x), xs), w.tensor(Float32Array.from(wt), [outF, inF]), ...(bias ? [w.tensor(Float32Array.from(bias), [outF])] : [])];
      const y = w.linear(inputs[0]!, inputs[1]!, inputs[2]);
      expect(y.shape).toEqual([...xs.slice(0, -1), outF]);
      expectClose(await values(y), linearRef({ data: x, shape: xs }, { data: wt, shape: [outF, inF] }, bias), tol(inF), `linear [${xs}] -> ${outF}`);
      for (const t of [...inputs, y]) t.dispose();
    }
  });
});

describe('matmul backward (finite differences of the float64 reference)', () => {
  const ref = (as: number[], bs: number[], opts: w.MatmulOptions = {}) => (a: Float64Array, b: Float64Array) =>
    matmulRef({ data: a, shape: as, trans: opts.transA }, { data: b, shape: bs, trans: opts.transB }).data;

  it('2-D, every transpose combination, across tile boundaries', async () => {
    // Finite differences cost two reference products per input element, so the sizes stay small. In
    // [130, 2, 129] the gradient products dA = dC·Bᵀ ([130, 129]·[129, 2]) and dB = Aᵀ·dC
    // ([2, 130]·[130, 129]) straddle the 128-wide tiles and the 8-deep K slices although the forward's K is 2.
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const [M, K, N] of [[7, 13, 5], [130, 2, 129], [2, 17, 3], [1, 1, 1]] as const) {
        const [as, bs] = stored(M, K, N, transA, transB);
        await gradCheck({
          name: `matmul [${as}]${transA ? 'ᵀ' : ''} [${bs}]${transB ? 'ᵀ' : ''}`,
          inputs: [{ shape: as }, { shape: bs }],
          gpu: (a, b) => w.matmul(a, b, { transA, transB }),
          ref: ref(as, bs, { transA, transB }),
          forwardTol: tol(K),
          seed: seed++,
        });
      }
    }
  });

  it('broadcast batches: the broadcast operand gets the sum over the batch', async () => {
    // These reach every path of the launcher: batch folded into M ([3,9,11]·[11,4] forward and dA), folded
    // into K (its dB), summed in the kernel's accumulator ([9,11]·[3,11,4] dA, transA's dB), and kept and
    // summed dims in one launch ([2,1,..]·[1,3,..]).
    const cases: [number[], number[], w.MatmulOptions][] = [
      [[3, 9, 11], [3, 11, 4], {}],
      [[3, 9, 11], [11, 4], {}],
      [[2, 3, 9, 11], [4, 11], { transB: true }],
      [[9, 11], [3, 11, 4], {}],
      [[3, 11, 9], [11, 4], { transA: true }],
      [[2, 1, 9, 11], [1, 3, 11, 4], {}],
      [[2, 1, 11, 9], [1, 3, 4, 11], { transA: true, transB: true }],
      [[1, 9, 11], [1, 11, 4], {}],
      [[2, 13], [13], {}],
      [[13], [2, 13, 5], {}],
    ];
    for (const [as, bs, opts] of cases) {
      await gradCheck({
        name: `matmul [${as}]${opts.transA ? 'ᵀ' : ''} [${bs}]${opts.transB ? 'ᵀ' : ''}`,
        inputs: [{ shape: as }, { shape: bs }],
        gpu: (a, b) => w.matmul(a, b, opts),
        ref: ref(as, bs, opts),
        seed: seed++,
      });
    }
  });

  it('only the gradients that are asked for are computed', async () => {
    const as = [5, 7];
    const bs = [7, 3];
    await gradCheck({ name: 'matmul, a only', inputs: [{ shape: as }, { shape: bs, requiresGrad: false }], gpu: (a, b) => w.matmul(a, b), ref: ref(as, bs), seed: seed++ });
    const a = w.tensor(Float32Array.from(rand(35, 3)), as);
    const b = w.tensor(Float32Array.from(rand(21, 4)), bs, { requiresGrad: true });
    w.matmul(a, b).backward(w.ones([5, 3]));
    expect(a.grad).toBeNull();
    expect(b.grad?.shape).toEqual(bs);
  });
});

describe('linear backward', () => {
  for (const [xs, outF] of [[[5, 13], 7], [[2, 3, 11], 6], [[13], 4]] as [number[], number][]) {
    const inF = xs[xs.length - 1]!;
    const ws = [outF, inF];
    it(`input [${xs}], weight [${ws}]: input, weight and bias gradients`, async () => {
      await gradCheck({
        name: `linear [${xs}] bias`,
        inputs: [{ shape: xs }, { shape: ws }, { shape: [outF] }],
        gpu: (x, wt, b) => w.linear(x, wt, b),
        ref: (x, wt, b) => linearRef({ data: x, shape: xs }, { data: wt, shape: ws }, b),
        seed: seed++,
      });
      await gradCheck({
        name: `linear [${xs}] no bias`,
        inputs: [{ shape: xs }, { shape: ws }],
        gpu: (x, wt) => w.linear(x, wt),
        ref: (x, wt) => linearRef({ data: x, shape: xs }, { data: wt, shape: ws }),
        seed: seed++,
      });
    });
  }

  it('a 2-D weight under a 3-D input gets its gradient from one product, not a per-batch sum', () => {
    const x = w.tensor(Float32Array.from(rand(4 * 5 * 6, 1)), [4, 5, 6], { requiresGrad: true });
    const wt = w.tensor(Float32Array.from(rand(3 * 6, 2)), [3, 6], { requiresGrad: true });
    const b = w.tensor(Float32Array.from(rand(3, 3)), [3], { requiresGrad: true });
    const y = w.linear(x, wt, b);
    const before = w.runtime().stats.dispatches;
    y.backward(w.tensor(Float32Array.from(rand(4 * 5 * 3, 4)), [4, 5, 3]));
    // dx = dy·W, dW = dyᵀ·x, db = Σ dy: three launches in all.
    expect(w.runtime().stats.dispatches - before).toBe(3);
    expect(wt.grad?.shape).toEqual([3, 6]);
  });
});

describe('addmm (Conv1D: weight stored [in, out])', () => {
  // bias + x·W: the float64 product from matmulRef, then the bias added to every row.
  const addmmRef = (x: Float64Array, xs: number[], wt: Float64Array, ws: number[], b: Float64Array): Float64Array => {
    const y = matmulRef({ data: x, shape: xs }, { data: wt, shape: ws }).data;
    return y.map((v, i) => v + b[i % b.length]!);
  };
  for (const [xs, outF] of [[[5, 13], 7], [[2, 3, 11], 6], [[1, 130], 129]] as [number[], number][]) {
    const inF = xs[xs.length - 1]!;
    const ws = [inF, outF];
    it(`input [${xs}], weight [${ws}]: forward, and input, weight and bias gradients`, async () => {
      await gradCheck({
        name: `addmm [${xs}]`,
        inputs: [{ shape: [outF] }, { shape: xs }, { shape: ws }],
        gpu: (b, x, wt) => w.addmm(b, x, wt),
        ref: (b, x, wt) => addmmRef(x, xs, wt, ws, b),
        seed: seed++,
      });
    });
  }

  it('rejects a weight in the wrong layout, naming both shapes', () => {
    const x = w.zeros([2, 8]);
    expect(() => w.addmm(w.zeros([3]), x, w.zeros([3, 8]))).toThrow(/addmm: input \[2,8\] and weight \[3,8\] do not match/);
    expect(() => w.addmm(w.zeros([4]), x, w.zeros([8, 3]))).toThrow(/addmm: bias \[4\] must be \[3\]/);
  });
});

describe('errors', () => {
  it('shape mismatches throw before any GPU work, naming the op and both shapes', () => {
    const a = w.zeros([2, 3]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.matmul(a, w.zeros([4, 5]))).toThrow('matmul: a [2,3] and b [4,5] do not match (a has 3 columns, b has 4 rows)');
    expect(() => w.matmul(a, w.zeros([2, 5]), { transA: true, transB: true })).toThrow(
      'matmul: a [2,3] (read transposed: aᵀ) and b [2,5] (read transposed: bᵀ) do not match (aᵀ has 2 columns, bᵀ has 5 rows)',
    );
    expect(() => w.matmul(w.zeros([2, 4, 3]), w.zeros([3, 3, 5]))).toThrow(
      'matmul: the batch dims of a [2,4,3] and b [3,3,5] cannot be broadcast together ([2] vs [3], 2 vs 3)',
    );
    expect(() => w.matmul(w.zeros([3]), w.zeros([4]))).toThrow('matmul: a [3] and b [4] do not match (a has 3 columns, b has 4 rows)');
    expect(() => w.matmul(w.tensor(1), a)).toThrow(/matmul: a is a scalar/);
    expect(() => w.matmul(w.zeros([3]), a, { transA: true })).toThrow('matmul: transA needs a matrix, but a [3] is 1-D');
    expect(() => w.linear(w.zeros([4, 5]), w.zeros([3, 6]))).toThrow(
      'linear: input [4,5] and weight [3,6] do not match (input has 5 features in its last dim, weight has 6 in_features)',
    );
    expect(() => w.linear(w.zeros([4, 6]), w.zeros([3, 6]), w.zeros([4]))).toThrow('linear: bias [4] must be [3] for weight [3,6]');
    expect(() => w.linear(w.zeros([4, 6]), w.zeros([6]))).toThrow('linear: weight [6] must be 2-D');
    expect(w.runtime().stats.dispatches).toBe(before);
  });

  it('non-f32 operands throw a TypeError', () => {
    const ids = w.tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect(() => w.matmul(w.zeros([4, 2]), ids)).toThrow(TypeError);
    expect(() => w.matmul(w.zeros([4, 2]), ids)).toThrow('matmul: expected f32 or f16 for b, got i32 [2,3]');
    expect(() => w.linear(ids, w.zeros([4, 3]))).toThrow('linear: expected f32 or f16 for input, got i32 [2,3]');
  });
});
