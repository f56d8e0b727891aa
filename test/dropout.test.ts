// Dropout's counter-based mask (statistics, exact scaling, seeds, backward) and the library's seeded generator (src/random.ts).
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { dropoutBits } from './reference/rows.js';
import { f32, rand, useGpu, values } from './helpers.js';

useGpu();

const N = 1 << 20;
/** x with no zeros, so y = 0 means "dropped". */
const X = f32(rand(N, 1, 0.5, 1.5));

/** Kept positions of y (y != 0), as 0/1. */
function keptOf(y: Float64Array): Uint8Array {
  return Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0));
}

/** |observed - expected| within 5 standard deviations of a binomial proportion over n trials. */
function expectProportion(observed: number, p: number, n: number, what: string): void {
  const sigma = Math.sqrt((p * (1 - p)) / n);
  expect(Math.abs(observed - p), `${what}: ${observed} vs ${p} (sigma ${sigma.toExponential(2)})`).toBeLessThan(5 * sigma);
}

describe('dropout', () => {
  it('keeps a fraction 1 - p, scales kept values by exactly f32(1 / (1 - p)), and matches the CPU hash bit for bit', async () => {
    const x = w.tensor(Float32Array.from(X), [N]);
    for (const p of [0.1, 0.5, 0.9]) {
      const seed = 1234 + Math.round(p * 10);
      const y = await values(w.dropout(x, p, true, seed));
      const kept = keptOf(y);
      expectProportion(kept.reduce((a, b) => a + b, 0) / N, 1 - p, N, `kept fraction p=${p}`);
      const scale = Math.fround(1 / (1 - p));
      const threshold = Math.round(p * 2 ** 32);
      for (let i = 0; i < N; i++) {
        const keep = dropoutBits(seed, i) >= threshold;
        if (keep !== (kept[i] === 1)) expect.fail(`p=${p}: element ${i} kept=${kept[i]}, the hash says ${keep}`);
        if (keep && y[i] !== Math.fround(X[i]! * scale)) expect.fail(`p=${p}: element ${i} is ${y[i]}, expected ${Math.fround(X[i]! * scale)}`);
      }
    }
    x.dispose();
  });

  it('the same seed gives the same mask; different seeds give independent masks', async () => {
    const x = w.tensor(Float32Array.from(X), [N]);
    const p = 0.5;
    const a = keptOf(await values(w.dropout(x, p, true, 7)));
    const b = keptOf(await values(w.dropout(x, p, true, 7)));
    const c = keptOf(await values(w.dropout(x, p, true, 8)));
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    // Independent masks agree on "both kept" with probability (1 - p)^2.
    let both = 0;
    for (let i = 0; i < N; i++) both += a[i]! & c[i]!;
    expectProportion(both / N, (1 - p) ** 2, N, 'seeds 7 and 8 both kept');
    x.dispose();
  });

  it('backward regenerates the forward mask: dx = g * mask / (1 - p), exactly', async () => {
    const n = 100_003;
    const p = 0.3;
    const x = w.tensor(Float32Array.from(X.subarray(0, n)), [n], { requiresGrad: true });
    const y = w.dropout(x, p, true, 99);
    const g = f32(rand(n, 2));
    y.backward(w.tensor(Float32Array.from(g), [n]));
    const kept = keptOf(await values(y));
    const dx = await values(x.grad!);
    const scale = Math.fround(1 / (1 - p));
    for (let i = 0; i < n; i++) {
      const expected = kept[i] ? Math.fround(g[i]! * scale) : 0;
      if (dx[i] !== expected) expect.fail(`dx element ${i} is ${dx[i]}, expected ${expected}`);
    }
  });

  it('p = 0 or training = false returns x itself, and the gradient passes through', async () => {
    const x = w.tensor(Float32Array.from([1, -2, 3]), [3], { requiresGrad: true });
    expect(w.dropout(x, 0)).toBe(x);
    expect(w.dropout(x, 0.7, false)).toBe(x);
    w.sum(w.mul(w.dropout(x, 0.7, false), 2)).backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([2, 2, 2]);
  });

  it('without a seed, each call draws one from the global generator: manualSeed repeats the masks', async () => {
    const x = w.tensor(Float32Array.from(X.subarray(0, 4096)), [4096]);
    w.manualSeed(5);
    const first = keptOf(await values(w.dropout(x, 0.5)));
    const second = keptOf(await values(w.dropout(x, 0.5)));
    w.manualSeed(5);
    const again = keptOf(await values(w.dropout(x, 0.5)));
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(false);
    expect(Buffer.from(again).equals(Buffer.from(first))).toBe(true);
  });

  it('rejects bad p, seeds and dtypes before any GPU work', () => {
    const x = w.zeros([4]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.dropout(x, 1)).toThrow(/dropout: p must be in \[0, 1\), got 1/);
    expect(() => w.dropout(x, -0.1)).toThrow(/dropout: p must be in \[0, 1\), got -0.1/);
    expect(() => w.dropout(x, NaN)).toThrow(/dropout: p must be in \[0, 1\), got NaN/);
    expect(() => w.dropout(x, 0.5, true, -1)).toThrow(/dropout: seed must be an integer in \[0, 2\^32\)/);
    expect(() => w.dropout(x, 0.5, true, 2 ** 32)).toThrow(/dropout: seed must be an integer/);
    expect(() => w.dropout(w.zeros([4], { dtype: 'i32' }), 0.5)).toThrow(/dropout: expected f32 for x, got i32 \[4\]/);
    expect(w.runtime().stats.dispatches).toBe(before);
  });

  it('forward + backward inside tidy() leave only the gradient alive', async () => {
    const x = w.tensor(Float32Array.from(X.subarray(0, 1000)), [10, 100], { requiresGrad: true });
    const base = w.liveBuffers();
    w.tidy(() => {
      w.sum(w.dropout(w.dropout(x, 0.2), 0.4)).backward();
    });
    expect(w.liveBuffers()).toBe(base + 1);
    await w.sync();
    x.grad!.dispose();
    expect(w.liveBuffers()).toBe(base);
  });
});

describe('random: the seeded generator', () => {
  it('the same seed gives the same numbers, another seed others; manualSeed restarts the global stream', async () => {
    const a = await values(w.randn([1000], { seed: 3 }));
    const b = await values(w.randn([1000], { seed: 3 }));
    const c = await values(w.randn([1000], { seed: 4 }));
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(Array.from(c)).not.toEqual(Array.from(a));
    w.manualSeed(11);
    const s1 = [w.nextSeed(), w.nextSeed()];
    const r1 = await values(w.rand([100]));
    w.manualSeed(11);
    expect([w.nextSeed(), w.nextSeed()]).toEqual(s1);
    expect(Array.from(await values(w.rand([100])))).toEqual(Array.from(r1));
    // A seeded call uses a private generator: the global stream does not move.
    w.manualSeed(11);
    w.randn([10], { seed: 1 }).dispose();
    expect(w.nextSeed()).toBe(s1[0]);
  });

  it('randn has the requested mean and std; rand is uniform on [low, high)', async () => {
    const n = 200_000;
    const z = await values(w.randn([n], { mean: 1, std: 0.02, seed: 9 }));
    const mean = z.reduce((s, v) => s + v, 0) / n;
    const std = Math.sqrt(z.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
    // Standard errors: std / sqrt(n) for the mean, std / sqrt(2n) for the std.
    expect(Math.abs(mean - 1)).toBeLessThan((5 * 0.02) / Math.sqrt(n));
    expect(Math.abs(std - 0.02)).toBeLessThan((5 * 0.02) / Math.sqrt(2 * n));
    const within1Sigma = z.reduce((s, v) => s + (Math.abs(v - 1) < 0.02 ? 1 : 0), 0) / n;
    expectProportion(within1Sigma, 0.6826894921370859, n, 'P(|z| < 1 sigma)');

    const u = await values(w.rand([n], { low: -3, high: 5, seed: 10 }));
    expect(u.every((v) => v >= -3 && v < 5)).toBe(true);
    expectProportion(u.reduce((s, v) => s + (v < 1 ? 1 : 0), 0) / n, 0.5, n, 'P(u < midpoint)');
    expectProportion(u.reduce((s, v) => s + (v < -2 ? 1 : 0), 0) / n, 1 / 8, n, 'P(u < low + (high - low) / 8)');
  });

  it('makes parameters: requiresGrad and the given shape', () => {
    const p = w.randn([3, 4], { std: 0.02, seed: 1, requiresGrad: true });
    expect(p.shape).toEqual([3, 4]);
    expect(p.requiresGrad).toBe(true);
    expect(() => w.manualSeed(-1)).toThrow(/seed must be a non-negative safe integer/);
  });
});
