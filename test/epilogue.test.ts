// Fused matmul epilogues (residual + dropout(gelu(x·W + b)) in the product's store): float64 references, finite differences, and the unfused ops' bits.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { geluErf, geluTanh } from './reference/elementwise.js';
import { matmulRef } from './reference/matmul.js';
import { dropoutBits } from './reference/rows.js';
import { expectClose, f32, gradCheck, numel, rand, useGpu } from './helpers.js';

useGpu();

interface Case {
  name: string;
  epilogue: { gelu?: 'none' | 'tanh'; dropout?: number; residual?: boolean };
}

const SEED = 0x2545f491;

const CASES: Case[] = [
  { name: 'gelu tanh', epilogue: { gelu: 'tanh' } },
  { name: 'gelu erf', epilogue: { gelu: 'none' } },
  { name: 'dropout', epilogue: { dropout: 0.3 } },
  { name: 'residual', epilogue: { residual: true } },
  { name: 'dropout + residual', epilogue: { dropout: 0.1, residual: true } },
  { name: 'gelu tanh + dropout + residual', epilogue: { gelu: 'tanh', dropout: 0.25, residual: true } },
];

/**
 * float64 reference: y = r + drop(gelu(x·op(W) + b)). drop keeps flat element i when its hash (kernels/dropout.ts,
 * dropoutBits) is at least round(p·2^32), and scales the kept by f32(1 / (1 - p)) as the kernel does.
 */
function reference(
  { epilogue: e }: Case,
  x: Float64Array,
  xs: number[],
  wt: Float64Array,
  ws: number[],
  transB: boolean,
  b: Float64Array,
  r?: Float64Array,
): Float64Array {
  const y = matmulRef({ data: x, shape: xs }, { data: wt, shape: ws, trans: transB }).data;
  const threshold = Math.min(Math.round((e.dropout ?? 0) * 2 ** 32), 2 ** 32 - 1);
  const scale = Math.fround(1 / (1 - (e.dropout ?? 0)));
  return y.map((v0, i) => {
    let v = v0 + b[i % b.length]!;
    if (e.gelu) v = (e.gelu === 'tanh' ? geluTanh : geluErf)(v);
    if (e.dropout) v = dropoutBits(SEED, i) >= threshold ? v * scale : 0;
    return r ? r[i]! + v : v;
  });
}

const epilogueOf = (c: Case, r?: w.Tensor): w.Epilogue => ({
  ...(c.epilogue.gelu ? { gelu: c.epilogue.gelu } : {}),
  ...(c.epilogue.dropout ? { dropout: c.epilogue.dropout, seed: SEED } : {}),
  ...(r ? { residual: r } : {}),
});

describe('fused epilogues against float64 (forward and finite-difference gradients)', () => {
  // x [2, 5, 7] · W: a batch folded into M, odd M, K and N (small, since finite differences rerun the reference
  // once per input element; the larger shapes below are checked against the unfused ops and float64 forward).
  const xs = [2, 5, 7];
  const N = 11;
  let seed = 11;
  for (const c of CASES) {
    for (const op of ['addmm', 'linear'] as const) {
      it(`${op}, ${c.name}`, async () => {
        const ws = op === 'addmm' ? [7, N] : [N, 7];
        const residual = c.epilogue.residual ?? false;
        await gradCheck({
          name: `${op} ${c.name}`,
          inputs: [{ shape: xs }, { shape: ws }, { shape: [N] }, ...(residual ? [{ shape: [2, 5, N] }] : [])],
          gpu: (x, wt, b, r) => {
            const y = op === 'addmm' ? w.addmm(b!, x!, wt!, epilogueOf(c, r)) : w.linear(x!, wt!, b, epilogueOf(c, r));
            expect(y.gradFn?.name, 'the fused op ran').toBe('affine_fused');
            return y;
          },
          ref: (x, wt, b, r) => reference(c, x!, xs, wt!, ws, op === 'linear', b!, r),
          seed: seed++,
        });
      });
    }
  }
});

/**
 * Runs `make` on fresh tensors holding the same inputs (x [..., K], W [K, N], b [N], and r [..., N] when `residual`);
 * returns the output and the inputs' gradients.
 */
async function runWithGrads(make: (x: w.Tensor, wt: w.Tensor, b: w.Tensor, r?: w.Tensor) => w.Tensor, xs: number[], N: number, residual: boolean): Promise<Float32Array[]> {
  const shapes = [xs, [xs[xs.length - 1]!, N], [N], ...(residual ? [[...xs.slice(0, -1), N]] : [])];
  const ins = shapes.map((s, i) => w.tensor(Float32Array.from(rand(numel(s), 500 + i)), s, { requiresGrad: true }));
  const y = make(ins[0]!, ins[1]!, ins[2]!, ins[3]);
  y.backward(w.tensor(Float32Array.from(rand(y.size, 600)), y.shape));
  const out = [await y.toArray(), ...(await Promise.all(ins.map((t) => t.grad!.toArray())))];
  for (const t of [...ins, y]) t.dispose();
  return out;
}

describe('fused epilogues give the unfused ops\' bits', () => {
  // GPT-2's MLP shapes at a small width: c_fc [C, 4C] then GELU; c_proj [4C, C] then dropout and the residual.
  const xs = [3, 29, 24];
  for (const c of CASES) {
    it(c.name, async () => {
      const N = 96;
      const { gelu, dropout = 0, residual = false } = c.epilogue;
      const fused = await runWithGrads((x, wt, b, r) => w.addmm(b, x, wt, epilogueOf(c, r)), xs, N, residual);
      const unfused = await runWithGrads(
        (x, wt, b, r) => {
          let y = w.addmm(b, x, wt);
          if (gelu) y = w.gelu(y, gelu);
          if (dropout) y = w.dropout(y, dropout, true, SEED);
          return r ? w.add(r, y) : y;
        },
        xs,
        N,
        residual,
      );
      expect(fused.length).toBe(residual ? 5 : 4);
      fused.forEach((f, i) => expect(Array.from(f), ['y', 'dx', 'dW', 'db', 'dr'][i]).toEqual(Array.from(unfused[i]!)));
    });
  }

  it('under noGrad (inference: the activation\'s input is not stored) and when the operands outgrow one binding', async () => {
    const xs = [2, 300, 40];
    const N = 160;
    const data = [rand(numel(xs), 1), rand(40 * N, 2), rand(N, 3), rand(2 * 300 * N, 4)];
    const run = async (): Promise<Float32Array> => {
      const [x, wt, b, r] = [xs, [40, N], [N], [2, 300, N]].map((s, i) => w.tensor(Float32Array.from(data[i]!), s));
      const y = w.noGrad(() => w.addmm(b!, x!, wt!, { gelu: 'tanh', dropout: 0.2, seed: SEED, residual: r! }));
      const out = await y.toArray();
      for (const t of [x!, wt!, b!, r!, y]) t.dispose();
      return out;
    };
    const fused = await run();
    const expected = reference({ name: '', epilogue: { gelu: 'tanh', dropout: 0.2, residual: true } }, f32(data[0]!), xs, f32(data[1]!), [40, N], false, f32(data[2]!), f32(data[3]!));
    expectClose(fused, expected, { atol: 1e-5, rtol: 1e-5 }, 'fused under noGrad');
    // A 64 KiB binding limit: x, r and the output no longer fit, so the same epilogue runs as separate ops.
    const limit = w.runtime().bindingLimit;
    w.runtime().setBindingLimit(64 * 1024);
    try {
      expect(Array.from(await run())).toEqual(Array.from(fused));
    } finally {
      w.runtime().setBindingLimit(limit);
    }
  });

  it('rejects a residual of another shape and a dropout outside [0, 1)', () => {
    const x = w.zeros([4, 6]);
    const wt = w.zeros([6, 3]);
    const b = w.zeros([3]);
    expect(() => w.addmm(b, x, wt, { residual: w.zeros([4, 4]) })).toThrow('addmm: residual [4,4] must have the output\'s shape [4,3]');
    expect(() => w.addmm(b, x, wt, { dropout: 1 })).toThrow('addmm: dropout must be in [0, 1), got 1');
  });
});
