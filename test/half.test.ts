// f16: casts against a float64 reference bit for bit (every half, rounding ties, overflow, subnormals), and matmul with f16 operands.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { geluTanh } from './reference/elementwise.js';
import { halfBits, halfValue, roundHalf } from './reference/half.js';
import { matmulRef } from './reference/matmul.js';
import { expectClose, numel, rand, useGpu, values } from './helpers.js';

useGpu();

/** Expects the same numbers, -0 and NaN included (Object.is). */
function expectSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) expect.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** An f16 tensor holding the halves nearest to `x`. */
function half(x: ArrayLike<number>, shape: number[], requiresGrad = false): w.Tensor {
  return w.tensor(Uint16Array.from(Array.from(x, halfBits)), shape, { requiresGrad });
}

describe('cast', () => {
  it('f16 -> f32 is exact for all 65536 halves', async () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const y = w.cast(w.tensor(bits, [65536]), 'f32');
    expect(y.dtype).toBe('f32');
    expectSame(await y.toArray(), Array.from(bits, halfValue), 'f16 -> f32');
  });

  it('f32 -> f16 rounds to nearest even: ties, overflow, subnormals, signed zeros, NaN, and random values of every scale', async () => {
    const specials = [
      0, -0, 1, -1, 65504, 65519.99609375, 65520, -65520, 1e10, Infinity, -Infinity, NaN,
      2 ** -14, 2 ** -24, 2 ** -25, -(2 ** -25), 3 * 2 ** -26, 5 * 2 ** -26, 2 ** -26, 1e-30,
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, 2048 + 1, 2048 + 3, 0.1, -0.3, 3.14159,
    ];
    const next = rand(4000, 7);
    const scales = Array.from(next, (u, i) => Math.fround(u * 2 ** ((i % 60) - 35))); // 2^-35 .. 2^24
    const x = Float32Array.from([...specials, ...scales]);
    const y = w.cast(w.tensor(x, [x.length]), 'f16');
    expect(y.dtype).toBe('f16');
    expectSame(await y.toArray(), Array.from(x, roundHalf), 'f32 -> f16');
  });

  it('an odd length packs its last element alone, and the gradient goes back through both casts', async () => {
    const x = w.tensor(Float32Array.from(rand(7, 3, -100, 100)), [7], { requiresGrad: true });
    const y = w.cast(w.cast(x, 'f16'), 'f32');
    const g = Float32Array.from(rand(7, 4, -10, 10));
    y.backward(w.tensor(g, [7]));
    expectSame(await y.toArray(), Array.from(await x.toArray(), roundHalf), 'round trip');
    expectSame(await x.grad!.toArray(), Array.from(g, roundHalf), 'gradient');
    expect(w.cast(x, 'f32')).toBe(x);
    x.dispose();
  });

  it('a tensor over one binding converts in chunks, to the same bits', async () => {
    const x = Float32Array.from(rand(70_003, 9, -70_000, 70_000));
    const once = async (): Promise<Float32Array[]> => {
      const t = w.tensor(x, [70_003]);
      const h = w.cast(t, 'f16');
      const back = w.cast(h, 'f32');
      const out = [(await h.toArray()) as Float32Array, (await back.toArray()) as Float32Array];
      for (const u of [t, h, back]) u.dispose();
      return out;
    };
    const whole = await once();
    expectSame(whole[0]!, Array.from(x, roundHalf), 'unsplit');
    const limit = w.runtime().bindingLimit;
    w.runtime().setBindingLimit(64 * 1024); // 16384 f32 elements: five chunks
    try {
      const split = await once();
      expectSame(split[0]!, whole[0]!, 'to f16 in chunks');
      expectSame(split[1]!, whole[1]!, 'to f32 in chunks');
    } finally {
      w.runtime().setBindingLimit(limit);
    }
    expect(() => w.cast(w.tensor(Int32Array.from([1]), [1]), 'f16')).toThrow('cast: [1] is i32; only f32 and f16 convert');
  });
});

/** Forward tolerance for K-long f32 dot products (as test/matmul.test.ts). */
const tol = (K: number): { atol: number; rtol: number } => ({ atol: 1e-5 * Math.max(1, (K / 64) ** 1.5), rtol: 1e-5 });

describe('matmul with f16 operands (read exactly, summed in f32)', () => {
  const cases: [number, number, number, boolean, boolean, 'both' | 'a' | 'b'][] = [
    [1, 1, 1, false, false, 'both'],
    [7, 13, 5, false, false, 'both'],
    [65, 33, 129, true, false, 'both'],
    [131, 31, 257, false, true, 'both'],
    [3, 257, 2, true, true, 'a'],
    [128, 9, 129, false, true, 'b'],
  ];
  let seed = 100;
  for (const [M, K, N, transA, transB, which] of cases) {
    it(`${M}×${K}×${N}${transA ? ', a transposed' : ''}${transB ? ', b transposed' : ''}, ${which === 'both' ? 'both f16' : `only ${which} f16`}`, async () => {
      const as = transA ? [K, M] : [M, K];
      const bs = transB ? [N, K] : [K, N];
      const ha = which !== 'b';
      const hb = which !== 'a';
      // The f16 operands hold halves; the reference sees exactly those values.
      const ad = Array.from(rand(numel(as), seed++), (v) => (ha ? roundHalf(v) : Math.fround(v)));
      const bd = Array.from(rand(numel(bs), seed++), (v) => (hb ? roundHalf(v) : Math.fround(v)));
      const a = ha ? half(ad, as, true) : w.tensor(Float32Array.from(ad), as, { requiresGrad: true });
      const b = hb ? half(bd, bs, true) : w.tensor(Float32Array.from(bd), bs, { requiresGrad: true });
      const y = w.matmul(a, b, { transA, transB });
      expect(y.dtype).toBe('f32');
      const A = Float64Array.from(ad);
      const B = Float64Array.from(bd);
      expectClose(await values(y), matmulRef({ data: A, shape: as, trans: transA }, { data: B, shape: bs, trans: transB }).data, tol(K), 'forward');

      // dA = dC·op(B)ᵀ, dB = op(A)ᵀ·dC in float64, then (for an f16 operand) rounded to f16: within half an f16
      // ulp (2^-11 relative) plus the f32 product's own error.
      const G = Float64Array.from(rand(M * N, seed++), Math.fround);
      y.backward(w.tensor(Float32Array.from(G), [M, N]));
      const dA = matmulRef({ data: G, shape: [M, N] }, { data: B, shape: bs, trans: !transB }).data; // [M, K]
      const dB = matmulRef({ data: A, shape: as, trans: !transA }, { data: G, shape: [M, N] }).data; // [K, N]
      // x [r, c] transposed to [c, r]
      const t = (x: Float64Array, r: number, c: number): Float64Array => Float64Array.from({ length: r * c }, (_, i) => x[(i % r) * c + Math.floor(i / r)]!);
      const gradTol = (n: number, isHalf: boolean): { atol: number; rtol: number } => ({ atol: tol(n).atol, rtol: isHalf ? 2 ** -11 : 1e-5 });
      expect(a.grad!.dtype).toBe(ha ? 'f16' : 'f32');
      expect(b.grad!.dtype).toBe(hb ? 'f16' : 'f32');
      expectClose(await values(a.grad!), transA ? t(dA, M, K) : dA, gradTol(N, ha), 'dA');
      expectClose(await values(b.grad!), transB ? t(dB, K, N) : dB, gradTol(M, hb), 'dB');
    });
  }

  it('split into blocks when operands outgrow one binding: the same bits as one launch', async () => {
    // [70, 300] · [300, 90] under a 16 KiB limit: A, B and C are each cut (every window base counts halves).
    for (const [transA, transB, which] of [[false, false, 'both'], [true, false, 'a'], [false, true, 'b'], [true, true, 'both']] as const) {
      const [M, K, N] = [70, 300, 90];
      const as = transA ? [K, M] : [M, K];
      const bs = transB ? [N, K] : [K, N];
      const ad = rand(numel(as), 900);
      const bd = rand(numel(bs), 901);
      const product = async (): Promise<Float32Array> => {
        const a = which === 'b' ? w.tensor(Float32Array.from(ad), as) : half(ad, as);
        const b = which === 'a' ? w.tensor(Float32Array.from(bd), bs) : half(bd, bs);
        const y = w.matmul(a, b, { transA, transB });
        const out = (await y.toArray()) as Float32Array;
        for (const t of [a, b, y]) t.dispose();
        return out;
      };
      const whole = await product();
      const limit = w.runtime().bindingLimit;
      w.runtime().setBindingLimit(16 * 1024);
      try {
        const before = w.runtime().stats.dispatches;
        const split = await product();
        expect(w.runtime().stats.dispatches - before, 'launched in blocks').toBeGreaterThan(1);
        expect(Array.from(split), `${transA ? 'aᵀ' : 'a'}·${transB ? 'bᵀ' : 'b'}, ${which} f16`).toEqual(Array.from(whole));
      } finally {
        w.runtime().setBindingLimit(limit);
      }
    }
  });

  it('linear with f16 input and weight, an f32 bias and a fused GELU', async () => {
    const [x, wt, bias] = [[2, 9, 24], [40, 24], [40]].map((s, i) => Array.from(rand(numel(s), 300 + i), roundHalf));
    const y = w.linear(half(x!, [2, 9, 24]), half(wt!, [40, 24]), w.tensor(Float32Array.from(bias!), [40]), { gelu: 'tanh' });
    const ref = matmulRef({ data: Float64Array.from(x!), shape: [2, 9, 24] }, { data: Float64Array.from(wt!), shape: [40, 24], trans: true }).data;
    expectClose(await values(y), ref.map((v, i) => geluTanh(v + bias![i % 40]!)), tol(24), 'gelu(x·Wᵀ + b)');
  });
});
