// capture()/replay() of a training step: the same bits as running the step eagerly (dropout, AdamW, clipping, a
// changing learning rate, mixed precision), the same launches, clear errors for what a replay cannot repeat.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { useGpu } from './helpers.js';

useGpu();

const V = 97;
const [B, T] = [2, 16];
const STEPS = 5;

/** A tiny GPT-2 with every dropout on, its optimizer and (with fp16) a loss scaler, all from one seed. */
function setup(fp16: boolean) {
  w.manualSeed(11);
  const model = new w.GPT2LMHeadModel(w.gpt2Config({ n_layer: 2, n_embd: 32, n_head: 2, n_positions: T, vocab_size: V, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 }));
  const opt = new w.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.01 });
  const scaler = fp16 ? new w.GradScaler() : null;
  const ids = w.keep(w.zeros([B, T], { dtype: 'i32' }));
  /** One training step, as trainer.ts records it: forward, backward, clip, AdamW (or the scaler's step), zero grads. */
  const step = (): w.Tensor =>
    w.tidy(() => {
      const loss = w.autocast(() => model.forward({ inputIds: ids, labels: ids }).loss!, fp16);
      (scaler ? scaler.scale(loss) : loss).backward();
      scaler?.unscale_(opt);
      w.clipGradNorm(opt.params, 0.5);
      if (scaler) {
        scaler.step(opt);
        scaler.update();
      } else {
        opt.step();
      }
      model.zeroGrad();
      return loss.detach();
    });
  const dispose = (): void => {
    ids.dispose();
    scaler?.dispose();
    opt.dispose();
    model.dispose();
  };
  return { model, opt, ids, step, dispose };
}

/** Batch s of a fixed stream of token ids, and step s's learning rate (a warm-up, so it changes every step). */
const batch = (s: number): Int32Array => Int32Array.from({ length: B * T }, (_, i) => (i * 31 + s * 17 + ((i * s) % 7)) % V);
const lrAt = (s: number): number => 1e-3 * (s + 1) / STEPS;

async function bits(t: w.Tensor): Promise<number[]> {
  const a = await t.toArray();
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

describe('capture() and replay() of a training step', () => {
  for (const fp16 of [false, true]) {
    it(`replays give the same losses, weights and generator state as eager steps, bit for bit${fp16 ? ' (autocast + GradScaler)' : ''}`, async () => {
      // Eager: every step runs its JavaScript.
      const eager = setup(fp16);
      const eagerLosses: number[][] = [];
      for (let s = 0; s < STEPS; s++) {
        eager.ids.upload(batch(s));
        eager.opt.lr = lrAt(s);
        const loss = eager.step();
        eagerLosses.push(await bits(loss));
        loss.dispose();
      }
      const eagerRng = w.getRngState();
      const eagerCounts = [...eager.opt.state.values()].map((st) => st.step);
      const eagerWeights = await Promise.all(eager.model.parameters().map(bits));
      eager.dispose();

      // Captured: one eager step (it makes the optimizer's moments), the capture, then replays.
      const run = setup(fp16);
      const losses: number[][] = [];
      const rt = w.runtime();
      let graph: w.StepGraph<w.Tensor> | null = null;
      let eagerDispatches = 0;
      for (let s = 0; s < STEPS; s++) {
        run.ids.upload(batch(s));
        run.opt.lr = lrAt(s);
        const d0 = rt.stats.dispatches;
        if (s === 0) {
          const loss = run.step();
          losses.push(await bits(loss));
          loss.dispose();
          eagerDispatches = rt.stats.dispatches - d0;
        } else if (s === 1) {
          graph = w.capture(run.step);
          losses.push(await bits(graph.outputs));
        } else {
          losses.push(await bits(graph!.replay()));
          expect(rt.stats.dispatches - d0).toBe(graph!.dispatches);
        }
      }
      expect(graph!.dispatches).toBe(eagerDispatches);
      expect(losses).toEqual(eagerLosses);
      expect(w.getRngState()).toEqual(eagerRng);
      expect([...run.opt.state.values()].map((st) => st.step)).toEqual(eagerCounts);
      expect(await Promise.all(run.model.parameters().map(bits))).toEqual(eagerWeights);
      // The dropout masks really changed between replays (else the losses of a fixed batch would repeat).
      expect(new Set(losses.map((l) => l[0])).size).toBe(STEPS);
      graph!.dispose();
      run.dispose();
    });
  }

  it('gives its temporaries back on dispose() and leaves nothing allocated', async () => {
    const run = setup(false);
    run.step().dispose();
    await w.sync();
    const live = w.liveBuffers();
    const graph = w.capture(run.step);
    expect(w.liveBuffers()).toBeGreaterThan(live);
    graph.replay();
    graph.dispose();
    graph.dispose();
    expect(w.liveBuffers()).toBe(live);
    expect(() => graph.replay()).toThrow(/was disposed/);
    run.dispose();
  });

  it('refuses what a replay could not repeat, with clear errors', async () => {
    const run = setup(false);
    const live = w.liveBuffers();
    // A first step makes the optimizer's moments: state a replay would wipe.
    expect(() => w.capture(run.step)).toThrow(/Run the step once eagerly before capturing it/);
    expect(w.liveBuffers()).toBeGreaterThan(live);
    // A read-back cannot happen inside a step that is recorded.
    let inner: Promise<unknown> | null = null;
    w.capture(() => {
      inner = run.ids.toArray();
    }).dispose();
    await expect(inner!).rejects.toThrow(/read-back inside a captured step/);
    // A tensor the step reads must outlive the graph.
    const graph = w.capture(run.step);
    expect(() => w.capture(() => graph.replay())).toThrow(/replay\(\) inside capture\(\)/);
    run.ids.dispose();
    expect(() => graph.replay()).toThrow(/was freed after the capture/);
    graph.dispose();
    run.dispose();
  });
});

describe('Trainer replays its captured steps', () => {
  it('gives the losses and weights of eager steps, bit for bit, with accumulation and a short last step per epoch', async () => {
    // 3 pieces of 70 tokens, n_ctx 16, stride 16, batch 2: two optimizer steps per epoch with 4 micro-batches per
    // step, the second one short. Each shape runs eagerly in epoch 1, is captured in epoch 2 and replayed in epoch 3.
    const pieces = [0, 1, 2].map((p) => Int32Array.from({ length: 70 }, (_, i) => (i * 13 + p * 29 + ((i * p) % 5)) % V));
    const options = { ...w.GPT2_CHINESE_TRAIN_DEFAULTS, epochs: 3, batchSize: 2, lr: 1e-3, warmupSteps: 2, stride: 16, gradientAccumulation: 4, weightDecay: 0.01 };
    const run = async (eagerSteps: boolean): Promise<{ losses: number[][]; weights: number[][] }> => {
      w.manualSeed(5);
      const model = new w.GPT2LMHeadModel(w.gpt2Config({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: T, vocab_size: V, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 }));
      const trainer = new w.Trainer(model, pieces, { ...options, eagerSteps });
      const losses: number[][] = [];
      while (!trainer.done) {
        const { loss } = trainer.step();
        losses.push(await bits(loss));
        loss.dispose();
      }
      const weights = await Promise.all(model.parameters().map(bits));
      trainer.dispose();
      model.dispose();
      return { losses, weights };
    };
    const live = w.liveBuffers();
    const eager = await run(true);
    const replayed = await run(false);
    expect(replayed.losses.length).toBe(6);
    expect(replayed.losses).toEqual(eager.losses);
    expect(replayed.weights).toEqual(eager.weights);
    expect(w.liveBuffers()).toBe(live);
  });
});
