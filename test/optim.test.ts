// AdamW and grad-norm clipping against float64 references over several steps.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { adamwStep, clipGradNorm as clipRef, type AdamRef } from './reference/optim.js';
import { expectClose, f32, rand, useGpu, values } from './helpers.js';

useGpu();

describe('AdamW', () => {
  it('matches torch.optim.AdamW semantics for 5 steps with a changing lr, on awkward sizes', async () => {
    const sizes = [1, 7, 1001, 70_003];
    const params = sizes.map((n, i) => w.tensor(Float32Array.from(rand(n, 10 + i)), [n], { requiresGrad: true }));
    const refs: AdamRef[] = params.map((_, i) => ({ p: f32(rand(sizes[i]!, 10 + i)), m: new Float64Array(sizes[i]!), v: new Float64Array(sizes[i]!), step: 0 }));
    const opt = new w.AdamW(params, { lr: 1e-2, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
    for (let step = 0; step < 5; step++) {
      opt.lr = 1e-2 * (1 - step / 10);
      params.forEach((p, i) => {
        const g = f32(rand(sizes[i]!, 100 * step + i, -2, 2));
        p.grad?.dispose();
        p.grad = w.tensor(Float32Array.from(g), [sizes[i]!]);
        adamwStep(refs[i]!, g, opt.lr, 0.9, 0.95, 1e-8, 0.1);
      });
      opt.step();
    }
    for (let i = 0; i < params.length; i++) {
      // f32 state vs float64: errors stay at a few ulp of the parameter after 5 steps.
      expectClose(await values(params[i]!), refs[i]!.p, { atol: 2e-6, rtol: 2e-6 }, `param ${i}`);
      const s = opt.state.get(params[i]!)!;
      expect(s.step).toBe(5);
      expectClose(await values(s.expAvg), refs[i]!.m, { atol: 1e-6, rtol: 1e-5 }, `exp_avg ${i}`);
      expectClose(await values(s.expAvgSq), refs[i]!.v, { atol: 1e-6, rtol: 1e-5 }, `exp_avg_sq ${i}`);
    }
    opt.dispose();
    for (const p of params) p.dispose();
  });

  it('forms 1 - beta2 and 1 - lr·wd in float64 as torch does: the first moments are f32(f32(1 - b2)·g)·g bit for bit', async () => {
    const g = Float32Array.from(rand(37, 41, -3, 3));
    const p = w.tensor(new Float32Array(37).fill(0.5), [37], { requiresGrad: true });
    p.grad = w.tensor(g, [37]);
    const opt = new w.AdamW([p], { lr: 0.1, betas: [0.9, 0.999], weightDecay: 0.3 });
    opt.step();
    // torch: exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2), the scalar 0.001 from Python's float64. Computing
    // 1 - f32(0.999) in f32 instead gives 0.0010000467 and v 4.7e-5 too large.
    const c = Math.fround(1 - 0.999);
    const v = await opt.state.get(p)!.expAvgSq.toArray();
    expect(Array.from(v)).toEqual(Array.from(g, (x) => Math.fround(Math.fround(c * x) * x)));
    const m = await opt.state.get(p)!.expAvg.toArray();
    expect(Array.from(m)).toEqual(Array.from(g, (x) => Math.fround(Math.fround(1 - 0.9) * x)));
    opt.dispose();
    p.grad.dispose();
    p.dispose();
  });

  it('skips parameters without a gradient and rejects bad settings', async () => {
    const a = w.tensor([1, 2, 3], undefined, { requiresGrad: true });
    const opt = new w.AdamW([a], { lr: 0.1 });
    opt.step();
    expect(Array.from(await a.toArray())).toEqual([1, 2, 3]);
    expect(opt.state.size).toBe(0);
    expect(() => new w.AdamW([a], { betas: [1, 0.9] })).toThrow(/invalid hyper-parameters/);
    expect(() => new w.AdamW([w.tensor(Int32Array.from([1]), [1])])).toThrow(/must be f32/);
    a.dispose();
  });
});

describe('AdamW noDecay', () => {
  it('a parameter in noDecay moves as with weight_decay 0; the others decay', async () => {
    const g = [0.5, -1, 2];
    const run = async (weightDecay: number, exclude: boolean): Promise<Float32Array> => {
      const p = w.tensor([1, 2, 3], [3], { requiresGrad: true });
      p.grad = w.tensor(g, [3]);
      const opt = new w.AdamW([p], { lr: 0.1, weightDecay, noDecay: exclude ? [p] : [] });
      opt.step();
      const out = (await p.toArray()) as Float32Array;
      opt.dispose();
      p.dispose();
      return out;
    };
    const plain = await run(0, false);
    expect(await run(0.5, true)).toEqual(plain);
    // torch: p <- p (1 - lr wd) - step; the decayed values are smaller by lr·wd·p.
    const decayed = await run(0.5, false);
    [1, 2, 3].forEach((p0, i) => expect(decayed[i]!).toBeCloseTo(plain[i]! - 0.1 * 0.5 * p0, 5));
  });
});

describe('clipGradNorm', () => {
  for (const [name, maxNorm] of [['clips', 1.0], ['leaves small gradients alone', 1e6]] as const) {
    it(`${name}: total norm and scaled grads match torch.nn.utils.clip_grad_norm_`, async () => {
      // One tensor spans several 4096-element chunks, one is tiny, one has no grad.
      const sizes = [3, 4097 * 3 + 5, 1, 50];
      const params = sizes.map((n) => w.zeros([n], { requiresGrad: true }));
      const grads = sizes.map((n, i) => f32(rand(n, 40 + i, -1, 1)));
      params.forEach((p, i) => {
        if (i !== 3) p.grad = w.tensor(Float32Array.from(grads[i]!), [sizes[i]!]);
      });
      const total = w.clipGradNorm(params, maxNorm);
      expect(total.shape).toEqual([]);
      const refTotal = clipRef(grads.slice(0, 3), maxNorm);
      expectClose([await total.item()], [refTotal], { atol: 0, rtol: 1e-5 }, 'total norm');
      for (let i = 0; i < 3; i++) expectClose(await values(params[i]!.grad!), grads[i]!, { atol: 1e-7, rtol: 1e-5 }, `grad ${i}`);
      expect(params[3]!.grad).toBeNull();
      total.dispose();
      for (const p of params) p.dispose();
    });
  }

  it('is deterministic: the same gradients give a bit-identical norm', async () => {
    const p = w.zeros([100_000], { requiresGrad: true });
    p.grad = w.tensor(Float32Array.from(rand(100_000, 3)), [100_000]);
    const a = await w.clipGradNorm([p], 1e9).item();
    const b = await w.clipGradNorm([p], 1e9).item();
    expect(a).toBe(b);
    p.dispose();
  });
});
