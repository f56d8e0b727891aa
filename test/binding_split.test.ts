// Split bindings: under a lowered binding limit (runtime().setBindingLimit) every op that binds a tensor larger than one binding splits its work, with the same bits as unsplit.
import { describe, expect, it, vi } from 'vitest';
import * as w from '../src/index.js';
import { linearRef, matmulRef } from './reference/matmul.js';
import { adamwStep, clipGradNorm as clipRef, type AdamRef } from './reference/optim.js';
import { crossEntropy as crossEntropyRef } from './reference/rows.js';
import { embedding as embeddingRef, indexSelect as indexSelectRef, scatterAddF32 } from './reference/shape.js';
import { reduce as reduceRef } from './reference/elementwise.js';
import { expectClose, f32, numel, rand, useGpu, values } from './helpers.js';

useGpu();

/** float32's unit roundoff. */
const U = 2 ** -24;

/** Runs fn with the binding limit lowered to `bytes`; returns its result and the labels of the launches it recorded. */
function underLimit<T>(bytes: number, fn: () => T): { result: T; labels: string[] } {
  const rt = w.runtime();
  const spy = vi.spyOn(rt, 'dispatch');
  rt.setBindingLimit(bytes);
  try {
    const result = fn();
    return { result, labels: spy.mock.calls.map(([, args]) => args.label) };
  } finally {
    rt.setBindingLimit(null);
    spy.mockRestore();
  }
}

/** Bit-for-bit equality (NaNs and signed zeros included), naming the first element that differs. */
function expectSameBits(actual: Float32Array | Int32Array, expected: Float32Array | Int32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  const i = a.findIndex((bits, k) => bits !== e[k]);
  if (i >= 0) expect.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (the same bits as unsplit)`);
}

const read = async (t: w.Tensor): Promise<Float32Array> => (await t.toArray()) as Float32Array;

describe('setBindingLimit', () => {
  it('lowers the limit dispatch() checks, and rejects limits that are not aligned or above the adapter', () => {
    const rt = w.runtime();
    const real = rt.limits.maxStorageBufferBindingSize;
    expect(rt.bindingLimit).toBe(real);
    const t = w.zeros([300]);
    const k = new w.Kernel('touch', `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = 1.0; }`);
    rt.setBindingLimit(1024);
    try {
      expect(rt.bindingLimit).toBe(1024);
      expect(() => rt.dispatch(k, { buffers: [t.range], grid: [1], label: 'touch t[300]' })).toThrow(/touch t\[300\].*over the binding limit set by setBindingLimit\(\)/);
    } finally {
      rt.setBindingLimit(null);
    }
    expect(rt.bindingLimit).toBe(real);
    for (const bad of [1000, 256, real + 256, -512]) expect(() => rt.setBindingLimit(bad)).toThrow(/setBindingLimit: bytes must be a multiple of 256/);
    t.dispose();
  });
});

/** Forward tolerance against float64 for dot products of length K: the bound test/matmul.test.ts explains. */
function dotTol(K: number): { atol: number; rtol: number } {
  return { atol: 1e-5 * Math.max(1, (K / 64) ** 1.5), rtol: 1e-5 };
}

/** The distinct block starts along M, N and K that split matmul launches' labels name. */
function blockStarts(labels: string[]): { M: Set<number>; N: Set<number>; K: Set<number> } {
  const starts = { M: new Set<number>(), N: new Set<number>(), K: new Set<number>() };
  for (const l of labels) {
    const m = /block rows (\d+)\.\.\d+ cols (\d+)\.\.\d+ k (\d+)\.\./.exec(l);
    if (!m) continue;
    starts.M.add(Number(m[1]));
    starts.N.add(Number(m[2]));
    starts.K.add(Number(m[3]));
  }
  return starts;
}

describe('matmul split into blocks along M, N and K', () => {
  // 2 KiB bindings: 512 floats, 449 wherever a window starts. Shapes chosen so that, in every transpose
  // layout, some product is cut along each of M, N and K (odd sizes, blocks ending mid-row).
  const LIMIT = 2048;
  const SHAPES: [number, number, number][] = [
    [300, 5, 7],
    [3, 600, 4],
    [2, 7, 700],
    [131, 97, 67],
    [1, 1001, 3],
  ];
  let seed = 1;

  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    it(`${transA ? 'aᵀ' : 'a'}·${transB ? 'bᵀ' : 'b'}: the same bits as one launch, and the float64 reference`, async () => {
      const cut = { M: false, N: false, K: false };
      for (const [M, K, N] of SHAPES) {
        const as = transA ? [K, M] : [M, K];
        const bs = transB ? [N, K] : [K, N];
        const a = f32(rand(numel(as), seed++));
        const b = f32(rand(numel(bs), seed++));
        const ta = w.tensor(Float32Array.from(a), as);
        const tb = w.tensor(Float32Array.from(b), bs);
        const whole = w.matmul(ta, tb, { transA, transB });
        const { result: split, labels } = underLimit(LIMIT, () => w.matmul(ta, tb, { transA, transB }));
        const what = `[${as}]${transA ? 'ᵀ' : ''}·[${bs}]${transB ? 'ᵀ' : ''}`;
        expect(labels.length, `${what}: launches`).toBeGreaterThan(1);
        const starts = blockStarts(labels);
        for (const d of ['M', 'N', 'K'] as const) cut[d] ||= starts[d].size > 1;
        expectSameBits(await read(split), await read(whole), what);
        const ref = matmulRef({ data: a, shape: as, trans: transA }, { data: b, shape: bs, trans: transB });
        expectClose(await values(split), ref.data, dotTol(K), `${what} against float64`);
        for (const t of [ta, tb, whole, split]) t.dispose();
      }
      expect(cut).toEqual({ M: true, N: true, K: true });
    });
  }

  it('linear with its bias: forward (bias added by the last K block) and every gradient, the same bits', async () => {
    // [2, 1001] · [3, 1001]ᵀ + b: blocks of one row and 448 of K, the bias in the third K block only.
    const [M, K, N] = [2, 1001, 3];
    const x = f32(rand(M * K, 71));
    const wt = f32(rand(N * K, 72));
    const bias = f32(rand(N, 73));
    const run = (limit: number | null): [w.Tensor, w.Tensor[]] => {
      const params = [w.tensor(Float32Array.from(x), [M, K]), w.tensor(Float32Array.from(wt), [N, K]), w.tensor(Float32Array.from(bias), [N])];
      for (const p of params) p.requiresGrad = true;
      const go = (): w.Tensor => {
        const y = w.linear(params[0]!, params[1]!, params[2]!);
        y.backward(w.tensor(Float32Array.from(rand(M * N, 74)), [M, N]));
        return y;
      };
      return [limit === null ? go() : underLimit(limit, go).result, params];
    };
    const [y, params] = run(null);
    const [ys, split] = run(LIMIT);
    expectSameBits(await read(ys), await read(y), 'linear forward');
    expectClose(await values(ys), linearRef({ data: x, shape: [M, K] }, { data: wt, shape: [N, K] }, bias), dotTol(K), 'linear against float64');
    for (const i of [0, 1, 2]) expectSameBits(await read(split[i]!.grad!), await read(params[i]!.grad!), `linear gradient ${['dx', 'dW', 'db'][i]}`);
    for (const t of [y, ys, ...params, ...split]) t.dispose();
  });

  it('a batched product whose operand outgrows the binding is refused with a clear error', () => {
    const a = w.zeros([3, 40, 5]);
    const b = w.zeros([3, 5, 40]);
    expect(() => underLimit(1024, () => w.matmul(a, b))).toThrow(/only 2-D products .* are split/);
    a.dispose();
    b.dispose();
  });
});

describe('embedding and indexSelect split', () => {
  // 2 KiB bindings (512 floats): the [333, 37] table goes in 25 flat chunks, most ending mid-row, and its
  // gradient in windows of 12 rows starting anywhere. The ids and the incoming gradient [13, 37] (activation
  // sized, bound whole) fit. Ids at both ends, repeated, and out of range.
  const LIMIT = 2048;
  const [V, C] = [333, 37];
  const ids = [0, 332, 17, 332, 5, -1, 5, 333, 1_000_000, 100, 0, 256, 5];

  it('embedding [333, 37]: the float64 gather, and the float32 scatter-add gradient in n order, bit for bit', async () => {
    const weight = f32(rand(V * C, 1));
    const g = Float32Array.from(rand(ids.length * C, 2));
    const run = (limit: number | null): [w.Tensor, w.Tensor] => {
      const table = w.tensor(Float32Array.from(weight), [V, C], { requiresGrad: true });
      const go = (): w.Tensor => {
        const out = w.embedding(w.tensor(Int32Array.from(ids), [ids.length], { dtype: 'i32' }), table);
        out.backward(w.tensor(g, [ids.length, C]));
        return out;
      };
      return [limit === null ? go() : underLimit(limit, go).result, table];
    };
    const [out, table] = run(null);
    const [outSplit, tableSplit] = run(LIMIT);
    expect(Array.from(await outSplit.toArray())).toEqual(Array.from(embeddingRef(ids, weight, V, C)));
    expectSameBits(await read(tableSplit.grad!), scatterAddF32(g, ids, V, C, 'increasing'), 'embedding gradient against the float32 scatter-add');
    expectSameBits(await read(tableSplit.grad!), await read(table.grad!), 'embedding gradient');
    expect(await read(out)).toEqual(await read(outSplit));
    for (const t of [out, table, outSplit, tableSplit]) t.dispose();
  });

  it('indexSelect along a middle dim (x [3, 333, 5]): forward and gradient, per outer index', async () => {
    const shape = [3, V, 5];
    const x = f32(rand(numel(shape), 4));
    const run = (limit: number | null): [w.Tensor, w.Tensor, string[]] => {
      const t = w.tensor(Float32Array.from(x), shape, { requiresGrad: true });
      const go = (): w.Tensor => {
        const out = w.indexSelect(t, 1, w.tensor(Int32Array.from(ids), [ids.length], { dtype: 'i32' }));
        out.backward(w.tensor(Float32Array.from(rand(out.size, 5)), out.shape));
        return out;
      };
      if (limit === null) return [go(), t, []];
      const { result, labels } = underLimit(limit, go);
      return [result, t, labels];
    };
    const [out, t] = run(null);
    const [outSplit, tSplit, labels] = run(LIMIT);
    expect(labels.some((l) => l.includes('rows 89..177 of outer 2'))).toBe(true);
    expect(Array.from(await outSplit.toArray())).toEqual(Array.from(indexSelectRef(x, shape, 1, ids)));
    expectSameBits(await read(tSplit.grad!), await read(t.grad!), 'indexSelect gradient');
    for (const u of [out, t, outSplit, tSplit]) u.dispose();
  });
});

describe('elementwise, reductions and cross-entropy split', () => {
  it('unary, binary, fill and gradient accumulation in flat chunks: the same bits', async () => {
    const n = 1001;
    const run = (limit: number | null): w.Tensor[] => {
      const a = w.tensor(Float32Array.from(rand(n, 6)), [n], { requiresGrad: true });
      const b = w.tensor(Float32Array.from(rand(n, 7)), [n], { requiresGrad: true });
      const f = (): w.Tensor => w.add(w.mul(w.gelu(a, 'tanh'), b), w.div(a, w.add(w.exp(b), 1)));
      const go = (): w.Tensor => {
        // Two forward and backward passes: the second accumulates into the .grad the first left.
        f().backward(w.full([n], 0.5));
        const y = f();
        y.backward(w.mul(w.full([n], 1.5), b));
        return y;
      };
      return [limit === null ? go() : underLimit(limit, go).result, a, b];
    };
    const whole = run(null);
    const split = run(512);
    expectSameBits(await read(split[0]!), await read(whole[0]!), 'forward');
    expectSameBits(await read(split[1]!.grad!), await read(whole[1]!.grad!), 'da');
    expectSameBits(await read(split[2]!.grad!), await read(whole[2]!.grad!), 'db');
    for (const t of [...whole, ...split]) t.dispose();
  });

  it('sum and max over rows and over columns, in blocks that continue the sums: the same bits, and float64', async () => {
    const cases: [number[], number[]][] = [
      [[40, 333], [0]],
      [[333, 40], [1]],
      [[3, 50, 41], [1]],
      [[2, 1, 700], [0, 1]],
    ];
    for (const [shape, dims] of cases) {
      const x = f32(rand(numel(shape), 8));
      const t = w.tensor(Float32Array.from(x), shape);
      for (const op of ['sum', 'max'] as const) {
        const whole = w[op](t, dims);
        const { result: split, labels } = underLimit(1024, () => w[op](t, dims));
        const what = `${op} x[${shape}] dims [${dims}]`;
        expect(labels.length, `${what}: launches`).toBeGreaterThan(1);
        expectSameBits(await read(split), await read(whole), what);
        const R = dims.reduce((p, d) => p * shape[d]!, 1);
        const ref = op === 'sum' ? reduceRef(x, shape, dims, (s, v) => s + v, 0) : reduceRef(x, shape, dims, Math.max, -Infinity);
        expectClose(await values(split), ref, { atol: R * 1e-7, rtol: 1e-6 }, `${what} against float64`);
        whole.dispose();
        split.dispose();
      }
      t.dispose();
    }
  });

  it('crossEntropy in blocks of one row (windows at any offset): loss and dlogits, the same bits, and float64', async () => {
    const [N, V] = [37, 101];
    const data = f32(rand(N * V, 9, -3, 3));
    const targets = Int32Array.from(rand(N, 10, 0, V), Math.floor);
    targets[4] = -100;
    for (const reduction of ['mean', 'none'] as const) {
      const run = (limit: number | null): [w.Tensor, w.Tensor] => {
        const logits = w.tensor(Float32Array.from(data), [N, V], { requiresGrad: true });
        const go = (): w.Tensor => {
          const loss = w.crossEntropy(logits, w.tensor(targets, [N], { dtype: 'i32' }), { reduction });
          loss.backward(reduction === 'none' ? w.tensor(Float32Array.from(rand(N, 11)), [N]) : undefined);
          return loss;
        };
        return [limit === null ? go() : underLimit(limit, go).result, logits];
      };
      const [loss, logits] = run(null);
      const [lossSplit, logitsSplit] = run(1024);
      expectSameBits(await read(lossSplit), await read(loss), `crossEntropy ${reduction} loss`);
      expectSameBits(await read(logitsSplit.grad!), await read(logits.grad!), `crossEntropy ${reduction} dlogits`);
      expectClose(await values(lossSplit), crossEntropyRef(data, V, targets, { reduction }), { atol: 1e-5, rtol: 1e-5 }, `crossEntropy ${reduction} against float64`);
      for (const t of [loss, logits, lossSplit, logitsSplit]) t.dispose();
    }
    const wide = w.zeros([2, 300]);
    expect(() => underLimit(1024, () => w.crossEntropy(wide, w.tensor(Int32Array.from([0, 1]), [2], { dtype: 'i32' })))).toThrow(
      /crossEntropy: one row of 300 elements .* does not fit one storage binding of 1024 bytes/,
    );
    wide.dispose();
  });
});

describe('optimizer state and gradient norms split', () => {
  it('AdamW on parameters of 1001 and 70003 elements, two steps: the same bits, and the float64 reference', async () => {
    const sizes = [1001, 70_003];
    const run = async (limit: number | null): Promise<Float32Array[]> => {
      const params = sizes.map((n, i) => w.tensor(Float32Array.from(rand(n, 20 + i)), [n], { requiresGrad: true }));
      const opt = new w.AdamW(params, { lr: 1e-2, betas: [0.9, 0.95], weightDecay: 0.1 });
      for (let step = 0; step < 2; step++) {
        params.forEach((p, i) => {
          p.grad?.dispose();
          p.grad = w.tensor(Float32Array.from(rand(sizes[i]!, 30 + 10 * step + i, -2, 2)), [sizes[i]!]);
        });
        if (limit === null) opt.step();
        else underLimit(limit, () => opt.step());
      }
      const out = await Promise.all(params.map(read));
      opt.dispose();
      for (const p of params) p.dispose();
      return out;
    };
    const whole = await run(null);
    const split = await run(1024);
    sizes.forEach((n, i) => {
      expectSameBits(split[i]!, whole[i]!, `AdamW param of ${n}`);
      const ref: AdamRef = { p: f32(rand(n, 20 + i)), m: new Float64Array(n), v: new Float64Array(n), step: 0 };
      for (let step = 0; step < 2; step++) adamwStep(ref, f32(rand(n, 30 + 10 * step + i, -2, 2)), 1e-2, 0.9, 0.95, 1e-8, 0.1);
      expectClose(split[i]!, ref.p, { atol: 2e-6, rtol: 2e-6 }, `AdamW param of ${n} against float64`);
    });
  });

  /**
   * clipGradNorm under `limit`: the norm, and the clipped gradients, with those unsplit and in float64.
   * Sizes: one gradient spans several 4096-element blocks, others are short or odd.
   */
  async function clipUnder(limit: number): Promise<{ norm: [number, number]; grads: [Float32Array[], Float32Array[]]; ref: number; refGrads: Float64Array[] }> {
    const sizes = [3, 4097 * 3 + 5, 1, 2000];
    const data = sizes.map((n, i) => f32(rand(n, 50 + i)));
    const run = async (bytes: number | null): Promise<[number, Float32Array[]]> => {
      const params = sizes.map((n) => w.zeros([n], { requiresGrad: true }));
      params.forEach((p, i) => (p.grad = w.tensor(Float32Array.from(data[i]!), [sizes[i]!])));
      const norm = bytes === null ? w.clipGradNorm(params, 1) : underLimit(bytes, () => w.clipGradNorm(params, 1)).result;
      const out: [number, Float32Array[]] = [await norm.item(), await Promise.all(params.map((p) => read(p.grad!)))];
      norm.dispose();
      for (const p of params) p.dispose();
      return out;
    };
    const [n0, g0] = await run(null);
    const [n1, g1] = await run(limit);
    const refGrads = data.map((d) => Float64Array.from(d));
    const ref = clipRef(refGrads, 1);
    return { norm: [n1, n0], grads: [g1, g0], ref, refGrads };
  }

  it('clipGradNorm with bindings of whole 4096-element blocks: the same bits, and float64', async () => {
    // 16 KiB + 256 B: chunks of 4096 elements, each a whole number of the partial-sum blocks.
    const { norm, grads, ref, refGrads } = await clipUnder(16640);
    expect(norm[0]).toBe(norm[1]);
    grads[0].forEach((g, i) => expectSameBits(g, grads[1][i]!, `clipped gradient ${i}`));
    expectClose([norm[0]], [ref], { atol: 0, rtol: 1e-5 }, 'norm against float64');
    grads[0].forEach((g, i) => expectClose(g, refGrads[i]!, { atol: 1e-7, rtol: 1e-5 }, `clipped gradient ${i} against float64`));
  });

  it('clipGradNorm with bindings below one block: the norm within float32 rounding of the unsplit one', async () => {
    // 512 B bindings: 128-element chunks, so the partial-sum blocks shrink and the sum of squares is
    // added in another order. Both orders add the same n non-negative terms x², and the computed sum of
    // each is Σ x²(1 + θ) with |θ| <= γ_d = d·u/(1 - d·u), d the roundings on any term's path: its square
    // (1), an invocation's run over its block (<= 16), the block's 256-lane tree (8), the final
    // invocation's run over the partials (ceil(P / 256)), the final tree (8). So the two sums differ by at
    // most 2γ_d of the sum, their square roots by γ_d (+ u for each sqrt), relatively. The clip
    // coefficient maxNorm / (norm + 1e-6) adds a rounding per add and divide in each run, and each clipped
    // gradient one more per multiply: 6u in all.
    const { norm, grads } = await clipUnder(512);
    const P = [3, 4097 * 3 + 5, 1, 2000].reduce((s, n) => s + Math.ceil(n / 128), 0);
    const d = 1 + 16 + 8 + Math.ceil(P / 256) + 8;
    const gamma = (d * U) / (1 - d * U);
    const normTol = gamma + 2 * U;
    expectClose([norm[0]], [norm[1]], { atol: 0, rtol: normTol }, 'norm');
    expect(norm[0]).toBeGreaterThan(1); // the gradients were clipped
    grads[0].forEach((g, i) => expectClose(g, grads[1][i]!, { atol: 0, rtol: normTol + 6 * U }, `clipped gradient ${i}`));
  });
});

describe('GPT-2 with its embedding, logits and optimizer state split', () => {
  // vocab 997 × n_embd 48: the embedding (187 KiB), its gradient, the logits [B·T, 997] and the AdamW
  // moments all outgrow the lowered limits below; n_embd 48 makes the flat chunks end mid-row.
  const CONFIG = { vocab_size: 997, n_embd: 48, n_head: 4, n_layer: 2, n_positions: 16, embd_pdrop: 0, resid_pdrop: 0, attn_pdrop: 0 };
  const MAX_NORM = 0.5;

  interface Step {
    loss: Float32Array;
    grads: Map<string, Float32Array>;
    norm: number;
    clipped: Map<string, Float32Array>;
  }

  /** `steps` training steps (forward, backward, clipGradNorm, AdamW) of the same seeded model under `limit`. */
  async function train(limit: number | null, [B, T]: [number, number], steps: number): Promise<{ steps: Step[]; params: Map<string, Float32Array>; labels: string[] }> {
    w.manualSeed(3);
    const model = new w.GPT2LMHeadModel(CONFIG);
    const opt = new w.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1 });
    const ids = w.tensor(Int32Array.from(rand(B * T, 60, 0, CONFIG.vocab_size), Math.floor), [B, T], { dtype: 'i32' });
    const named = model.namedParameters();
    const readAll = async (of: (p: w.Tensor) => w.Tensor): Promise<Map<string, Float32Array>> =>
      new Map(await Promise.all(named.map(async ([n, p]) => [n, await read(of(p))] as const)));
    const out: Step[] = [];
    const rt = w.runtime();
    const spy = vi.spyOn(rt, 'dispatch');
    let labels: string[] = [];
    rt.setBindingLimit(limit);
    try {
      for (let s = 0; s < steps; s++) {
        const loss = w.tidy(() => {
          const l = model.forward({ inputIds: ids, labels: ids }).loss!;
          l.backward();
          return l;
        });
        const grads = await readAll((p) => p.grad!);
        const norm = w.clipGradNorm(model.parameters(), MAX_NORM);
        out.push({ loss: await read(loss), grads, norm: await norm.item(), clipped: await readAll((p) => p.grad!) });
        opt.step();
        model.zeroGrad();
        loss.dispose();
        norm.dispose();
      }
    } finally {
      rt.setBindingLimit(null);
      labels = spy.mock.calls.map(([, args]) => args.label);
      spy.mockRestore();
    }
    const params = await readAll((p) => p);
    opt.dispose();
    model.dispose();
    ids.dispose();
    return { steps: out, params, labels };
  }

  /** Asserts that the launches split the embedding, its gradient, the LM head's products, the logits and the optimizer. */
  function expectSplit(labels: string[]): void {
    const V = CONFIG.vocab_size;
    const some = (re: RegExp, what: string): void => expect(labels.some((l) => re.test(l)), what).toBe(true);
    some(/^embedding x\[997,48\] .* x elements [1-9]/, 'embedding gather in table chunks');
    some(/^embedding_backward .* rows [1-9]\d*\.\./, 'embedding gradient in row windows');
    some(new RegExp(`^matmul a\\[\\d+,\\d+,48\\] b\\[${V},48\\]ᵀ block rows \\d+\\.\\.\\d+ cols [1-9]`), 'LM head logits in column blocks');
    some(/^matmul_backward .* dA block .* k [1-9]/, 'dh = dlogits·wte continued along K');
    some(/^matmul_backward .* dB block rows [1-9]/, 'dwte = dlogitsᵀ·h in row blocks');
    some(/^crossEntropy logits.* rows [1-9]/, 'cross-entropy in row blocks');
    some(/^crossEntropy_backward logits.* rows [1-9]/, 'cross-entropy backward in row blocks');
    some(/^add a\[997,48\] b\[997,48\] elements [1-9]/, 'the two wte gradients summed in chunks');
    some(/^grad_norm_partial g\[997,48\] elements [1-9]/, 'the grad norm in chunks');
    some(/^clip_scale g\[997,48\] elements [1-9]/, 'clipping in chunks');
    some(/^adamw p\[997,48\] elements [1-9]/, 'AdamW in chunks');
  }

  it('16.25 KiB bindings: loss, every gradient, the clipped norm and the parameters after 2 AdamW steps, bit for bit', async () => {
    // Everything splits here (the embedding, its gradient and moments in chunks of 4160 elements, 86⅔
    // rows, for AdamW and of 4096 for the norm; the logits in blocks of 4 rows × 85 columns; the MLP and
    // attention weights too), and every split op keeps its order of operations: gathers and scatter-adds
    // sum each element alone in n order, matmul blocks along K continue their sums, cross-entropy works per
    // row, and the norm's chunks are whole 4096-element blocks.
    const whole = await train(null, [2, 7], 2);
    const split = await train(16640, [2, 7], 2);
    expectSplit(split.labels);
    whole.steps.forEach((s, i) => {
      const t = split.steps[i]!;
      expectSameBits(t.loss, s.loss, `step ${i} loss`);
      for (const [name, g] of s.grads) expectSameBits(t.grads.get(name)!, g, `step ${i} d loss / d ${name}`);
      expect(t.norm, `step ${i} norm`).toBe(s.norm);
      expect(s.norm).toBeGreaterThan(MAX_NORM); // clipping is active
    });
    for (const [name, p] of whole.params) expectSameBits(split.params.get(name)!, p, `${name} after 2 steps`);
  });

  it('4.5 KiB bindings: loss and every gradient bit for bit; the clipped gradients within float32 rounding', async () => {
    // 1152 floats per binding (each [B·T, V] logits row, 997 floats plus up to 63 of alignment, just fits),
    // with B = 1, T = 5 so the activations fit. Below 4096 elements the grad-norm blocks shrink to the
    // chunks and the sum of squares changes order: the bound is the one derived for clipGradNorm above.
    const whole = await train(null, [1, 5], 1);
    const split = await train(4608, [1, 5], 1);
    expectSplit(split.labels);
    const [s, t] = [whole.steps[0]!, split.steps[0]!];
    expectSameBits(t.loss, s.loss, 'loss');
    for (const [name, g] of s.grads) expectSameBits(t.grads.get(name)!, g, `d loss / d ${name}`);
    const P = [...s.grads.values()].reduce((n, g) => n + Math.ceil(g.length / 1152), 0);
    const d = 1 + 16 + 8 + Math.ceil(P / 256) + 8;
    const normTol = (d * U) / (1 - d * U) + 2 * U;
    expect(s.norm).toBeGreaterThan(MAX_NORM);
    expectClose([t.norm], [s.norm], { atol: 0, rtol: normTol }, 'norm');
    for (const [name, g] of s.clipped) expectClose(t.clipped.get(name)!, g, { atol: 0, rtol: normTol + 6 * U }, `clipped d loss / d ${name}`);
  });

  it('a vocabulary whose one row of logits outgrows a binding is refused before allocating', () => {
    const before = w.liveBuffers();
    expect(() => underLimit(1024, () => new w.GPT2LMHeadModel({ ...CONFIG, vocab_size: 300 }))).toThrow(
      /too large for this adapter: one row of 300 logits needs 1\.2 KiB in one storage binding/,
    );
    expect(w.liveBuffers()).toBe(before);
  });
});

describe('XLNet with its word embedding, logits and LM bias split', () => {
  it('4.5 KiB bindings: loss and every gradient (the bias gradient sums the logits gradient in blocks), bit for bit', async () => {
    const config = { vocab_size: 997, d_model: 32, n_layer: 1, n_head: 2, d_head: 16, d_inner: 64, dropout: 0, mem_len: 0 };
    const [B, T] = [2, 6];
    const run = async (limit: number | null): Promise<{ loss: Float32Array; grads: Map<string, Float32Array>; labels: string[] }> => {
      w.manualSeed(9);
      const model = new w.XLNetLMHeadModel(config);
      const ids = w.tensor(Int32Array.from(rand(B * T, 61, 0, config.vocab_size), Math.floor), [B, T], { dtype: 'i32' });
      const go = (): w.Tensor =>
        w.tidy(() => {
          const l = model.forward({ inputIds: ids, labels: ids, useMems: false }).loss!;
          l.backward();
          return l;
        });
      const { result: loss, labels } = limit === null ? { result: go(), labels: [] } : underLimit(limit, go);
      // Parameters the plain content stream does not use (mask_emb, the segment terms) get no gradient.
      const used = model.namedParameters().filter(([, p]) => p.grad);
      const grads = new Map(await Promise.all(used.map(async ([n, p]) => [n, await read(p.grad!)] as const)));
      const out = { loss: await read(loss), grads, labels };
      loss.dispose();
      ids.dispose();
      model.dispose();
      return out;
    };
    const whole = await run(null);
    const split = await run(4608);
    expect(split.labels.some((l) => /^linear a\[2,6,32\] b\[997,32\]ᵀ block/.test(l))).toBe(true);
    expect(split.labels.some((l) => /^sum x\[2,6,997\] dims 0\.\.1 outer 0 rows [1-9]/.test(l))).toBe(true);
    expectSameBits(split.loss, whole.loss, 'loss');
    expect([...split.grads.keys()]).toEqual([...whole.grads.keys()]);
    expect(whole.grads.has('transformer.word_embedding.weight') && whole.grads.has('lm_loss.bias')).toBe(true);
    for (const [name, g] of whole.grads) expectSameBits(split.grads.get(name)!, g, `d loss / d ${name}`);
  });
});
