// Reductions (sum, mean, max over axes) and sumToShape against float64 references; gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { reduce } from './reference/elementwise.js';
import { expectClose, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

// [shape, dims]: last axis (row kernel), inner axes (column kernel), several axes, all axes, size-1 and long rows.
const CASES: [number[], number | number[] | undefined][] = [
  [[7], 0],
  [[3, 5], -1],
  [[3, 5], 0],
  [[2, 3, 17], 1],
  [[2, 3, 17], [0, 2]],
  [[2, 3, 17], [1, 2]],
  [[4, 1, 3], undefined],
  [[1, 1000], 1],
  [[5, 1], 1],
];

function axesOf(shape: number[], dim: number | number[] | undefined): number[] {
  const list = dim === undefined ? shape.map((_, i) => i) : typeof dim === 'number' ? [dim] : dim;
  return list.map((d) => (d < 0 ? d + shape.length : d));
}

function keptShape(shape: number[], axes: number[], keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

describe('sum and mean', () => {
  for (const [shape, dim] of CASES) {
    for (const keepdim of [false, true]) {
      it(`x [${shape}] over ${JSON.stringify(dim ?? 'all')}${keepdim ? ' keepdim' : ''}`, async () => {
        const axes = axesOf(shape, dim);
        const R = axes.reduce((n, a) => n * shape[a]!, 1);
        const refSum = (x: Float64Array): Float64Array => reduce(x, shape, axes, (a, v) => a + v, 0);
        await gradCheck({
          name: 'sum',
          inputs: [{ shape }],
          gpu: (x) => {
            const y = w.sum(x, dim, keepdim);
            expect(y.shape).toEqual(keptShape(shape, axes, keepdim));
            return y;
          },
          ref: refSum,
        });
        await gradCheck({ name: 'mean', inputs: [{ shape }], gpu: (x) => w.mean(x, dim, keepdim), ref: (x) => refSum(x).map((v) => v / R) });
      });
    }
  }
});

describe('max', () => {
  for (const [shape, dim] of CASES.filter(([, d]) => !Array.isArray(d) || d.every((v, i) => i === 0 || v === d[i - 1]! + 1))) {
    it(`x [${shape}] over ${JSON.stringify(dim ?? 'all')}: values, and the gradient to the arg-max`, async () => {
      const axes = axesOf(shape, dim);
      // Distinct values (a shuffled ramp), so the arg-max is unique and finite differences are exact.
      const n = numel(shape);
      const r = rand(n, 77);
      const order = [...Array(n).keys()].sort((a, b) => r[a]! - r[b]!);
      const data = new Float64Array(n);
      order.forEach((k, rank) => (data[k] = (rank - n / 2) / 8));
      await gradCheck({
        name: 'max',
        inputs: [{ shape, data }],
        gpu: (x) => w.max(x, dim),
        ref: (x) => reduce(x, shape, axes, Math.max, -Infinity),
      });
    });
  }

  it('ties send the gradient to the first maximal element only', async () => {
    const x = w.tensor([[1, 3, 3], [2, 2, 0]], undefined, { requiresGrad: true });
    w.tidy(() => w.sum(w.max(x, 1)).backward());
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 1, 0, 1, 0, 0]);
    x.dispose();
  });

  it('rejects non-adjacent dims and an empty reduction', () => {
    const x = w.zeros([2, 3, 4]);
    expect(() => w.max(x, [0, 2])).toThrow(/reduced dims must be adjacent/);
    expect(() => w.max(w.zeros([2, 0]), 1)).toThrow(/empty dimension/);
    expect(() => w.sum(x, 3)).toThrow(/dim 3 is out of range for a 3-d tensor/);
    x.dispose();
  });
});

describe('sumToShape', () => {
  it('sums a broadcast gradient back to each broadcastable shape, and returns g itself when nothing to do', async () => {
    const gShape = [2, 3, 4];
    const g = w.tensor(Float32Array.from(rand(24, 5)), gShape);
    const g64 = Float64Array.from(await g.toArray());
    for (const [shape, axes] of [[[4], [0, 1]], [[3, 1], [0, 2]], [[2, 1, 4], [1]], [[1, 1, 1], [0, 1, 2]], [[], [0, 1, 2]]] as [number[], number[]][]) {
      const r = w.sumToShape(g, shape);
      expect(r.shape).toEqual(shape);
      expectClose(await values(r), reduce(g64, gShape, axes, (a, v) => a + v, 0), { atol: 1e-6, rtol: 1e-6 }, `to [${shape}]`);
      r.dispose();
    }
    expect(w.sumToShape(g, gShape)).toBe(g);
    g.dispose();
  });
});
