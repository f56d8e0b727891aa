// Behaviour: a tiny MLP learns a toy task, and a full training step (every op family + AdamW) leaks nothing.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { Dropout, Embedding, LayerNorm, Linear, Module } from '../src/index.js';
import { useGpu } from './helpers.js';

useGpu();

class MLP extends Module {
  fc1 = new Linear(2, 32);
  fc2 = new Linear(32, 2);
  forward(x: w.Tensor): w.Tensor {
    return this.fc2.forward(w.gelu(this.fc1.forward(x)));
  }
}

describe('training', () => {
  it('a tiny MLP learns XOR-like quadrants: cross-entropy falls by more than 10x', async () => {
    w.manualSeed(1);
    // Class = whether x0 and x1 have the same sign: not linearly separable.
    const pts: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < 64; i++) {
      const a = ((i * 37) % 64) / 32 - 1 + 1 / 64;
      const b = ((i * 11) % 64) / 32 - 1 + 1 / 64;
      pts.push(a, b);
      labels.push(a * b > 0 ? 1 : 0);
    }
    const x = w.tensor(pts, [64, 2]);
    const y = w.tensor(Int32Array.from(labels), [64]);
    const model = new MLP();
    const opt = new w.AdamW(model.parameters(), { lr: 0.05, weightDecay: 0 });
    const losses: number[] = [];
    for (let step = 0; step < 200; step++) {
      const loss = w.tidy(() => {
        const l = w.crossEntropy(model.forward(x), y);
        l.backward();
        opt.step();
        return l;
      });
      model.zeroGrad();
      if (step === 0 || step === 199) losses.push(await loss.item());
      loss.dispose();
    }
    expect(losses[0]).toBeGreaterThan(0.5);
    expect(losses[1]! * 10).toBeLessThan(losses[0]!);
    model.dispose();
    opt.dispose();
    x.dispose();
    y.dispose();
  });
});

/** A little of everything: embedding, layerNorm, attention-style softmax with a mask, linear, gelu, dropout, cross-entropy. */
class Everything extends Module {
  wte = new Embedding(37, 16);
  ln = new LayerNorm(16);
  proj = new Linear(16, 16);
  head = new Linear(16, 37);
  drop = new Dropout(0.1);

  forward(ids: w.Tensor, mask: w.Tensor): w.Tensor {
    const h = this.ln.forward(this.wte.forward(ids)); // [B,T,C]
    const scores = w.matmul(h, h, { transB: true }); // [B,T,T]
    const att = w.matmul(w.softmax(w.mul(scores, 0.25), -1, mask), h); // [B,T,C]
    const x = w.add(h, this.drop.forward(w.gelu(this.proj.forward(att), 'tanh')));
    return this.head.forward(w.reshape(x, [-1, 16])); // [B*T, V]
  }
}

describe('memory', () => {
  it('liveBuffers and liveBytes return to baseline after forward + backward + clip + AdamW, 10 times', async () => {
    w.manualSeed(2);
    const model = new Everything();
    const opt = new w.AdamW(model.parameters(), { lr: 1e-3 });
    const ids = w.tensor(Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 7) % 37), [2, 9]);
    const targets = w.tensor(Int32Array.from({ length: 2 * 9 }, (_, i) => (i % 5 === 0 ? -100 : (i * 3) % 37)), [18]);
    const causal = w.tensor(Float32Array.from({ length: 81 }, (_, i) => (i % 9 > Math.floor(i / 9) ? -1e30 : 0)), [9, 9]);
    const step = (): void =>
      w.tidy(() => {
        const loss = w.crossEntropy(model.forward(ids, causal), targets);
        loss.backward();
        w.clipGradNorm(model.parameters(), 1.0);
        opt.step();
        model.zeroGrad();
        return w.runtime().pool.peakBytes;
      });
    // Start from an empty pool so earlier tests' leftovers do not change which buffers get reused.
    w.runtime().trim();
    w.runtime().pool.resetPeak();
    // Warm-up: the first step allocates AdamW's moments (they live as long as the optimizer); after the second,
    // the pool holds every size the step needs.
    step();
    step();
    await w.sync();
    const baseline = { buffers: w.liveBuffers(), bytes: w.liveBytes(), peak: w.runtime().pool.peakBytes };
    for (let i = 0; i < 10; i++) {
      step();
      expect(w.liveBuffers()).toBe(baseline.buffers);
      expect(w.liveBytes()).toBe(baseline.bytes);
    }
    await w.sync();
    // The pool reuses its buffers: ten more steps allocate nothing new from the driver.
    expect(w.runtime().pool.peakBytes).toBe(baseline.peak);
    const params = model.parameters().length;
    model.dispose();
    opt.dispose();
    for (const t of [ids, targets, causal]) t.dispose();
    expect(params).toBe(7); // wte, ln (2), proj (2), head (2)
  });
});
