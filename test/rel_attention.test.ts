// XLNet's fused relative attention against a float64 reference: both streams, memory, masks, segments, bi_data, uni; gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { relAttentionPlan, relativeAttention, type RelAttentionMasks } from '../src/ops/rel_attention.js';
import { relAttention, relAttentionBackward, type RelDims, type RelInputs, type RelOptions } from './reference/rel_attention.js';
import { expectClose, f32, gradCheck, mulberry32, rand, useGpu, values } from './helpers.js';

useGpu();

const FWD = { atol: 2e-6, rtol: 1e-5 };

interface Case {
  name: string;
  B: number;
  NH: number;
  T: number;
  M: number;
  HS: number;
  /** Query-stream slots (positions, -1 = padding) per batch row; absent = the content stream (Q = T). */
  slots?: number[][];
  types?: boolean;
  pad?: boolean;
  perm?: boolean;
  uni?: boolean;
  sameLength?: boolean;
  biData?: boolean;
  clampTo?: number;
  dropout?: number;
}

/** Dimensions, host options and random inputs of a case (kr over the bi table: R = K + T; uni: K + 1). */
function build(
  c: Case,
  seed: number,
): { dims: RelDims; ref: RelOptions; gpu: RelAttentionMasks; call: { scale: number; dropout?: number; seed?: number }; x: RelInputs & { efs: Float64Array | null } } {
  const { B, NH, T, M, HS } = c;
  const K = M + T;
  const R = c.uni ? K + 1 : K + T;
  const Q = c.slots ? c.slots[0]!.length : T;
  const qpos = Int32Array.from(c.slots ? c.slots.flat() : Array.from({ length: B * T }, (_, i) => i % T));
  const next = mulberry32(seed);
  const types = c.types ? Array.from({ length: B * T }, (_, i) => (i % T < T / 2 ? 0 : 1)) : null;
  // Padding: the first token of the last batch row. perm: each query hides a random third of the tokens.
  const pad = c.pad ? Array.from({ length: B * T }, (_, i) => (i === (B - 1) * T ? 0 : 1)) : null;
  const perm = c.perm ? Array.from({ length: B * T * T }, () => (next() < 1 / 3 ? 1 : 0)) : null;
  const NT = c.biData ? 2 : 1;
  // qu and qv: the two halves of one draw (the op takes them stacked as qq).
  const qq = f32(rand(2 * B * NH * Q * HS, seed + 1, -1, 1));
  const x = {
    qu: qq.subarray(0, B * NH * Q * HS),
    qv: qq.subarray(B * NH * Q * HS),
    k: f32(rand(B * NH * K * HS, seed + 2, -1, 1)),
    v: f32(rand(B * NH * K * HS, seed + 3)),
    kr: f32(rand(NT * NH * R * HS, seed + 4, -1, 1)),
    efs: c.types ? f32(rand(B * NH * Q * 2, seed + 5, -2, 2)) : null,
  };
  const scale = 1 / Math.sqrt(HS);
  const common = { uni: !!c.uni, sameLength: !!c.sameLength, selfVisible: !c.slots, biData: !!c.biData };
  return {
    dims: { B, NH, Q, T, M, HS, R },
    ref: { ...common, scale, qpos, types, pad, perm },
    gpu: { ...common, T, M, qpos, ...(types ? { types } : {}), ...(pad ? { pad } : {}), ...(perm ? { perm } : {}) },
    call: { scale, ...(c.dropout ? { dropout: c.dropout, seed: 77 } : {}) },
    x,
  };
}

function gpuInputs(c: Case, b: ReturnType<typeof build>, requiresGrad = false): w.Tensor[] {
  const { B, NH, Q, HS, R } = b.dims;
  const K = b.dims.M + b.dims.T;
  const qq = new Float32Array(2 * B * NH * Q * HS);
  qq.set(b.x.qu, 0);
  qq.set(b.x.qv, B * NH * Q * HS);
  return [
    w.tensor(qq, [2, B, NH, Q, HS], { requiresGrad }),
    w.tensor(Float32Array.from(b.x.k), [B, NH, K, HS], { requiresGrad }),
    w.tensor(Float32Array.from(b.x.v), [B, NH, K, HS], { requiresGrad }),
    w.tensor(Float32Array.from(b.x.kr), [c.biData ? 2 : 1, NH, R, HS], { requiresGrad }),
    ...(b.x.efs ? [w.tensor(Float32Array.from(b.x.efs), [B, NH, Q, 2], { requiresGrad })] : []),
  ];
}

const run = (b: ReturnType<typeof build>, ts: w.Tensor[]): w.Tensor =>
  relativeAttention(ts[0]!, ts[1]!, ts[2]!, ts[3]!, ts[4] ?? null, relAttentionPlan(b.dims.B, b.dims.Q, b.gpu), b.call);

const CASES: Case[] = [
  { name: 'content stream, no masks', B: 1, NH: 2, T: 5, M: 0, HS: 4 },
  { name: 'content stream with memory, types, padding and perm_mask', B: 2, NH: 3, T: 7, M: 4, HS: 8, types: true, pad: true, perm: true },
  { name: 'query stream with a padding slot', B: 2, NH: 2, T: 9, M: 3, HS: 16, slots: [[2, 5, -1], [0, 8, 4]], types: true, perm: true },
  { name: 'bi_data: the second half reads table 1', B: 2, NH: 1, T: 6, M: 2, HS: 8, biData: true, types: true },
  { name: 'uni with same_length and memory', B: 1, NH: 2, T: 6, M: 5, HS: 4, uni: true, sameLength: true },
  { name: 'long: 70 tokens, 40 memory, HS 64', B: 1, NH: 1, T: 70, M: 40, HS: 64, perm: true, types: true },
];

describe('relativeAttention forward', () => {
  for (const [i, c] of CASES.entries()) {
    it(`matches the float64 reference: ${c.name}`, async () => {
      const b = build(c, 10 * i + 1);
      const ts = gpuInputs(c, b);
      const o = run(b, ts);
      expect(o.shape).toEqual([c.B, c.NH, b.dims.Q, c.HS]);
      expectClose(await values(o), relAttention(b.x, b.dims, b.ref), FWD, c.name);
      for (const t of [...ts, o]) t.dispose();
    });
  }

  it('a fully blocked row is uniform over all keys, as HF (perm_mask hides every token from the query stream)', async () => {
    const c: Case = { name: 'fully blocked', B: 1, NH: 1, T: 4, M: 0, HS: 4, slots: [[0, 2]] };
    const b = build(c, 91);
    const perm = new Array<number>(16).fill(1);
    Object.assign(b.ref, { perm });
    Object.assign(b.gpu, { perm });
    const ts = gpuInputs(c, b);
    const got = await values(run(b, ts));
    const mean = [0, 1, 2, 3].map((e) => [0, 1, 2, 3].reduce((s, j) => s + b.x.v[j * 4 + e]!, 0) / 4);
    expectClose(got, [...mean, ...mean], FWD, 'uniform rows');
    for (const t of ts) t.dispose();
  });
});

describe('relativeAttention backward', () => {
  for (const [i, c] of CASES.slice(0, 5).entries()) {
    it(`every input's gradient matches finite differences: ${c.name}`, async () => {
      const b = build(c, 100 + 10 * i);
      const { B, NH, Q, HS, R } = b.dims;
      const K = b.dims.M + b.dims.T;
      const qq = new Float64Array(2 * B * NH * Q * HS);
      qq.set(b.x.qu, 0);
      qq.set(b.x.qv, B * NH * Q * HS);
      await gradCheck({
        name: c.name,
        inputs: [
          { shape: [2, B, NH, Q, HS], data: qq },
          { shape: [B, NH, K, HS], data: b.x.k },
          { shape: [B, NH, K, HS], data: b.x.v },
          { shape: [c.biData ? 2 : 1, NH, R, HS], data: b.x.kr },
          ...(b.x.efs ? [{ shape: [B, NH, Q, 2], data: b.x.efs }] : []),
        ],
        gpu: (...ts) => run(b, ts),
        ref: (qq2, k, v, kr, efs) =>
          relAttention({ qu: qq2!.subarray(0, B * NH * Q * HS), qv: qq2!.subarray(B * NH * Q * HS), k: k!, v: v!, kr: kr!, efs: efs ?? null }, b.dims, b.ref),
        forwardTol: FWD,
      });
    });
  }

  /** The op's gradients (after backward with a random dout) against the float64 chain-rule reference. */
  async function expectChainRule(c: Case, seed: number, tol = { atol: 1e-5, rtol: 1e-4 }): Promise<void> {
    const b = build(c, seed);
    const ts = gpuInputs(c, b, true);
    const n = c.B * c.NH * b.dims.Q * c.HS;
    const g = f32(rand(n, seed + 1));
    run(b, ts).backward(w.tensor(Float32Array.from(g), [c.B, c.NH, b.dims.Q, c.HS]));
    const ref = relAttentionBackward(b.x, g, b.dims, b.ref);
    const dqq = await values(ts[0]!.grad!);
    expectClose(dqq.subarray(0, n), ref.qu, tol, `${c.name}: dqu`);
    expectClose(dqq.subarray(n), ref.qv, tol, `${c.name}: dqv`);
    expectClose(await values(ts[1]!.grad!), ref.k, tol, `${c.name}: dk`);
    expectClose(await values(ts[2]!.grad!), ref.v, tol, `${c.name}: dv`);
    expectClose(await values(ts[3]!.grad!), ref.kr, tol, `${c.name}: dkr`);
    if (c.types) expectClose(await values(ts[4]!.grad!), ref.efs, tol, `${c.name}: defs`);
    for (const t of ts) t.dispose();
  }

  // Sizes past one block of rows (BLOCK = 64 here), one tile of streamed rows (32) and one block of table rows, none
  // a multiple of them: the kernels' partial blocks and tiles, and the table kernel's clamped last row under uni.
  it('matches the chain-rule reference on sizes that are not multiples of the blocks and tiles: content stream', async () => {
    await expectChainRule({ name: 'content stream T 70, M 41', B: 2, NH: 2, T: 70, M: 41, HS: 8, types: true, pad: true, perm: true, biData: true }, 301);
  });

  it('matches the chain-rule reference on sizes that are not multiples of the blocks and tiles: uni query stream, slots spread over 67 tokens', async () => {
    const slots = [Array.from({ length: 66 }, (_, i) => (i === 5 ? -1 : (i * 29) % 67)), Array.from({ length: 66 }, (_, i) => 66 - i)];
    await expectChainRule({ name: 'uni query stream', B: 2, NH: 1, T: 67, M: 13, HS: 4, uni: true, slots, types: true }, 311);
  });

  it('runs over chunks of (b, h) pairs when the (p·z, ds) buffer passes the binding limit: the same bits as one pass', async () => {
    // Q·K·8 = 12·18·8 = 1728 bytes per (b, h), 4 pairs. 3584 bytes: chunks of 2; 5376: of 3 (a chunk of 3 and one
    // of 1, which holds no batch row of head 0). Every other binding of the op fits both.
    const c: Case = { name: 'chunked', B: 2, NH: 2, T: 12, M: 6, HS: 4, types: true, perm: true, biData: true };
    const b = build(c, 321);
    const g = Float32Array.from(f32(rand(c.B * c.NH * c.T * c.HS, 322)));
    const grads = async (limit: number | null): Promise<Float64Array[]> => {
      const ts = gpuInputs(c, b, true);
      const rt = w.runtime();
      rt.setBindingLimit(limit);
      try {
        run(b, ts).backward(w.tensor(g, [c.B, c.NH, c.T, c.HS]));
      } finally {
        rt.setBindingLimit(null);
      }
      const out = await Promise.all(ts.map((t) => values(t.grad!)));
      for (const t of ts) t.dispose();
      return out;
    };
    const whole = await grads(null);
    const ref = relAttentionBackward(b.x, g, b.dims, b.ref);
    const tol = { atol: 1e-5, rtol: 1e-4 };
    expectClose(whole[0]!, [...ref.qu, ...ref.qv], tol, 'dqq');
    expectClose(whole[3]!, ref.kr, tol, 'dkr');
    for (const limit of [3584, 5376]) {
      const split = await grads(limit);
      for (const [i, x] of split.entries()) expect(x, `gradient ${i} under a ${limit}-byte binding limit`).toEqual(whole[i]);
    }
  });

  it('refuses, naming the limit, when one (b, h) pair\'s (p·z, ds) buffer passes the binding limit', async () => {
    const c: Case = { name: 'too long', B: 1, NH: 1, T: 20, M: 12, HS: 4 };
    const b = build(c, 331);
    const ts = gpuInputs(c, b, true);
    const o = run(b, ts);
    const rt = w.runtime();
    rt.setBindingLimit(4096);
    try {
      // 20·32·8 = 5120 bytes.
      expect(() => o.backward(w.tensor(new Float32Array(20 * 4), [1, 1, 20, 4]))).toThrow(/one \(b, h\) pair's 20×32 \(p·z, ds\) buffer \(5120 bytes\) is over the binding limit of 4096 bytes/);
    } finally {
      rt.setBindingLimit(null);
    }
    for (const t of [...ts, o]) t.dispose();
  });

  it('matches the chain-rule reference where finite differences cannot see (a fully blocked, uniform row), with dropout', async () => {
    const c: Case = { name: 'uni query stream', B: 2, NH: 2, T: 8, M: 0, HS: 8, uni: true, slots: [[0, 3, 7], [5, 0, -1]], types: true, dropout: 0.3 };
    const b = build(c, 201);
    // Position 0 may see nothing: under uni it sees only itself, and perm_mask hides that.
    const perm = Array.from({ length: 2 * 8 * 8 }, (_, i) => (i % 64 < 8 ? 1 : 0));
    Object.assign(b.ref, { perm });
    Object.assign(b.gpu, { perm });
    const ts = gpuInputs(c, b, true);
    const g = f32(rand(c.B * c.NH * 3 * c.HS, 202));
    run(b, ts).backward(w.tensor(Float32Array.from(g), [c.B, c.NH, 3, c.HS]));
    // The kernel's dropout mask, reproduced: kernels/dropout.ts's rule on the flat [B, NH, Q, K] index.
    const { mix32 } = await import('./reference/hash.js');
    const threshold = Math.round(0.3 * 2 ** 32);
    const z = Float64Array.from({ length: c.B * c.NH * 3 * c.T }, (_, i) => (mix32(mix32(i) ^ 77) >= threshold ? 1 / 0.7 : 0));
    const ref = relAttentionBackward(b.x, g, b.dims, { ...b.ref, z });
    expectClose(await values(run(b, ts)), relAttention(b.x, b.dims, { ...b.ref, z }), FWD, 'forward with dropout');
    const n = c.B * c.NH * 3 * c.HS;
    const dqq = await values(ts[0]!.grad!);
    const tol = { atol: 1e-5, rtol: 1e-4 };
    expectClose(dqq.subarray(0, n), ref.qu, tol, 'dqu');
    expectClose(dqq.subarray(n), ref.qv, tol, 'dqv');
    expectClose(await values(ts[1]!.grad!), ref.k, tol, 'dk');
    expectClose(await values(ts[2]!.grad!), ref.v, tol, 'dv');
    expectClose(await values(ts[3]!.grad!), ref.kr, tol, 'dkr');
    expectClose(await values(ts[4]!.grad!), ref.efs, tol, 'defs');
    for (const t of ts) t.dispose();
  });
});
