// Fused cross-entropy against a float64 reference (PyTorch semantics: ignore_index, reductions); gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { crossEntropy, softmax } from './reference/rows.js';
import { expectClose, f32, gradCheck, rand, useGpu, values } from './helpers.js';

useGpu();

const FWD = { atol: 1e-5, rtol: 1e-5 };
type Reduction = 'mean' | 'sum' | 'none';
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];

/** N targets in [0, V), every `ignoreEvery`-th one replaced by ignoreIndex (never when 0). */
function targetsFor(N: number, V: number, seed: number, ignoreEvery = 0, ignoreIndex = -100): Int32Array {
  return Int32Array.from(rand(N, seed, 0, V), (v, i) => (ignoreEvery && i % ignoreEvery === 1 ? ignoreIndex : Math.floor(v)));
}

describe('crossEntropy forward', () => {
  // [N, V]: one class, one row, odd counts, a workgroup plus one, vocabularies longer than a workgroup.
  const CASES: number[][] = [[1, 1], [1, 3], [5, 7], [3, 257], [4, 1000], [3, 1537], [2, 3, 11]];

  it('matches the float64 reference for every reduction, with and without ignored rows', async () => {
    for (const shape of CASES) {
      const V = shape[shape.length - 1]!;
      const N = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      for (const scale of [1, 50]) {
        const data = f32(rand(N * V, N * V + scale, -scale, scale));
        for (const ignoreEvery of [0, 3]) {
          const t = targetsFor(N, V, N + V, ignoreEvery);
          const logits = w.tensor(Float32Array.from(data), shape);
          const targets = w.tensor(t, shape.slice(0, -1), { dtype: 'i32' });
          for (const reduction of REDUCTIONS) {
            const loss = w.crossEntropy(logits, targets, { reduction });
            expect(loss.shape).toEqual(reduction === 'none' ? shape.slice(0, -1) : []);
            const what = `crossEntropy [${shape}] scale ${scale} ignoreEvery ${ignoreEvery} ${reduction}`;
            expectClose(await values(loss), crossEntropy(data, V, t, { reduction }), FWD, what);
            loss.dispose();
          }
          logits.dispose();
          targets.dispose();
        }
      }
    }
  });

  it('accepts flat [N] targets for [B,T,V] logits, and another ignoreIndex (transformers <= 2.3 used -1)', async () => {
    const data = f32(rand(2 * 3 * 5, 3, -2, 2));
    const t = Int32Array.from([4, -1, 0, 2, -1, 1]);
    const logits = w.tensor(Float32Array.from(data), [2, 3, 5]);
    const loss = w.crossEntropy(logits, w.tensor(t, [6], { dtype: 'i32' }), { ignoreIndex: -1 });
    expectClose(await values(loss), crossEntropy(data, 5, t, { ignoreIndex: -1 }), FWD, 'ignoreIndex -1');
    // With the default ignoreIndex, -1 is out of range: that row's loss is NaN, never an out-of-bounds read.
    const rows = await values(w.crossEntropy(logits, w.tensor(t, [2, 3], { dtype: 'i32' }), { reduction: 'none' }));
    expect(Array.from(rows, Number.isNaN)).toEqual([false, true, false, false, true, false]);
  });

  it('all targets ignored: mean is NaN (as PyTorch), sum is 0, none is all 0, and every gradient is 0', async () => {
    const logits = w.tensor(Float32Array.from(rand(12, 4)), [3, 4], { requiresGrad: true });
    const targets = w.full([3], -100, 'i32');
    const mean = w.crossEntropy(logits, targets);
    expect(Number.isNaN(await mean.item())).toBe(true);
    expect(await w.crossEntropy(logits, targets, { reduction: 'sum' }).item()).toBe(0);
    expect(Array.from(await w.crossEntropy(logits, targets, { reduction: 'none' }).toArray())).toEqual([0, 0, 0]);
    mean.backward();
    expect(Array.from(await logits.grad!.toArray())).toEqual(new Array(12).fill(0));
  });

  it('targets out of range give NaN loss and NaN gradient rows, nothing else touched', async () => {
    const data = f32(rand(12, 6));
    const logits = w.tensor(Float32Array.from(data), [3, 4], { requiresGrad: true });
    const t = Int32Array.from([2, 4, -5]);
    const loss = w.crossEntropy(logits, w.tensor(t, [3], { dtype: 'i32' }), { reduction: 'none' });
    const rows = await values(loss);
    expectClose([rows[0]!], crossEntropy(data, 4, [2, -100, -100], { reduction: 'none' }).subarray(0, 1), FWD, 'valid row');
    expect(Number.isNaN(rows[1]!) && Number.isNaN(rows[2]!)).toBe(true);
    loss.backward(w.ones([3]));
    const g = await values(logits.grad!);
    expect(Array.from(g.subarray(0, 4), Number.isNaN)).toEqual([false, false, false, false]);
    expect(Array.from(g.subarray(4), Number.isNaN)).toEqual(new Array(8).fill(true));
  });

  it('stays on the GPU: no read-back in forward or backward', () => {
    const logits = w.tensor(Float32Array.from(rand(40, 2)), [4, 10], { requiresGrad: true });
    const targets = w.tensor(Int32Array.from([1, -100, 9, 0]), [4], { dtype: 'i32' });
    const before = w.runtime().stats.readbacks;
    w.crossEntropy(logits, targets).backward();
    expect(w.runtime().stats.readbacks).toBe(before);
  });
});

describe('crossEntropy backward', () => {
  it('dlogits match finite differences for every reduction, with ignored rows', async () => {
    for (const [N, V] of [[5, 7], [1, 1], [3, 257]] as const) {
      const t = targetsFor(N, V, 21, N > 1 ? 3 : 0);
      for (const reduction of REDUCTIONS) {
        await gradCheck({
          name: `crossEntropy [${N},${V}] ${reduction}`,
          inputs: [{ shape: [N, V], data: rand(N * V, 5, -3, 3) }, { shape: [N], dtype: 'i32', data: t }],
          gpu: (logits, targets) => w.crossEntropy(logits, targets, { reduction }),
          ref: (logits, targets) => crossEntropy(logits, V, targets, { reduction }),
          forwardTol: FWD,
        });
      }
    }
  });

  it('[B,T,V] logits with [B,T] targets: gradient has the logits shape', async () => {
    const t = Int32Array.from([3, -100, 0, 4, 1, -100]);
    await gradCheck({
      name: 'crossEntropy [2,3,5]',
      inputs: [{ shape: [2, 3, 5] }, { shape: [2, 3], dtype: 'i32', data: t }],
      gpu: (logits, targets) => w.crossEntropy(logits, targets),
      ref: (logits, targets) => crossEntropy(logits, 5, targets),
      forwardTol: FWD,
    });
  });
});

describe('crossEntropy on logits larger than one binding', () => {
  // 141 MB of logits: over lavapipe's (and many GPUs') 128 MiB maxStorageBufferBindingSize, so they go in row blocks.
  it('[700, 50257] logits: loss and the gradient rows around block boundaries match', async () => {
    const [N, V] = [700, 50257];
    const data = new Float32Array(N * V);
    for (let r = 0; r < N; r++) data.set(Float32Array.from(rand(V, r, -4, 4)), r * V);
    const t = targetsFor(N, V, 77, 5);
    const logits = w.tensor(data, [N, V], { requiresGrad: true });
    const loss = w.crossEntropy(logits, w.tensor(t, [N], { dtype: 'i32' }));
    // The float64 reference one row at a time (the whole [N, V] in float64 would take 281 MB more).
    const row = (r: number): Float64Array => Float64Array.from(data.subarray(r * V, (r + 1) * V));
    const kept = Array.from(t.keys()).filter((r) => t[r] !== -100);
    const sum = kept.reduce((acc, r) => acc + crossEntropy(row(r), V, [t[r]!], { reduction: 'sum' })[0]!, 0);
    expectClose(await values(loss), [sum / kept.length], FWD, 'loss');
    loss.backward();
    loss.dispose();
    // Rows around every block boundary (blocks are a multiple of 64 rows) and the last row: (softmax - onehot) / count.
    const dlogits = await logits.grad!.toArray();
    for (const r of [0, 63, 64, 639, 640, 641, N - 1]) {
      const expected = t[r] === -100 ? new Float64Array(V) : softmax(row(r), [V]).map((p, j) => (p - (j === t[r] ? 1 : 0)) / kept.length);
      expectClose(dlogits.subarray(r * V, (r + 1) * V), expected, { atol: 1e-12, rtol: 1e-5 }, `dlogits row ${r}`);
    }
    logits.grad!.dispose();
    logits.grad = null;

    // reduction 'none': per-row losses, and per-row g (g_r = r + 1) read from the right block.
    const rowLoss = w.crossEntropy(logits, w.tensor(t, [N], { dtype: 'i32' }), { reduction: 'none' });
    const losses = await values(rowLoss);
    rowLoss.backward(w.tensor(Float32Array.from({ length: N }, (_, r) => r + 1), [N]));
    const dnone = await logits.grad!.toArray();
    for (const r of [0, 641, N - 1]) {
      expectClose([losses[r]!], crossEntropy(row(r), V, [t[r]!], { reduction: 'none' }), FWD, `loss row ${r}`);
      const expected = t[r] === -100 ? new Float64Array(V) : softmax(row(r), [V]).map((p, j) => (p - (j === t[r] ? 1 : 0)) * (r + 1));
      expectClose(dnone.subarray(r * V, (r + 1) * V), expected, { atol: 1e-12, rtol: 1e-5 }, `dlogits row ${r}, reduction none`);
    }
    logits.grad!.dispose();
    logits.dispose();
  });
});

describe('crossEntropy: bad input and memory', () => {
  it('rejects shape and dtype mismatches before any GPU work, naming the shapes', () => {
    const logits = w.zeros([8, 10]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.crossEntropy(logits, w.zeros([7], { dtype: 'i32' }))).toThrow(/crossEntropy: logits \[8,10\] and targets \[7\] disagree on N/);
    expect(() => w.crossEntropy(w.zeros([2, 4, 10]), w.zeros([4, 2], { dtype: 'i32' }))).toThrow(/logits \[2,4,10\] and targets \[4,2\] disagree on N/);
    expect(() => w.crossEntropy(logits, w.zeros([8]))).toThrow(/crossEntropy: expected i32 for targets, got f32 \[8\]/);
    expect(() => w.crossEntropy(w.zeros([8, 10], { dtype: 'i32' }), w.zeros([8], { dtype: 'i32' }))).toThrow(/crossEntropy: expected f32 for logits/);
    expect(() => w.crossEntropy(logits, w.zeros([8], { dtype: 'i32' }), { reduction: 'avg' as 'mean' })).toThrow(/reduction must be/);
    expect(() => w.crossEntropy(logits, w.zeros([8], { dtype: 'i32' }), { ignoreIndex: 0.5 })).toThrow(/ignoreIndex must be a 32-bit integer/);
    expect(() => w.crossEntropy(w.zeros([8, 0]), w.zeros([8], { dtype: 'i32' }))).toThrow(/crossEntropy: logits \[8,0\] have no classes/);
    expect(w.runtime().stats.dispatches).toBe(before);
  });

  it('forward + backward inside tidy() free the saved lse and count', async () => {
    const logits = w.tensor(Float32Array.from(rand(60, 3)), [6, 10], { requiresGrad: true });
    const targets = w.tensor(Int32Array.from([1, 2, -100, 3, 4, 9]), [6], { dtype: 'i32' });
    const base = w.liveBuffers();
    for (const reduction of REDUCTIONS) {
      w.tidy(() => {
        const loss = w.crossEntropy(logits, targets, { reduction });
        (reduction === 'none' ? w.sum(loss) : loss).backward();
      });
    }
    expect(w.liveBuffers()).toBe(base + 1);
    await w.sync();
    logits.grad!.dispose();
    expect(w.liveBuffers()).toBe(base);
  });
});
