// Fused causal attention against a float64 reference of Hugging Face GPT-2's masks: forward, KV cache, padding, gradients, errors.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { attentionDropout, attentionProbs, causalAttention, causalAttentionBackward, type AttentionDims } from './reference/attention.js';
import { expectClose, f32, gradCheck, numel, rand, useGpu, values } from './helpers.js';

useGpu();

// Scores here are O(1): f32 dot products and exps are good to a few ulps of 1.
const FWD = { atol: 2e-6, rtol: 1e-5 };

interface Case extends AttentionDims {
  /** keyPadding [B,S] (1 real, 0 padding). */
  pad?: number[];
  padDtype?: 'f32' | 'i32';
  scale?: number;
  /** Attention dropout probability and mask seed. */
  dropout?: number;
  seed?: number;
  /** The forward kernel (default 'auto'). */
  forward?: w.AttentionForward;
}

const name = (c: Case): string =>
  `B${c.B} NH${c.NH} T${c.T} S${c.S} HS${c.HS}${c.pad ? ` pad(${c.padDtype ?? 'f32'})` : ''}` +
  `${c.scale !== undefined ? ` scale ${c.scale}` : ''}${c.dropout ? ` dropout ${c.dropout} seed ${c.seed}` : ''}${c.forward ? ` ${c.forward}` : ''}`;

/** The reference's dropout factors for a case, or null without dropout. */
const factors = (c: Case): Float64Array | null => (c.dropout ? attentionDropout(c, c.dropout, c.seed!) : null);

/** Padding [B,S] from per-row (left pads, real tokens); the rest of the row is right padding. */
function padding(S: number, rows: [number, number][]): number[] {
  return rows.flatMap(([left, real]) => Array.from({ length: S }, (_, j) => (j >= left && j < left + real ? 1 : 0)));
}

function inputs(c: Case, seed: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const { B, NH, T, S, HS } = c;
  // Wide enough that softmax rows are far from uniform, small enough that no weight underflows to 0 wholesale.
  const spread = 2;
  return {
    q: f32(rand(B * NH * T * HS, seed, -spread, spread)),
    k: f32(rand(B * NH * S * HS, seed + 1, -spread, spread)),
    v: f32(rand(B * NH * S * HS, seed + 2)),
  };
}

function gpuAttention(c: Case, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, requiresGrad = false): w.Tensor[] {
  const { B, NH, T, S, HS } = c;
  const ts = [
    w.tensor(Float32Array.from(q), [B, NH, T, HS], { requiresGrad }),
    w.tensor(Float32Array.from(k), [B, NH, S, HS], { requiresGrad }),
    w.tensor(Float32Array.from(v), [B, NH, S, HS], { requiresGrad }),
  ];
  if (c.pad) ts.push(w.tensor(c.padDtype === 'i32' ? Int32Array.from(c.pad) : Float32Array.from(c.pad), [B, S], { dtype: c.padDtype ?? 'f32' }));
  return ts;
}

function run(c: Case, ts: w.Tensor[]): w.Tensor {
  const [q, k, v, keyPadding] = ts as [w.Tensor, w.Tensor, w.Tensor, w.Tensor | undefined];
  return w.causalAttention(q, k, v, {
    ...(keyPadding ? { keyPadding } : {}),
    ...(c.scale !== undefined ? { scale: c.scale } : {}),
    ...(c.dropout !== undefined ? { dropout: c.dropout, seed: c.seed! } : {}),
    ...(c.forward ? { forward: c.forward } : {}),
  });
}

async function checkForward(c: Case, seed: number): Promise<Float64Array> {
  const { q, k, v } = inputs(c, seed);
  const ts = gpuAttention(c, q, k, v);
  const o = run(c, ts);
  expect(o.shape).toEqual([c.B, c.NH, c.T, c.HS]);
  const got = await values(o);
  expectClose(got, causalAttention(q, k, v, c, c.pad ?? null, c.scale, factors(c)), FWD, `attention ${name(c)}`);
  for (const t of [...ts, o]) t.dispose();
  return got;
}

describe('causalAttention forward', () => {
  it('matches the float64 reference on awkward shapes, without and with a KV cache (S > T)', async () => {
    const cases: Case[] = [
      { B: 1, NH: 1, T: 1, S: 1, HS: 1 },
      { B: 1, NH: 3, T: 5, S: 5, HS: 7 },
      { B: 3, NH: 1, T: 17, S: 17, HS: 16 },
      { B: 1, NH: 1, T: 64, S: 64, HS: 64 },
      { B: 1, NH: 3, T: 130, S: 130, HS: 7 },
      { B: 1, NH: 1, T: 1, S: 7, HS: 16 },
      { B: 3, NH: 1, T: 5, S: 12, HS: 7 },
      { B: 1, NH: 3, T: 17, S: 50, HS: 64 },
      { B: 1, NH: 1, T: 64, S: 100, HS: 1 },
      { B: 1, NH: 1, T: 130, S: 131, HS: 16 },
      { B: 1, NH: 2, T: 3, S: 9, HS: 128 },
      { B: 1, NH: 1, T: 33, S: 40, HS: 256 },
    ];
    for (const [i, c] of cases.entries()) await checkForward(c, 10 * i + 1);
  });

  it('decodes one token against a long cache (T = 1, S = 1030)', async () => {
    await checkForward({ B: 1, NH: 3, T: 1, S: 1030, HS: 64 }, 5);
  });

  it('takes a custom scale', async () => {
    await checkForward({ B: 1, NH: 2, T: 9, S: 9, HS: 16, scale: 0.7 }, 6);
    await checkForward({ B: 1, NH: 1, T: 4, S: 6, HS: 8, scale: 1 }, 7);
  });

  it('runs B·NH past the 65535-workgroup grid limit', async () => {
    await checkForward({ B: 7, NH: 10_000, T: 1, S: 2, HS: 1 }, 8);
  });
});

describe('causalAttention with keyPadding', () => {
  it('right padding: padded keys get weight 0, padded queries still attend to the real keys before them', async () => {
    const S = 19;
    // Row 0 is unpadded, rows 1 and 2 end in padding.
    const pad = padding(S, [[0, 19], [0, 11], [0, 1]]);
    await checkForward({ B: 3, NH: 2, T: S, S, HS: 16, pad }, 11);
    await checkForward({ B: 3, NH: 2, T: S, S, HS: 16, pad, padDtype: 'i32' }, 12);
  });

  it('left padding: a query with no real key in view is the plain average of v over its class B keys', async () => {
    const S = 40;
    const pad = padding(S, [[0, 40], [5, 35], [37, 3], [40, 0]]);
    const c: Case = { B: 4, NH: 2, T: S, S, HS: 7, pad };
    const got = await checkForward(c, 13);
    // Batch row 2 (37 left pads), head 0, query 10: it may see keys 0..10, all padding, so every one of them and
    // the three real keys 37..39 sit in class B; the other padded keys (11..36) are class C.
    const { v } = inputs(c, 13);
    const bh = 2 * c.NH;
    const keys = [...Array.from({ length: 11 }, (_, j) => j), 37, 38, 39];
    const mean = Array.from({ length: c.HS }, (_, d) => keys.reduce((s, j) => s + v[(bh * S + j) * c.HS + d]!, 0) / keys.length);
    expectClose(got.subarray((bh * S + 10) * c.HS, (bh * S + 11) * c.HS), mean, FWD, 'uniform row');
    // Past one block of 64 queries, keys beyond the block's causal reach still count for its uniform rows.
    await checkForward({ B: 2, NH: 1, T: 150, S: 150, HS: 7, pad: padding(150, [[0, 150], [100, 50]]) }, 17);
    // A batch row with no real token at all: every query averages the keys it may see.
    await checkForward({ B: 1, NH: 1, T: 9, S: 9, HS: 5, pad: padding(9, [[9, 0]]), padDtype: 'i32' }, 14);
  });

  it('padding inside the KV cache (left-padded batched generation) and in the new tokens', async () => {
    const S = 45;
    const pad = padding(S, [[0, 45], [30, 15], [3, 40], [44, 1]]);
    await checkForward({ B: 4, NH: 3, T: 5, S, HS: 16, pad }, 15);
    await checkForward({ B: 4, NH: 1, T: 1, S, HS: 64, pad, padDtype: 'i32' }, 16);
  });

  it('masked entries get exactly zero weight (probabilities through v = one-hot rows)', async () => {
    // With v = identity [S, S] (HS = S), o is the probability matrix itself.
    const S = 12;
    const T = 8;
    const c: Case = { B: 1, NH: 1, T, S, HS: S, pad: padding(S, [[2, 8]]) };
    const q = f32(rand(T * S, 21, -3, 3));
    const k = f32(rand(S * S, 22, -3, 3));
    const v = Float64Array.from({ length: S * S }, (_, i) => (i % (S + 1) === 0 ? 1 : 0));
    const ts = gpuAttention(c, q, k, v);
    const probs = await values(run(c, ts));
    const { p, cls } = attentionProbs(q, k, c, c.pad!);
    expectClose(probs, p, FWD, 'probabilities');
    for (let i = 0; i < p.length; i++) if (cls[i] === 'C' || p[i] === 0) expect(probs[i], `pair ${i} (class ${cls[i]})`).toBe(0);
  });
});

describe('causalAttention incremental decoding', () => {
  it('the last row of a full T = 16 call equals a T = 1 call with the first 15 keys as cache', async () => {
    for (const pad of [undefined, padding(16, [[0, 16], [4, 12]])]) {
      const full: Case = { B: 2, NH: 3, T: 16, S: 16, HS: 16, ...(pad ? { pad } : {}) };
      const step: Case = { ...full, T: 1 };
      const { q, k, v } = inputs(full, 31);
      const fullTs = gpuAttention(full, q, k, v);
      const o = await values(run(full, fullTs));
      const HS = full.HS;
      const lastQ = new Float64Array(6 * HS);
      for (let bh = 0; bh < 6; bh++) lastQ.set(q.subarray((bh * 16 + 15) * HS, (bh * 16 + 16) * HS), bh * HS);
      const stepTs = gpuAttention(step, lastQ, k, v);
      const last = await values(run(step, stepTs));
      for (let bh = 0; bh < 6; bh++) {
        expectClose(last.subarray(bh * HS, (bh + 1) * HS), o.subarray((bh * 16 + 15) * HS, (bh * 16 + 16) * HS), { atol: 1e-6, rtol: 1e-6 }, `bh ${bh}`);
      }
      for (const t of [...fullTs, ...stepTs]) t.dispose();
    }
  });
});

describe('causalAttention split-K forward (decoding)', () => {
  it("'auto' takes split-K for fewer than 8 queries and the single pass from 8 on; either can be forced", () => {
    // 1024 keys in chunks of 8 lanes × 16 keys.
    expect(w.decodeSplit(1, 12, 1, 1024, 64)).toEqual({ lanes: 8, per: 1, chunks: 8 });
    expect(w.decodeSplit(2, 12, 7, 1025, 64)).toEqual({ lanes: 8, per: 4, chunks: 9 });
    expect(w.decodeSplit(1, 12, 8, 1024, 64)).toBeNull();
    expect(w.decodeSplit(1, 12, 8, 1024, 64, 'split-k')).not.toBeNull();
    expect(w.decodeSplit(1, 12, 1, 1024, 64, 'single-pass')).toBeNull();
  });

  it('both forward kernels match the float64 reference: chunk edges, padding, rows with no real key, dropout', async () => {
    const cases: Case[] = [
      { B: 1, NH: 1, T: 1, S: 1, HS: 1 },
      // Two key chunks of 128, the second holding one key; HS not a multiple of 4.
      { B: 2, NH: 3, T: 1, S: 129, HS: 13 },
      { B: 1, NH: 3, T: 1, S: 1030, HS: 64 },
      // A batch row with no real token: every query is a uniform row (the plain average of the keys it may see).
      { B: 1, NH: 2, T: 3, S: 9, HS: 7, pad: padding(9, [[9, 0]]) },
      // Left padding in the KV cache and in the new tokens; R = 4 queries per workgroup with one row past T.
      { B: 4, NH: 1, T: 3, S: 45, HS: 16, pad: padding(45, [[0, 45], [30, 15], [3, 40], [44, 1]]), padDtype: 'i32' },
      { B: 1, NH: 1, T: 2, S: 300, HS: 8, dropout: 0.3, seed: 4 },
      // Not a decoding shape, but split-K must still be right: 16 queries, the largest head size.
      { B: 1, NH: 2, T: 16, S: 40, HS: 256 },
    ];
    for (const forward of ['split-k', 'single-pass'] as const) {
      for (const [i, c] of cases.entries()) await checkForward({ ...c, forward }, 200 + 10 * i);
    }
  });

  it('the backward after a split-K forward matches HF autograd (it reads the forward\'s statistics)', async () => {
    const S = 20;
    const c: Case = { B: 3, NH: 2, T: 3, S, HS: 7, pad: padding(S, [[0, 20], [5, 15], [19, 1]]), forward: 'split-k' };
    const { q, k, v } = inputs(c, 91);
    const g = f32(rand(numel([c.B, c.NH, c.T, c.HS]), 92));
    const ts = gpuAttention(c, q, k, v, true);
    run(c, ts).backward(w.tensor(Float32Array.from(g), [c.B, c.NH, c.T, c.HS]));
    const ref = causalAttentionBackward(q, k, v, g, c, c.pad!);
    const tol = { atol: 1e-5, rtol: 1e-4 };
    expectClose(await values(ts[0]!.grad!), ref.dq, tol, 'dq');
    expectClose(await values(ts[1]!.grad!), ref.dk, tol, 'dk');
    expectClose(await values(ts[2]!.grad!), ref.dv, tol, 'dv');
    for (const t of ts) t.dispose();
  });
});

describe('causalAttention backward', () => {
  // Finite differences of the float64 forward: the oracle, wherever every row has a real key in view.
  const cases: Case[] = [
    { B: 1, NH: 3, T: 6, S: 6, HS: 7 },
    { B: 2, NH: 1, T: 3, S: 8, HS: 4 },
    { B: 1, NH: 1, T: 70, S: 75, HS: 3 },
    { B: 1, NH: 1, T: 1, S: 9, HS: 8 },
    { B: 2, NH: 1, T: 7, S: 7, HS: 7, pad: padding(7, [[0, 7], [0, 4]]) },
    { B: 2, NH: 2, T: 4, S: 9, HS: 3, pad: padding(9, [[0, 6], [1, 8]]), padDtype: 'i32', scale: 0.6 },
    // Attention dropout: the seed fixes the mask, so finite differences apply as to any other function.
    { B: 1, NH: 3, T: 6, S: 6, HS: 7, dropout: 0.3, seed: 11 },
    { B: 2, NH: 1, T: 3, S: 8, HS: 4, dropout: 0.5, seed: 12 },
    { B: 1, NH: 1, T: 70, S: 75, HS: 3, dropout: 0.1, seed: 13 },
    { B: 2, NH: 2, T: 4, S: 9, HS: 3, pad: padding(9, [[0, 6], [1, 8]]), padDtype: 'i32', scale: 0.6, dropout: 0.4, seed: 14 },
  ];
  for (const c of cases) {
    it(`q, k and v gradients match finite differences: ${name(c)}`, async () => {
      const { B, NH, T, S, HS } = c;
      const ins = [
        { shape: [B, NH, T, HS], data: rand(B * NH * T * HS, 41, -2, 2) },
        { shape: [B, NH, S, HS], data: rand(B * NH * S * HS, 42, -2, 2) },
        { shape: [B, NH, S, HS] },
        ...(c.pad ? [{ shape: [B, S], data: c.pad, dtype: c.padDtype ?? 'f32', requiresGrad: false } as const] : []),
      ];
      await gradCheck({
        name: `attention ${name(c)}`,
        inputs: ins.map((x) => ({ ...x, shape: [...x.shape] })),
        gpu: (...ts) => run(c, ts),
        ref: (q, k, v, pad) => causalAttention(q!, k!, v!, c, pad ?? null, c.scale, factors(c)),
        forwardTol: FWD,
      });
    });
  }

  it('left padding: matches the gradients HF autograd takes through uniform rows', async () => {
    // Finite differences see nothing through a uniform row (its inputs are all MIN), but torch's autograd passes
    // ds = p (dp - D) to the padded keys such a row may see: the analytic reference reproduces that.
    // S > 64 keys: the second block of keys also takes dv from uniform rows that no key of it is visible to.
    const S = 90;
    const c: Case = { B: 3, NH: 2, T: 80, S, HS: 7, pad: padding(S, [[0, 90], [75, 15], [89, 1]]) };
    const { q, k, v } = inputs(c, 51);
    const g = f32(rand(numel([c.B, c.NH, c.T, c.HS]), 52));
    const ts = gpuAttention(c, q, k, v, true);
    run(c, ts).backward(w.tensor(Float32Array.from(g), [c.B, c.NH, c.T, c.HS]));
    const ref = causalAttentionBackward(q, k, v, g, c, c.pad!);
    const tol = { atol: 1e-5, rtol: 1e-4 };
    expectClose(await values(ts[0]!.grad!), ref.dq, tol, 'dq');
    expectClose(await values(ts[1]!.grad!), ref.dk, tol, 'dk');
    expectClose(await values(ts[2]!.grad!), ref.dv, tol, 'dv');
    expect(ts[3]!.grad).toBeNull();
    for (const t of ts) t.dispose();
  });

  it('the analytic reference backward agrees with finite differences where those apply, with and without dropout', () => {
    const c: Case = { B: 2, NH: 1, T: 4, S: 6, HS: 3, pad: padding(6, [[0, 5], [0, 6]]) };
    const { q, k, v } = inputs(c, 61);
    const g = rand(c.B * c.T * c.HS, 62);
    for (const z of [null, attentionDropout(c, 0.4, 9)]) {
      const ref = causalAttentionBackward(q, k, v, g, c, c.pad!, undefined, z);
      const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array): number =>
        causalAttention(qq, kk, vv, c, c.pad!, undefined, z).reduce((s, x, i) => s + x * g[i]!, 0);
      for (const [x, analytic] of [[q, ref.dq], [k, ref.dk], [v, ref.dv]] as const) {
        const fd = Float64Array.from(x, (orig, i) => {
          x[i] = orig + 1e-6;
          const up = loss(q, k, v);
          x[i] = orig - 1e-6;
          const down = loss(q, k, v);
          x[i] = orig;
          return (up - down) / 2e-6;
        });
        expectClose(analytic, fd, { atol: 1e-7, rtol: 1e-6 }, `reference backward${z ? ' with dropout' : ''}`);
      }
    }
  });

  it('is deterministic: two backward passes give bit-identical gradients', async () => {
    const c: Case = { B: 2, NH: 3, T: 70, S: 75, HS: 16, pad: padding(75, [[0, 75], [10, 60]]) };
    const { q, k, v } = inputs(c, 71);
    const g = w.tensor(Float32Array.from(rand(2 * 3 * 70 * 16, 72)), [2, 3, 70, 16]);
    const grads: (Float32Array | Int32Array)[][] = [];
    for (let r = 0; r < 2; r++) {
      const ts = gpuAttention(c, q, k, v, true);
      run(c, ts).backward(g);
      grads.push(await Promise.all(ts.slice(0, 3).map((t) => t.grad!.toArray())));
      for (const t of ts) t.dispose();
    }
    for (let i = 0; i < 3; i++) expect(Buffer.from(grads[1]![i]!.buffer).equals(Buffer.from(grads[0]![i]!.buffer)), `input ${i}`).toBe(true);
  });

  it('computes only the gradients asked for, and frees everything else', async () => {
    const c: Case = { B: 1, NH: 2, T: 5, S: 8, HS: 4 };
    const { q, k, v } = inputs(c, 81);
    const ts = gpuAttention(c, q, k, v);
    ts[1]!.requiresGrad = true;
    const base = w.liveBuffers();
    w.tidy(() => {
      w.sum(run(c, ts)).backward();
    });
    expect(ts[0]!.grad).toBeNull();
    expect(ts[2]!.grad).toBeNull();
    expect(w.liveBuffers()).toBe(base + 1);
    const ref = causalAttentionBackward(q, k, v, new Float64Array(2 * 5 * 4).fill(1), c);
    expectClose(await values(ts[1]!.grad!), ref.dk, { atol: 1e-5, rtol: 1e-4 }, 'dk alone');
    for (const t of ts) t.dispose();
  });
});

describe('causalAttention with dropout on the probabilities (attn_pdrop)', () => {
  it('matches the float64 reference with the mask drawn from the seed, with KV cache and padding', async () => {
    const cases: Case[] = [
      { B: 1, NH: 3, T: 5, S: 5, HS: 7, dropout: 0.1, seed: 1 },
      { B: 2, NH: 2, T: 70, S: 70, HS: 16, dropout: 0.5, seed: 2 },
      { B: 1, NH: 1, T: 33, S: 40, HS: 64, dropout: 0.25, seed: 0xdeadbeef },
      { B: 1, NH: 1, T: 1, S: 300, HS: 8, dropout: 0.3, seed: 4 },
      // Left padding: uniform rows (including the real keys past the block) are dropped out too.
      { B: 3, NH: 2, T: 80, S: 90, HS: 7, pad: padding(90, [[0, 90], [75, 15], [89, 1]]), dropout: 0.2, seed: 5 },
    ];
    for (const [i, c] of cases.entries()) await checkForward(c, 100 + 10 * i);
  });

  it('drops about the fraction asked for, scales the rest by 1/(1-p), and keys the mask to the seed', async () => {
    // v = one-hot key index (HS = S): o_t[j] is exactly p_tj z_tj, the dropped-out probabilities themselves.
    const c: Case = { B: 2, NH: 2, T: 64, S: 64, HS: 64 };
    const { q, k } = inputs(c, 111);
    const v = Float64Array.from({ length: 2 * 2 * 64 * 64 }, (_, i) => (Math.floor(i / 64) % 64 === i % 64 ? 1 : 0));
    const probs = attentionProbs(q, k, c, null).p;
    const drawn = async (dropout: number, seed?: number): Promise<Float64Array> => {
      const ts = gpuAttention(c, q, k, v);
      const o = await values(w.causalAttention(ts[0]!, ts[1]!, ts[2]!, seed === undefined ? { dropout } : { dropout, seed }));
      for (const t of ts) t.dispose();
      return o;
    };
    const o = await drawn(0.3, 77);
    let visible = 0;
    let dropped = 0;
    for (let i = 0; i < o.length; i++) {
      if (probs[i] === 0) continue;
      visible++;
      if (o[i] === 0) dropped++;
      else expect(Math.abs(o[i]! - probs[i]! / 0.7)).toBeLessThan(1e-6 + 1e-5 * probs[i]!);
    }
    // 8320 visible pairs: the binomial standard deviation of the dropped fraction is 0.005.
    expect(dropped / visible).toBeGreaterThan(0.28);
    expect(dropped / visible).toBeLessThan(0.32);
    expect(await drawn(0.3, 77)).toEqual(o);
    expect(await drawn(0.3, 78)).not.toEqual(o);
    // No seed: drawn from the global generator, so manualSeed repeats it.
    w.manualSeed(5);
    const first = await drawn(0.3);
    expect(await drawn(0.3)).not.toEqual(first);
    w.manualSeed(5);
    expect(await drawn(0.3)).toEqual(first);
  });

  it('dropout 0 is the plain kernel, bit for bit', async () => {
    const c: Case = { B: 1, NH: 2, T: 20, S: 24, HS: 16 };
    const { q, k, v } = inputs(c, 121);
    const ts = gpuAttention(c, q, k, v);
    const plain = await values(run(c, ts));
    expect(await values(run({ ...c, dropout: 0, seed: 3 }, ts))).toEqual(plain);
    for (const t of ts) t.dispose();
  });

  it('left padding: matches HF autograd through uniform rows, dropout included', async () => {
    const S = 90;
    const c: Case = { B: 3, NH: 2, T: 80, S, HS: 7, pad: padding(S, [[0, 90], [75, 15], [89, 1]]), dropout: 0.3, seed: 15 };
    const { q, k, v } = inputs(c, 151);
    const g = f32(rand(numel([c.B, c.NH, c.T, c.HS]), 152));
    const ts = gpuAttention(c, q, k, v, true);
    run(c, ts).backward(w.tensor(Float32Array.from(g), [c.B, c.NH, c.T, c.HS]));
    const ref = causalAttentionBackward(q, k, v, g, c, c.pad!, undefined, factors(c));
    const tol = { atol: 1e-5, rtol: 1e-4 };
    expectClose(await values(ts[0]!.grad!), ref.dq, tol, 'dq');
    expectClose(await values(ts[1]!.grad!), ref.dk, tol, 'dk');
    expectClose(await values(ts[2]!.grad!), ref.dv, tol, 'dv');
    for (const t of ts) t.dispose();
  });
});

describe('causalAttention: bad input', () => {
  it('rejects mismatched shapes and dtypes, naming them, before any GPU work', () => {
    const q = w.zeros([2, 3, 5, 8]);
    const k = w.zeros([2, 3, 7, 8]);
    const before = w.runtime().stats.dispatches;
    expect(() => w.causalAttention(q, w.zeros([2, 3, 7, 4]), k)).toThrow(/causalAttention: k and v must both be \[B,NH,S,HS\] = \[2,3,S,8\].*k\[2,3,7,4\]/);
    expect(() => w.causalAttention(q, k, w.zeros([2, 3, 6, 8]))).toThrow(/v\[2,3,6,8\]/);
    expect(() => w.causalAttention(q, w.zeros([2, 4, 7, 8]), w.zeros([2, 4, 7, 8]))).toThrow(/\[2,3,S,8\] to match q, got q\[2,3,5,8\]/);
    expect(() => w.causalAttention(q, w.zeros([2, 3, 4, 8]), w.zeros([2, 3, 4, 8]))).toThrow(/need S >= T keys.*q\[2,3,5,8\], k\[2,3,4,8\]/);
    expect(() => w.causalAttention(w.zeros([3, 5, 8]), k, k)).toThrow(/must be 4-d.*q\[3,5,8\]/);
    expect(() => w.causalAttention(w.zeros([1, 1, 2, 300]), w.zeros([1, 1, 2, 300]), w.zeros([1, 1, 2, 300]))).toThrow(
      /head size HS = 300 is not supported \(1 <= HS <= 256\)/,
    );
    expect(() => w.causalAttention(q, k, w.zeros([2, 3, 7, 8], { dtype: 'i32' }))).toThrow(/expected f32 for v, got i32 \[2,3,7,8\]/);
    expect(() => w.causalAttention(q, k, k, { keyPadding: w.zeros([2, 5]) })).toThrow(/keyPadding must be \[B,S\] = \[2,7\], got \[2,5\]/);
    expect(() => w.causalAttention(q, k, k, { keyPadding: w.zeros([2, 7], { dtype: 'f16' }) })).toThrow(/keyPadding must be f32 or i32, got f16/);
    expect(() => w.causalAttention(q, k, k, { scale: NaN })).toThrow(/scale must be a finite number/);
    expect(() => w.causalAttention(q, k, k, { dropout: 1 })).toThrow(/dropout must be in \[0, 1\), got 1/);
    expect(() => w.causalAttention(q, k, k, { dropout: -0.5 })).toThrow(/dropout must be in \[0, 1\), got -0.5/);
    expect(() => w.causalAttention(q, k, k, { dropout: 0.1, seed: 1.5 })).toThrow(/seed must be an integer in \[0, 2\^32\), got 1.5/);
    expect(() => w.causalAttention(q, k, k, { forward: 'flash' as w.AttentionForward })).toThrow(/forward must be 'auto', 'single-pass' or 'split-k', got flash/);
    expect(w.runtime().stats.dispatches).toBe(before);
  });
});
