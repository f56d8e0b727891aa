// Layer norm against a float64 reference; dx, dweight and dbias by finite differences, and deterministic parameter gradients.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { layerNorm, layerNormBackward } from './reference/rows.js';
import { expectClose, f32, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

const FWD = { atol: 1e-5, rtol: 1e-5 };

describe('layerNorm forward', () => {
  // [N, C]: C = 1 (y = bias), tiny, GPT-2's 768, longer than a workgroup; 1 row and odd row counts.
  // 1537 and 9001 take the wider workgroups (64 and 256 invocations of layerNormLayout), 9001 with 36 values each.
  const CASES: number[][] = [[3, 1], [1, 5], [7, 5], [5, 257], [3, 768], [2, 1537], [1, 9001], [2, 3, 7]];

  it('matches the float64 reference with and without weight/bias, for two eps', async () => {
    for (const shape of CASES) {
      const C = shape[shape.length - 1]!;
      const data = f32(rand(numel(shape), numel(shape), -2, 2));
      const wData = f32(rand(C, C + 1, 0.5, 1.5));
      const bData = f32(rand(C, C + 2, -1, 1));
      const x = w.tensor(Float32Array.from(data), shape);
      const weight = w.tensor(Float32Array.from(wData), [C]);
      const bias = w.tensor(Float32Array.from(bData), [C]);
      for (const eps of [1e-5, 0.1]) {
        for (const [affine, wt, bt] of [['w,b', weight, bias], ['w', weight, null], ['b', null, bias], ['none', null, null]] as const) {
          const y = w.layerNorm(x, [C], wt, bt, eps);
          expect(y.shape).toEqual(shape);
          const expected = layerNorm(data, C, wt ? wData : null, bt ? bData : null, eps);
          expectClose(await values(y), expected, FWD, `layerNorm [${shape}] ${affine} eps ${eps}`);
          y.dispose();
        }
      }
      for (const t of [x, weight, bias]) t.dispose();
    }
  });

  it('is accurate when the mean is large next to the spread (shifted mean, two-pass variance)', async () => {
    const data = f32(rand(3 * 768, 4, 999, 1001));
    const x = w.tensor(Float32Array.from(data), [3, 768]);
    expectClose(await values(w.layerNorm(x, 768)), layerNorm(data, 768, null, null, 1e-5), FWD, 'layerNorm offset 1000');
  });

  it('normalises over several trailing dims when normalizedShape has them', async () => {
    const data = f32(rand(2 * 3 * 5, 6));
    const x = w.tensor(Float32Array.from(data), [2, 3, 5]);
    const weight = w.tensor(Float32Array.from(rand(15, 7)), [3, 5]);
    const y = w.layerNorm(x, [3, 5], weight);
    expectClose(await values(y), layerNorm(data, 15, f32(rand(15, 7)), null, 1e-5), FWD, 'layerNorm [3,5]');
  });
});

describe('layerNorm backward', () => {
  it('dx, dweight and dbias match finite differences', async () => {
    for (const shape of [[3, 5], [1, 1], [2, 257], [2, 3, 7]]) {
      const C = shape[shape.length - 1]!;
      const wData = rand(C, 31, 0.5, 1.5);
      await gradCheck({
        name: `layerNorm [${shape}] weight+bias`,
        inputs: [{ shape }, { shape: [C], data: wData }, { shape: [C] }],
        gpu: (x, weight, bias) => w.layerNorm(x, C, weight, bias),
        ref: (x, weight, bias) => layerNorm(x, C, weight, bias, 1e-5),
      });
    }
    await gradCheck({
      name: 'layerNorm [4,6] no affine, eps 0.1',
      inputs: [{ shape: [4, 6] }],
      gpu: (x) => w.layerNorm(x, [6], null, null, 0.1),
      ref: (x) => layerNorm(x, 6, null, null, 0.1),
    });
    await gradCheck({
      name: 'layerNorm [4,6] weight only',
      inputs: [{ shape: [4, 6] }, { shape: [6] }],
      gpu: (x, weight) => w.layerNorm(x, 6, weight),
      ref: (x, weight) => layerNorm(x, 6, weight, null, 1e-5),
    });
    await gradCheck({
      name: 'layerNorm [4,6] bias only, x constant',
      inputs: [{ shape: [4, 6], requiresGrad: false }, { shape: [6] }],
      gpu: (x, bias) => w.layerNorm(x, 6, null, bias),
      ref: (x, bias) => layerNorm(x, 6, null, bias, 1e-5),
    });
    await gradCheck({
      name: 'layerNorm [2,3,5] over [3,5]',
      inputs: [{ shape: [2, 3, 5] }, { shape: [3, 5] }, { shape: [3, 5] }],
      gpu: (x, weight, bias) => w.layerNorm(x, [3, 5], weight, bias),
      ref: (x, weight, bias) => layerNorm(x, 15, weight, bias, 1e-5),
    });
  });

  it('dx, dweight and dbias match the analytic float64 gradient for every workgroup layout, rows of 5 to 9001', async () => {
    for (const [N, C] of [[3, 5], [4, 768], [3, 1537], [2, 9001]] as const) {
      const data = f32(rand(N * C, C, -2, 2));
      const wData = f32(rand(C, C + 1, 0.5, 1.5));
      const dy = f32(rand(N * C, C + 2, -1, 1));
      const x = w.tensor(Float32Array.from(data), [N, C], { requiresGrad: true });
      const weight = w.tensor(Float32Array.from(wData), [C], { requiresGrad: true });
      const bias = w.tensor(new Float32Array(C), [C], { requiresGrad: true });
      w.layerNorm(x, C, weight, bias).backward(w.tensor(Float32Array.from(dy), [N, C]));
      const want = layerNormBackward(data, wData, dy, C, 1e-5);
      // dx = rstd·(ghat - mean(ghat) - xhat·mean(ghat·xhat)): f32 row means over C terms of size ~1.
      expectClose(await values(x.grad!), want.dx, { atol: 1e-5, rtol: 1e-4 }, `dx [${N}, ${C}]`);
      expectClose(await values(weight.grad!), want.dw, { atol: 1e-5, rtol: 1e-5 }, `dweight [${N}, ${C}]`);
      expectClose(await values(bias.grad!), want.db, { atol: 1e-5, rtol: 1e-5 }, `dbias [${N}, ${C}]`);
      for (const t of [x, weight, bias]) t.dispose();
    }
  });

  it('dweight and dbias over many row blocks match float64 sums and are bit-identical run to run', async () => {
    // 2101 rows: 66 blocks of 32 rows, the last one partial.
    const [N, C] = [2101, 67];
    const xData = f32(rand(N * C, 41, -2, 2));
    const gData = f32(rand(N * C, 42));
    const wData = f32(rand(C, 43));
    const run = async (): Promise<[Float64Array, Float64Array]> => {
      const x = w.tensor(Float32Array.from(xData), [N, C]);
      const weight = w.tensor(Float32Array.from(wData), [C], { requiresGrad: true });
      const bias = w.zeros([C], { requiresGrad: true });
      w.layerNorm(x, C, weight, bias).backward(w.tensor(Float32Array.from(gData), [N, C]));
      const grads: [Float64Array, Float64Array] = [await values(weight.grad!), await values(bias.grad!)];
      for (const t of [x, weight, bias]) t.dispose();
      return grads;
    };
    const [dw, db] = await run();
    const [dw2, db2] = await run();
    expect(Array.from(dw2)).toEqual(Array.from(dw));
    expect(Array.from(db2)).toEqual(Array.from(db));

    // dweight = sum_rows g * xhat, dbias = sum_rows g, in float64 from the same float32 inputs.
    const xhat = layerNorm(xData, C, null, null, 1e-5);
    const refW = new Float64Array(C);
    const refB = new Float64Array(C);
    for (let i = 0; i < N * C; i++) {
      refW[i % C]! += gData[i]! * xhat[i]!;
      refB[i % C]! += gData[i]!;
    }
    // Sums of 2101 terms of size ~1: float32 rounding grows to ~1e-5 of the terms' magnitude sum (~1000).
    expectClose(dw, refW, { atol: 1e-4, rtol: 1e-5 }, 'dweight');
    expectClose(db, refB, { atol: 1e-4, rtol: 1e-5 }, 'dbias');
  });
});

describe('layerNorm: bad input and memory', () => {
  it('rejects shape and dtype mismatches before any GPU work, naming the shapes', () => {
    const x = w.zeros([2, 5, 4]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.layerNorm(x, [768])).toThrow(/layerNorm: normalizedShape \[768\] must be a non-empty suffix of the shape of x \[2,5,4\]/);
    expect(() => w.layerNorm(x, [2, 5, 4, 1])).toThrow(/normalizedShape \[2,5,4,1\] must be a non-empty suffix/);
    expect(() => w.layerNorm(x, [])).toThrow(/normalizedShape \[\] must be a non-empty suffix/);
    expect(() => w.layerNorm(x, 4, w.zeros([5]))).toThrow(/layerNorm: weight \[5\] must have the shape normalizedShape \[4\]/);
    expect(() => w.layerNorm(x, 4, null, w.zeros([1, 4]))).toThrow(/layerNorm: bias \[1,4\] must have the shape/);
    expect(() => w.layerNorm(x, 4, w.zeros([4], { dtype: 'i32' }))).toThrow(/layerNorm: expected f32 for weight, got i32/);
    expect(() => w.layerNorm(w.zeros([2, 4], { dtype: 'i32' }), 4)).toThrow(/layerNorm: expected f32 for x, got i32/);
    expect(() => w.layerNorm(x, 4, null, null, -1)).toThrow(/layerNorm: eps must be a finite number >= 0/);
    expect(w.runtime().stats.dispatches).toBe(before);
  });

  it('forward + backward inside tidy() free mean, rstd and the partial sums', async () => {
    const x = w.tensor(Float32Array.from(rand(70 * 9, 5)), [70, 9], { requiresGrad: true });
    const weight = w.tensor(Float32Array.from(rand(9, 6)), [9], { requiresGrad: true });
    const bias = w.tensor(Float32Array.from(rand(9, 7)), [9], { requiresGrad: true });
    const base = w.liveBuffers();
    w.tidy(() => {
      w.sum(w.mul(w.layerNorm(x, 9, weight, bias), w.layerNorm(x, 9, weight))).backward();
    });
    expect(w.liveBuffers()).toBe(base + 3);
    await w.sync();
    for (const t of [x, weight, bias]) t.grad!.dispose();
    expect(w.liveBuffers()).toBe(base);
  });
});
