// Shape ops (reshape, permute/transpose, slice, cat) against float64 references: exact forwards, gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { cat, permute, slice } from './reference/shape.js';
import { f32, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

/** Data movement must reproduce its input exactly. */
const EXACT = { atol: 0, rtol: 0 };

/** Random integers in [-1000, 1000), for i32 tensors. */
function ints(n: number, seed: number): Int32Array {
  return Int32Array.from(rand(n, seed, -1000, 1000), Math.floor);
}

async function elements(t: w.Tensor): Promise<number[]> {
  return Array.from(await t.toArray());
}

/** Runs op on an f32 and an i32 tensor of `shape` and compares both with ref, exactly. */
async function expectExactBothDtypes(shape: number[], op: (x: w.Tensor) => w.Tensor, ref: (x: Float64Array) => Float64Array, what: string): Promise<void> {
  const data = f32(rand(numel(shape), numel(shape) + shape.length));
  const xf = w.tensor(Float32Array.from(data), shape);
  const yf = op(xf);
  expect(yf.dtype).toBe('f32');
  expect(await elements(yf), `${what} f32`).toEqual(Array.from(ref(data)));
  const idata = ints(numel(shape), 3);
  const xi = w.tensor(idata, shape, { dtype: 'i32' });
  const yi = op(xi);
  expect(yi.dtype).toBe('i32');
  expect(await elements(yi), `${what} i32`).toEqual(Array.from(ref(Float64Array.from(idata))));
  for (const t of [xf, yf, xi, yi]) t.dispose();
}

/** Bits that arithmetic would not preserve: -0, NaN with a payload, infinities, a denormal. */
const SPECIAL_BITS = Uint32Array.from([0x80000000, 0x7fc01234, 0x7f800000, 0xff800000, 0x00000001, 0x3f800000]);

describe('reshape and views', () => {
  it('relabels the shape without moving data or launching a kernel', async () => {
    const data = f32(rand(60, 1));
    const x = w.tensor(Float32Array.from(data), [3, 4, 5]);
    const before = w.runtime().stats.dispatches;
    const y = w.reshape(x, [5, -1, 2]);
    expect(y.shape).toEqual([5, 6, 2]);
    expect(w.view(x, [-1]).shape).toEqual([60]);
    expect(w.runtime().stats.dispatches).toBe(before);
    expect(Array.from(await values(y))).toEqual(Array.from(data));
    expect(w.reshape(w.tensor([7]), []).shape).toEqual([]);
    expect(w.reshape(w.zeros([0, 3]), [3, 0]).shape).toEqual([3, 0]);
  });

  it('flatten, unsqueeze and squeeze follow torch', () => {
    const x = w.zeros([2, 1, 3, 1, 4]);
    expect(w.flatten(x).shape).toEqual([24]);
    expect(w.flatten(x, 1, 3).shape).toEqual([2, 3, 4]);
    expect(w.flatten(x, -2).shape).toEqual([2, 1, 3, 4]);
    expect(w.flatten(w.tensor(5)).shape).toEqual([1]);
    expect(w.unsqueeze(x, 0).shape).toEqual([1, 2, 1, 3, 1, 4]);
    expect(w.unsqueeze(x, -1).shape).toEqual([2, 1, 3, 1, 4, 1]);
    expect(w.unsqueeze(x, 5).shape).toEqual([2, 1, 3, 1, 4, 1]);
    expect(w.squeeze(x).shape).toEqual([2, 3, 4]);
    expect(w.squeeze(x, -2).shape).toEqual([2, 1, 3, 4]);
    expect(w.squeeze(x, 0).shape).toEqual([2, 1, 3, 1, 4]);
  });

  it('backward reshapes the gradient back', async () => {
    await gradCheck({ name: 'reshape', inputs: [{ shape: [2, 3, 5] }], gpu: (x) => w.reshape(x, [5, -1]), ref: (x) => x, forwardTol: EXACT });
    await gradCheck({ name: 'unsqueeze', inputs: [{ shape: [4, 3] }], gpu: (x) => w.unsqueeze(x, 1), ref: (x) => x, forwardTol: EXACT });
  });

  it('rejects shapes that do not hold the same number of elements', () => {
    const x = w.zeros([2, 3]);
    expect(() => w.reshape(x, [4, 2])).toThrow('reshape: cannot reshape x[2,3] (6 elements) to [4,2] (8 elements)');
    expect(() => w.reshape(x, [4, -1])).toThrow('reshape: cannot reshape x[2,3] (6 elements) to [4,-1]');
    expect(() => w.reshape(x, [-1, -1])).toThrow('reshape: only one dimension can be -1, got [-1,-1]');
    expect(() => w.reshape(x, [2.5, 2])).toThrow('reshape: invalid size 2.5 in [2.5,2]');
    expect(() => w.flatten(x, 1, 0)).toThrow('flatten: startDim 1 comes after endDim 0');
    expect(() => w.unsqueeze(x, 3)).toThrow('unsqueeze: dim 3 is out of range for a 3-d tensor');
  });
});

// [shape, dims]: every path of launchPermute (identity copy, tiled transpose with and without batch,
// general gather), odd sizes, size-1 dims, negative dims, rank 1..8.
const PERMUTES: [number[], number[]][] = [
  [[7], [0]],
  [[3, 5], [1, 0]],
  [[37, 70], [1, 0]],
  [[2, 33, 65], [0, 2, 1]],
  [[3, 129, 300], [0, -1, -2]],
  [[1, 7, 1, 3], [3, 2, 1, 0]],
  [[3, 1, 4], [1, 0, 2]],
  [[1, 1, 1], [2, 1, 0]],
  [[2, 3, 4, 5], [0, 2, 1, 3]],
  [[5, 3, 4], [1, 2, 0]],
  [[2, 3, 1, 4, 5], [4, -3, 0, 3, 1]],
  [[2, 3, 2, 3, 2, 3, 2, 2], [7, 6, 5, 4, 3, 2, 1, 0]],
  [[0, 3], [1, 0]],
];

describe('permute and transpose', () => {
  for (const [shape, dims] of PERMUTES) {
    it(`permute [${shape}] by [${dims}]: exact on f32 and i32`, async () => {
      const y = w.permute(w.zeros(shape), dims);
      expect(y.shape).toEqual(dims.map((d) => shape[d < 0 ? d + shape.length : d]));
      await expectExactBothDtypes(shape, (x) => w.permute(x, dims), (x) => permute(x, shape, dims), `permute [${shape}] [${dims}]`);
    });
  }

  it('backward permutes the gradient by the inverse permutation', async () => {
    for (const [shape, dims] of PERMUTES.filter(([s]) => numel(s) > 0 && numel(s) <= 1000)) {
      await gradCheck({ name: `permute [${shape}] [${dims}]`, inputs: [{ shape }], gpu: (x) => w.permute(x, dims), ref: (x) => permute(x, shape, dims), forwardTol: EXACT });
    }
  });

  it('transpose swaps two dims (negative dims allowed) with its gradient', async () => {
    const shape = [2, 3, 4, 5];
    await gradCheck({ name: 'transpose', inputs: [{ shape }], gpu: (x) => w.transpose(x, -1, 1), ref: (x) => permute(x, shape, [0, 3, 2, 1]), forwardTol: EXACT });
    await gradCheck({ name: 'transpose', inputs: [{ shape: [9, 34] }], gpu: (x) => w.transpose(x, 0, 1), ref: (x) => permute(x, [9, 34], [1, 0]), forwardTol: EXACT });
    await expectExactBothDtypes(shape, (x) => w.transpose(x, 2, 2), (x) => x, 'transpose of a dim with itself');
  });

  it('copies bits exactly (-0, NaN payloads, infinities, denormals)', async () => {
    const bits = Float64Array.from(SPECIAL_BITS);
    const x = w.tensor(new Float32Array(SPECIAL_BITS.buffer), [2, 3]);
    const cases: [w.Tensor, Float64Array][] = [
      [w.transpose(x, 0, 1), permute(bits, [2, 3], [1, 0])],
      [w.permute(w.reshape(x, [1, 2, 3]), [2, 0, 1]), permute(bits, [1, 2, 3], [2, 0, 1])],
      [w.slice(x, 1, 1), slice(bits, [2, 3], 1, 1, 3)],
      [w.cat([x, x], 1), cat([bits, bits], [[2, 3], [2, 3]], 1)],
    ];
    for (const [y, expected] of cases) {
      expect(Array.from(new Uint32Array((await y.toArray()).buffer))).toEqual(Array.from(expected));
      y.dispose();
    }
    x.dispose();
  });

  it('rejects bad permutations before any GPU work', () => {
    const x = w.zeros([2, 3, 4]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.permute(x, [0, 1])).toThrow('permute: x[2,3,4] has 3 dims but the permutation [0,1] has 2');
    expect(() => w.permute(x, [0, 1, 1])).toThrow('permute: [0,1,1] repeats a dim; it must be a permutation of 0..2');
    expect(() => w.permute(x, [0, 1, 3])).toThrow('permute: dim 3 is out of range for a 3-d tensor');
    expect(() => w.transpose(x, 0, -4)).toThrow('transpose: dim -4 is out of range for a 3-d tensor');
    expect(() => w.permute(w.tensor(new Uint16Array(4), [2, 2]), [1, 0])).toThrow('permute: f16 is not supported yet');
    expect(() => w.permute(w.zeros([1, 1, 1, 1, 1, 1, 1, 1, 1]), [8, 7, 6, 5, 4, 3, 2, 1, 0])).toThrow('permute: tensors of rank 9 are not supported (max 8)');
    expect(w.runtime().stats.dispatches).toBe(before);
  });
});

// [shape, dim, start, end, the non-negative bounds the reference uses]
const SLICES: [number[], number, number, number | undefined, [number, number]][] = [
  [[7], 0, 2, 5, [2, 5]],
  [[3, 5], 1, -3, undefined, [2, 5]],
  [[2, 3, 4], -1, 0, 4, [0, 4]],
  [[2, 1, 5, 3], 2, 1, 2, [1, 2]],
  [[1, 4, 3, 2, 5], 1, 3, 4, [3, 4]],
  [[3, 4], 1, 2, 2, [2, 2]],
  [[300, 7], 0, -299, -1, [1, 299]],
];

describe('slice', () => {
  for (const [shape, dim, start, end, [s, e]] of SLICES) {
    const where = `[${shape}] dim ${dim} [${start}:${end ?? ''}]`;
    it(`${where}: exact on f32 and i32, gradient into zeros`, async () => {
      await expectExactBothDtypes(shape, (x) => w.slice(x, dim, start, end), (x) => slice(x, shape, dim, s, e), `slice ${where}`);
      if (e > s) {
        await gradCheck({ name: `slice ${where}`, inputs: [{ shape }], gpu: (x) => w.slice(x, dim, start, end), ref: (x) => slice(x, shape, dim, s, e), forwardTol: EXACT });
      } else {
        // An empty slice (gradCheck cannot read it back): x gets an all-zero gradient.
        const x = w.tensor(Float32Array.from(rand(numel(shape), 4)), shape, { requiresGrad: true });
        const y = w.slice(x, dim, start, end);
        y.backward(w.zeros(y.shape));
        expect(await elements(x.grad!)).toEqual(new Array(numel(shape)).fill(0));
      }
    });
  }

  it('narrow takes a length', async () => {
    const shape = [4, 6];
    await expectExactBothDtypes(shape, (x) => w.narrow(x, -1, -4, 3), (x) => slice(x, shape, 1, 2, 5), 'narrow');
  });

  it('rejects out-of-range bounds before any GPU work', () => {
    const x = w.zeros([2, 5]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.slice(x, 1, 2, 6)).toThrow('slice: [2:6] is out of range for dim 1 of x[2,5] (size 5)');
    expect(() => w.slice(x, 1, -6)).toThrow('slice: [-6:] is out of range for dim 1 of x[2,5] (size 5)');
    expect(() => w.slice(x, 0, 2, 1)).toThrow('slice: [2:1] is out of range for dim 0 of x[2,5] (size 2)');
    expect(() => w.slice(x, 2, 0, 1)).toThrow('slice: dim 2 is out of range for a 2-d tensor');
    expect(() => w.slice(w.tensor(3), 0, 0, 1)).toThrow('slice: cannot slice a 0-d tensor');
    expect(() => w.narrow(x, 1, 3, 3)).toThrow('slice: [3:6] is out of range for dim 1 of x[2,5] (size 5)');
    expect(w.runtime().stats.dispatches).toBe(before);
  });
});

// [shapes, dim]: two to five inputs, an empty input, a single input, batch 1, rank 1..5, negative dims.
const CATS: [number[][], number][] = [
  [[[3], [4], [1]], 0],
  [[[2, 3], [2, 4], [2, 1]], 1],
  [[[1, 5], [3, 5]], 0],
  [[[2, 3, 4], [2, 0, 4], [2, 2, 4]], 1],
  [[[4, 3]], -1],
  [[[2, 1, 3, 2, 3], [2, 1, 3, 1, 3], [2, 1, 3, 4, 3]], -2],
  [[[1, 2, 3], [1, 2, 5], [1, 2, 1], [1, 2, 2], [1, 2, 7]], -1],
];

describe('cat', () => {
  for (const [shapes, dim] of CATS) {
    const where = `${shapes.map((s) => `[${s}]`).join(' ')} dim ${dim}`;
    it(`${where}: exact on f32 and i32, gradients are slices`, async () => {
      const data = shapes.map((s, i) => f32(rand(numel(s), 10 + i)));
      const y = w.cat(
        shapes.map((s, i) => w.tensor(Float32Array.from(data[i]!), s)),
        dim,
      );
      expect(await elements(y)).toEqual(Array.from(cat(data, shapes, dim)));
      const idata = shapes.map((s, i) => ints(numel(s), 20 + i));
      const yi = w.concat(
        shapes.map((s, i) => w.tensor(idata[i]!, s, { dtype: 'i32' })),
        dim,
      );
      expect(yi.dtype).toBe('i32');
      expect(await elements(yi)).toEqual(Array.from(cat(idata.map((d) => Float64Array.from(d)), shapes, dim)));
      await gradCheck({
        name: `cat ${where}`,
        // An empty input has no gradient elements to check (and gradCheck cannot read an empty tensor back).
        inputs: shapes.map((shape) => ({ shape, requiresGrad: numel(shape) > 0 })),
        gpu: (...xs) => w.cat(xs, dim),
        ref: (...xs) => cat(xs, shapes, dim),
        forwardTol: EXACT,
      });
    });
  }

  it('gives gradients only to the inputs that want one', async () => {
    const shapes = [[2, 3], [2, 2], [2, 4]];
    await gradCheck({
      name: 'cat, middle input frozen',
      inputs: [{ shape: shapes[0]! }, { shape: shapes[1]!, requiresGrad: false }, { shape: shapes[2]! }],
      gpu: (...xs) => w.cat(xs, 1),
      ref: (...xs) => cat(xs, shapes, 1),
      forwardTol: EXACT,
    });
  });

  it('frees every intermediate of forward and backward inside tidy()', async () => {
    const a = w.tensor(Float32Array.from(rand(6, 1)), [2, 3], { requiresGrad: true });
    const b = w.tensor(Float32Array.from(rand(4, 2)), [2, 2], { requiresGrad: true });
    const before = w.liveBuffers();
    w.tidy(() => {
      const y = w.transpose(w.slice(w.cat([a, b, a], 1), 1, 1, 7), 0, 1);
      w.sum(w.reshape(y, [-1])).backward();
    });
    // What remains: a.grad and b.grad.
    expect(w.liveBuffers()).toBe(before + 2);
    // d sum / da: a appears at columns 0..2 and 5..7 of the cat; the slice keeps 1..6, so a's columns 1, 2 and 0 (second copy) count.
    expect(Array.from(await a.grad!.toArray())).toEqual([1, 2, 1, 1, 2, 1]);
    expect(Array.from(await b.grad!.toArray())).toEqual([1, 1, 1, 1]);
  });

  it('rejects mismatched shapes and dtypes before any GPU work, naming the shapes', () => {
    const a = w.zeros([2, 3]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.cat([a, w.zeros([2, 4])], 0)).toThrow('cat: tensor 1 has shape [2,4] but tensor 0 has [2,3]; all dims except 0 must match');
    expect(() => w.cat([a, a, w.zeros([3, 3])], -1)).toThrow('cat: tensor 2 has shape [3,3] but tensor 0 has [2,3]; all dims except 1 must match');
    expect(() => w.cat([a, w.zeros([2, 3, 1])], 1)).toThrow('cat: tensor 1 has shape [2,3,1] but tensor 0 has [2,3]');
    expect(() => w.cat([a, w.tensor(new Int32Array(6), [2, 3], { dtype: 'i32' })], 0)).toThrow('cat: tensor 1 is i32 [2,3] but tensor 0 is f32 [2,3]');
    expect(() => w.cat([a], 2)).toThrow('cat: dim 2 is out of range for a 2-d tensor');
    expect(() => w.cat([], 0)).toThrow('cat: expected at least one tensor');
    expect(() => w.cat([w.tensor(1), w.tensor(2)], 0)).toThrow('cat: cannot concatenate 0-d tensors');
    expect(w.runtime().stats.dispatches).toBe(before);
  });
});
