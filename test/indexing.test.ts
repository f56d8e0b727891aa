// indexSelect and embedding against float64 references: exact gathers, scatter-add gradients by finite differences, determinism.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { embedding, indexSelect, scatterAddF32 } from './reference/shape.js';
import { f32, gradCheck, numel, rand, useGpu } from './helpers.js';

useGpu();

const EXACT = { atol: 0, rtol: 0 };

/** The elements of t. (toArray() reads at least 4 bytes, so an empty tensor comes back with one stray element.) */
async function elements(t: w.Tensor): Promise<number[]> {
  return Array.from(await t.toArray()).slice(0, t.size);
}

/** n ids in [0, V) from a seed, as plain numbers. */
function randomIds(n: number, V: number, seed: number): number[] {
  return Array.from(rand(n, seed, 0, V), Math.floor);
}

// [x shape, dim, ids]: rank 1..5, every dim position, repeated ids, dims of size 1, no ids, out-of-range ids.
const SELECTS: [number[], number, number[]][] = [
  [[7], 0, [6, 0, 3, 3]],
  [[5, 3], 0, [4, 4, 0, 2]],
  [[5, 3], 1, [2, 0]],
  [[2, 3, 4], -1, [3, 3, 3, 0, 1]],
  [[1, 4, 1, 3, 2], 1, [3, 0]],
  [[2, 9, 3], 1, [8, 0, 8, 8, 5, 0, 1]],
  [[3, 4], 0, []],
  [[4, 3], 0, [-1, 4, 2, 100, -2147483648, 2147483647]],
];

describe('indexSelect', () => {
  for (const [shape, dim, ids] of SELECTS) {
    const where = `x[${shape}] dim ${dim} ids [${ids}]`;
    it(`${where}: exact on f32 and i32`, async () => {
      const idsT = w.tensor(Int32Array.from(ids), [ids.length], { dtype: 'i32' });
      const data = f32(rand(numel(shape), 5));
      const y = w.indexSelect(w.tensor(Float32Array.from(data), shape), dim, idsT);
      expect(y.shape).toEqual(shape.map((n, i) => (i === (dim + shape.length) % shape.length ? ids.length : n)));
      expect(await elements(y)).toEqual(Array.from(indexSelect(data, shape, dim, ids)));
      const idata = Int32Array.from(rand(numel(shape), 6, -1e6, 1e6), Math.floor);
      const yi = w.indexSelect(w.tensor(idata, shape, { dtype: 'i32' }), dim, idsT);
      expect(yi.dtype).toBe('i32');
      expect(await elements(yi)).toEqual(Array.from(indexSelect(Float64Array.from(idata), shape, dim, ids)));
    });
  }

  it('backward scatter-adds into x (repeats summed, out-of-range ids ignored)', async () => {
    const cases: [number[], number, number[]][] = [
      ...SELECTS.filter(([, , ids]) => ids.length > 0),
      // 300 rows: two row tiles, the second partial; ids at both ends, repeated.
      [[300, 3], 0, [0, 299, 17, 299, 256, 255, 0, 0, 123, ...randomIds(30, 300, 1)]],
      // outer·inner = 300 columns: two column groups.
      [[3, 5, 100], 1, [4, 0, 4, 2]],
    ];
    for (const [shape, dim, ids] of cases) {
      await gradCheck({
        name: `indexSelect x[${shape}] dim ${dim}`,
        inputs: [{ shape }, { shape: [ids.length], dtype: 'i32', data: ids }],
        gpu: (x, i) => w.indexSelect(x, dim, i),
        ref: (x, i) => indexSelect(x, shape, dim, i),
        forwardTol: EXACT,
      });
    }
  });

  it('rejects bad arguments before any GPU work', () => {
    const x = w.zeros([4, 3]);
    const ids = w.tensor(Int32Array.from([0, 1]), [2], { dtype: 'i32' });
    const before = w.runtime().stats.dispatches;
    expect(() => w.indexSelect(x, 0, w.tensor([0, 1]))).toThrow('indexSelect: expected i32 for ids, got f32 [2]');
    expect(() => w.indexSelect(x, 0, w.tensor(Int32Array.from([0, 1]), [1, 2], { dtype: 'i32' }))).toThrow('indexSelect: ids must be 1-D, got ids[1,2]');
    expect(() => w.indexSelect(x, 2, ids)).toThrow('indexSelect: dim 2 is out of range for a 2-d tensor');
    expect(() => w.indexSelect(w.tensor(1), 0, ids)).toThrow('indexSelect: x must have at least one dim');
    expect(() => w.indexSelect(w.tensor(new Uint16Array(4), [2, 2]), 0, ids)).toThrow('indexSelect: f16 is not supported yet');
    expect(w.runtime().stats.dispatches).toBe(before);
  });
});

describe('embedding', () => {
  const idShapes: number[][] = [[5], [2, 3], [1, 1], [2, 3, 4]];
  for (const idShape of idShapes) {
    it(`ids [${idShape}] pick rows of weight [11, 5]: exact, out [${idShape},5]`, async () => {
      const ids = randomIds(numel(idShape), 11, numel(idShape));
      const weight = f32(rand(55, 2));
      const y = w.embedding(w.tensor(Int32Array.from(ids), idShape, { dtype: 'i32' }), w.tensor(Float32Array.from(weight), [11, 5]));
      expect(y.shape).toEqual([...idShape, 5]);
      expect(await elements(y)).toEqual(Array.from(embedding(ids, weight, 11, 5)));
    });
  }

  it('out-of-range ids give zero rows and no gradient', async () => {
    const ids = [3, -1, 0, 4, 2147483647, 3];
    await gradCheck({
      name: 'embedding out of range',
      inputs: [{ shape: [2, 3], dtype: 'i32', data: ids }, { shape: [4, 3] }],
      gpu: (i, wt) => w.embedding(i, wt),
      ref: (i, wt) => embedding(i, wt, 4, 3),
      forwardTol: EXACT,
    });
  });

  it('weight gradient: repeated ids, ids 0 and V-1, V not a multiple of the tile, odd C, several column groups', async () => {
    const cases: { V: number; C: number; ids: number[]; idShape: number[] }[] = [
      // 300 rows = one full 256-row tile + a partial one; id 7 fifty times; both ends of the vocab.
      { V: 300, C: 7, ids: [0, 299, ...new Array<number>(50).fill(7), 299, 256, 255, ...randomIds(45, 300, 3)], idShape: [4, 25] },
      // C = 300: two column groups, the second partial.
      { V: 5, C: 300, ids: [4, 0, 4, 4, 1, 0], idShape: [2, 3] },
      // A single position and a single-row table.
      { V: 1, C: 3, ids: [0], idShape: [1, 1] },
    ];
    for (const { V, C, ids, idShape } of cases) {
      await gradCheck({
        name: `embedding V=${V} C=${C}`,
        inputs: [{ shape: idShape, dtype: 'i32', data: ids }, { shape: [V, C] }],
        gpu: (i, wt) => w.embedding(i, wt),
        ref: (i, wt) => embedding(i, wt, V, C),
        forwardTol: EXACT,
      });
    }
  });

  it('weight gradient is deterministic: the same bits every run, summed in increasing position order', async () => {
    // 3000 positions (three scan chunks) over 300 rows with heavy repeats, and gradients spanning six
    // orders of magnitude so that a different summation order would round differently.
    const V = 300;
    const C = 5;
    const N = 3000;
    const ids = Int32Array.from(rand(N, 11, 0, 1), (u) => Math.floor(u * u * V));
    const g = Float32Array.from(rand(N * C, 12), (u, i) => u * 10 ** ((i % 7) - 3));
    const weight = w.tensor(Float32Array.from(rand(V * C, 13)), [V, C], { requiresGrad: true });
    const idsT = w.tensor(ids, [N], { dtype: 'i32' });
    const gT = w.tensor(g, [N, C]);
    const runs: Uint32Array[] = [];
    for (let r = 0; r < 2; r++) {
      w.embedding(idsT, weight).backward(gT);
      runs.push(new Uint32Array((await weight.grad!.toArray()).buffer));
      w.zeroGrad([weight]);
    }
    expect(runs[1]).toEqual(runs[0]);
    const increasing = scatterAddF32(g, ids, V, C, 'increasing');
    expect(runs[0]).toEqual(new Uint32Array(increasing.buffer));
    // The check has teeth: summing the same terms in the opposite order changes some bits.
    expect(new Uint32Array(scatterAddF32(g, ids, V, C, 'decreasing').buffer)).not.toEqual(runs[0]);
  });

  it('frees every intermediate of forward and backward inside tidy()', () => {
    const weight = w.tensor(Float32Array.from(rand(40, 1)), [10, 4], { requiresGrad: true });
    const ids = w.tensor(Int32Array.from([1, 2, 1]), [3], { dtype: 'i32' });
    const before = w.liveBuffers();
    w.tidy(() => w.sum(w.embedding(ids, weight)).backward());
    expect(w.liveBuffers()).toBe(before + 1); // weight.grad
  });

  it('rejects bad arguments before any GPU work', () => {
    const weight = w.zeros([10, 4]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.embedding(w.tensor([1, 2]), weight)).toThrow('embedding: expected i32 for ids, got f32 [2]');
    const ids = w.tensor(Int32Array.from([1, 2]), [2], { dtype: 'i32' });
    expect(() => w.embedding(ids, w.zeros([10]))).toThrow('embedding: weight must be 2-D [V, C], got weight[10]');
    expect(() => w.embedding(ids, w.tensor(new Uint16Array(4), [2, 2]))).toThrow('embedding: f16 is not supported yet');
    expect(w.runtime().stats.dispatches).toBe(before);
  });
});
