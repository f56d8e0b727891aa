// Dynamic loss scaling: unscaling and the inf/NaN flag, torch's scale-update rules, and AdamW steps skipped on the GPU, against float64 references.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { adamwStep, type AdamRef } from './reference/optim.js';
import { expectClose, f32, rand, useGpu, values } from './helpers.js';

useGpu();

/** torch's _amp_update_scale_ on the CPU. */
function updateRef(s: { scale: number; tracker: number }, found: boolean, growth: number, backoff: number, interval: number): void {
  if (found) {
    s.scale *= backoff;
    s.tracker = 0;
    return;
  }
  if (s.tracker + 1 < interval) {
    s.tracker += 1;
    return;
  }
  if (Number.isFinite(Math.fround(s.scale * growth))) s.scale = Math.fround(s.scale * growth);
  s.tracker = 0;
}

describe('GradScaler', () => {
  it('scales the loss, unscales every gradient by exactly 1/S, and flags an inf or a NaN in any of them', async () => {
    const scaler = new w.GradScaler({ initScale: 1024 });
    const loss = w.tensor(Float32Array.of(2.5), []);
    expect(await w.noGrad(() => scaler.scale(loss)).item()).toBe(2560);
    const sizes = [5, 1001, 70_003];
    const params = sizes.map((n) => w.zeros([n]));
    const grads = sizes.map((n, i) => f32(rand(n, 20 + i, -1e4, 1e4)));
    const opt = new w.AdamW(params);
    const setGrads = (poison: number | null): void =>
      params.forEach((p, i) => {
        const g = Float32Array.from(grads[i]!);
        if (poison !== null && i === 2) g[69_999] = poison;
        p.grad?.dispose();
        p.grad = w.tensor(g, [sizes[i]!]);
      });
    let S = 1024;
    for (const poison of [null, Infinity, -Infinity, NaN]) {
      setGrads(poison);
      scaler.unscale_(opt);
      expect(await scaler.found.item(), `found after ${poison}`).toBe(poison === null ? 0 : 1);
      for (let i = 0; i < sizes.length; i++) {
        const got = await params[i]!.grad!.toArray();
        // S is a power of 2: dividing by it is exact.
        const want = Array.from(grads[i]!, (g) => g / S);
        if (poison !== null && i === 2) want[69_999] = poison / S;
        expect(Array.from(got)).toEqual(want);
      }
      scaler.update();
      if (poison !== null) S /= 2; // each inf/NaN backs the scale off by 0.5
    }
    expect(() => scaler.update()).toThrow('GradScaler: update() without unscale_() or step() in this step');
    opt.dispose();
    scaler.dispose();
  });

  it('backs off after an inf/NaN and grows after growthInterval clean steps, as torch does (and never grows to inf)', async () => {
    const found = [0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    for (const initScale of [8, 2 ** 127]) {
      const scaler = new w.GradScaler({ initScale, growthFactor: 2, backoffFactor: 0.25, growthInterval: 3 });
      const p = w.zeros([3]);
      const opt = new w.AdamW([p]);
      const ref = { scale: initScale, tracker: 0 };
      for (const [k, f] of found.entries()) {
        p.grad?.dispose();
        p.grad = w.tensor(Float32Array.of(1, f ? Infinity : 2, 3), [3]);
        scaler.unscale_(opt);
        scaler.update();
        updateRef(ref, f === 1, 2, 0.25, 3);
        expect(await scaler.state(), `step ${k} from ${initScale}`).toEqual({ scale: ref.scale, growthTracker: ref.tracker });
      }
      opt.dispose();
      scaler.dispose();
    }
  });

  it('a step with an inf/NaN gradient leaves parameters and moments untouched and does not count; the others match torch.optim.AdamW', async () => {
    const sizes = [1, 7, 1001, 70_003];
    const params = sizes.map((n, i) => w.tensor(Float32Array.from(rand(n, 10 + i)), [n], { requiresGrad: true }));
    const refs: AdamRef[] = sizes.map((n, i) => ({ p: f32(rand(n, 10 + i)), m: new Float64Array(n), v: new Float64Array(n), step: 0 }));
    const opt = new w.AdamW(params, { lr: 1e-2, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
    const scaler = new w.GradScaler({ initScale: 256, growthInterval: 2 });
    const skipped = [false, true, false, false, true, false];
    let S = 256;
    let clean = 0;
    for (const [step, skip] of skipped.entries()) {
      opt.lr = 1e-2 * (1 - step / 10);
      params.forEach((p, i) => {
        const g = f32(rand(sizes[i]!, 100 * step + i, -2, 2));
        const scaled = Float32Array.from(g, (x) => x * S);
        if (skip && i === 1) scaled[3] = NaN;
        p.grad?.dispose();
        p.grad = w.tensor(scaled, [sizes[i]!]);
        if (!skip) adamwStep(refs[i]!, g, opt.lr, 0.9, 0.95, 1e-8, 0.1);
      });
      scaler.step(opt);
      scaler.update();
      // torch's rules for the next step's S (growth interval 2, factors 2 and 0.5).
      if (skip) [S, clean] = [S / 2, 0];
      else if (++clean === 2) [S, clean] = [S * 2, 0];
    }
    expect((await scaler.state()).scale).toBe(S);
    await opt.syncSteps();
    for (let i = 0; i < params.length; i++) {
      // The guarded kernel forms the bias corrections in f32 on the GPU (exp2 of t·log2 b): a few ulp more than the
      // CPU's float64 scalars (test/optim.test.ts holds those to 2e-6).
      expectClose(await values(params[i]!), refs[i]!.p, { atol: 5e-6, rtol: 5e-6 }, `param ${i}`);
      const s = opt.state.get(params[i]!)!;
      expect(s.step).toBe(4);
      expectClose(await values(s.expAvg), refs[i]!.m, { atol: 1e-6, rtol: 1e-5 }, `exp_avg ${i}`);
      expectClose(await values(s.expAvgSq), refs[i]!.v, { atol: 1e-6, rtol: 1e-5 }, `exp_avg_sq ${i}`);
    }
    opt.dispose();
    scaler.dispose();
    for (const p of params) p.dispose();
  });

  it('rejects bad settings and a second unscale_ in one step', () => {
    expect(() => new w.GradScaler({ initScale: 0 })).toThrow('GradScaler: initScale must be a positive number, got 0');
    expect(() => new w.GradScaler({ backoffFactor: 1 })).toThrow('GradScaler: backoffFactor must be in (0, 1), got 1');
    expect(() => new w.GradScaler({ growthInterval: 1.5 })).toThrow('GradScaler: growthInterval must be a positive integer, got 1.5');
    const scaler = new w.GradScaler();
    const opt = new w.AdamW([w.zeros([2])]);
    scaler.unscale_(opt);
    expect(() => scaler.unscale_(opt)).toThrow('GradScaler: unscale_() was already called since the last update()');
    scaler.dispose();
  });
});
