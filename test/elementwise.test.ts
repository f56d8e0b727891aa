// Elementwise ops against float64 references, and their gradients against finite differences.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { binary, geluErf, geluTanh, map } from './reference/elementwise.js';
import { expectClose, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

const SHAPES: number[][] = [[1], [7], [3, 5], [2, 3, 17], [1, 1, 129], [4, 1, 3, 5], [70_001]];

const UNARY: [string, (x: w.Tensor) => w.Tensor, (v: number) => number, [number, number]][] = [
  ['neg', w.neg, (v) => -v, [-2, 2]],
  ['exp', w.exp, Math.exp, [-3, 3]],
  ['log', w.log, Math.log, [0.1, 4]],
  ['sqrt', w.sqrt, Math.sqrt, [0.1, 4]],
  ['tanh', w.tanh, Math.tanh, [-4, 4]],
  ['relu', w.relu, (v) => Math.max(v, 0), [-2, 2]],
  ['gelu erf', (x) => w.gelu(x), geluErf, [-4, 4]],
  ['gelu tanh', (x) => w.gelu(x, 'tanh'), geluTanh, [-4, 4]],
  ['pow 3', (x) => w.pow(x, 3), (v) => v ** 3, [-2, 2]],
  ['pow 0.5', (x) => w.pow(x, 0.5), Math.sqrt, [0.1, 3]],
  ['add scalar', (x) => w.add(x, 2.5), (v) => v + 2.5, [-2, 2]],
  ['sub scalar', (x) => w.sub(x, 2.5), (v) => v - 2.5, [-2, 2]],
  ['scalar sub', (x) => w.sub(2.5, x), (v) => 2.5 - v, [-2, 2]],
  ['mul scalar', (x) => w.mul(x, -1.5), (v) => v * -1.5, [-2, 2]],
  ['div scalar', (x) => w.div(x, 4), (v) => v / 4, [-2, 2]],
  ['scalar div', (x) => w.div(3, x), (v) => 3 / v, [0.5, 2]],
];

describe('unary ops', () => {
  for (const [name, op, ref, [lo, hi]] of UNARY) {
    it(`${name}: forward on awkward sizes, backward by finite differences`, async () => {
      for (const shape of [[70_001], [3, 1, 5]]) {
        const data = rand(numel(shape), 5, lo, hi);
        const x = w.tensor(Float32Array.from(data), shape);
        const y = op(x);
        expect(y.shape).toEqual(shape);
        const x64 = Float64Array.from(Float32Array.from(data));
        expectClose(await values(y), map(x64, ref), { atol: 2e-6, rtol: 2e-6 }, name);
        x.dispose();
        y.dispose();
      }
      await gradCheck({ name, inputs: [{ shape: [3, 7], data: rand(21, 9, lo, hi) }], gpu: op, ref: (x) => map(x, ref) });
    });
  }
});

const BINARY: [string, (a: w.Tensor, b: w.Tensor) => w.Tensor, (x: number, y: number) => number][] = [
  ['add', w.add, (x, y) => x + y],
  ['sub', w.sub, (x, y) => x - y],
  ['mul', w.mul, (x, y) => x * y],
  ['div', w.div, (x, y) => x / y],
];

// Pairs chosen to hit every broadcasting case: same shape, scalar, row, column, both sides, rank change, batch 1.
const PAIRS: [number[], number[]][] = [
  [[5, 7], [5, 7]],
  [[2, 3, 5], []],
  [[2, 3, 5], [5]],
  [[2, 3, 5], [3, 1]],
  [[4, 1, 6], [1, 5, 1]],
  [[1], [3, 4]],
  [[1, 3, 1, 2], [5, 1, 7, 1]],
];

describe('binary ops with broadcasting', () => {
  for (const [name, op, ref] of BINARY) {
    it(`${name}: forward and both gradients for every broadcasting case`, async () => {
      for (const [as, bs] of PAIRS) {
        // div: keep the divisor away from 0 so finite differences are well conditioned.
        const bData = rand(numel(bs), 17, name === 'div' ? 0.5 : -1, name === 'div' ? 2 : 1);
        await gradCheck({
          name: `${name} [${as}] [${bs}]`,
          inputs: [{ shape: as }, { shape: bs, data: bData }],
          gpu: op,
          ref: (a, b) => binary(a, as, b, bs, ref),
        });
      }
    });
  }

  it('rejects incompatible shapes before any GPU work, naming both shapes', () => {
    const a = w.zeros([2, 3]);
    const b = w.zeros([4]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.add(a, b)).toThrow(/add: shapes \[2,3\] and \[4\] cannot be broadcast/);
    expect(w.runtime().stats.dispatches).toBe(before);
    expect(() => w.mul(a, w.tensor(Int32Array.from([1, 2, 3]), [3]))).toThrow(/mul: expected f32 for b, got i32/);
  });
});

describe('expand and fill', () => {
  it('expand broadcasts and sums back in backward', async () => {
    await gradCheck({
      name: 'expand',
      inputs: [{ shape: [3, 1, 2] }],
      gpu: (x) => w.expand(x, [4, 3, 5, 2]),
      ref: (x) => binary(x, [3, 1, 2], new Float64Array(4 * 3 * 5 * 2), [4, 3, 5, 2], (p) => p),
    });
  });

  it('full fills f32 and i32', async () => {
    expect(Array.from(await w.full([2, 2], -1.25).toArray())).toEqual([-1.25, -1.25, -1.25, -1.25]);
    const i = w.full([3], -7, 'i32');
    expect(i.dtype).toBe('i32');
    expect(Array.from(await i.toArray())).toEqual([-7, -7, -7]);
  });
});
