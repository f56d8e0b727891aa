// Every kernel family as a benchmark case: inputs, a float64 validation (into NaN-poisoned outputs), one timed run, and its minimum FLOPs and bytes.
//
// A case's floor is max(flops / FMA roof, bytes / copy roof) (docs/performance.md, Method 1); bench.ts reports the
// measured GPU time against it. `flops` counts the algorithm's multiply-adds ×2 (not what our kernel happens to
// recompute), `bytes` the least traffic any implementation needs: each input read once, each output written once.

import {
  AdamW,
  cast,
  clipGradNorm,
  causalAttention,
  crossEntropy,
  layerNorm,
  matmul,
  noGrad,
  sampleNext,
  softmax,
  tensor,
  zeroGrad,
  type Tensor,
} from '../src/index.js';
import { relAttentionPlan, relativeAttention } from '../src/ops/rel_attention.js';
import type { AttentionForward } from '../src/ops/attention.js';
import * as attentionRef from '../test/reference/attention.js';
import { adamwStep, clipGradNorm as clipRef } from '../test/reference/optim.js';
import { relAttention, relAttentionBackward, type RelDims, type RelOptions } from '../test/reference/rel_attention.js';
import * as rows from '../test/reference/rows.js';
import { sampleRow } from '../test/reference/sampling.js';
import { compare, dotTolerance, expectPoisoned, poisonNextOutput, randomInts, randomNonZero } from './common.js';

export interface KernelCase {
  family: string;
  name: string;
  flops: number;
  bytes: number;
  /** Runs once into poisoned outputs and checks against float64: null when right, else what is wrong. */
  validate(): Promise<string | null>;
  /** Records one run (no read-back). */
  run(): void;
  /** Which kernels count (by name); the default is all that run() launches. */
  keep?: (kernel: string) => boolean;
  dispose(): void;
}

/** A case is built only when its turn comes, so at most one case's buffers are alive at a time. */
export type CaseFactory = () => KernelCase;

const f64 = (x: ArrayLike<number>): Float64Array => Float64Array.from(x as ArrayLike<number>);
const read = async (t: Tensor): Promise<Float32Array> => (await t.toArray()) as Float32Array;
const disposeAll = (...ts: (Tensor | null | undefined)[]): void => ts.forEach((t) => t?.dispose());

// ---- matmul ----

/** C = op(A)·op(B) in float64 at the given flat output indices (all of them when `at` is null); see MatmulShape. */
function matmulRef(a: Float32Array, b: Float32Array, s: MatmulShape, at: number[] | null): Float64Array {
  const { M, K, N } = s;
  // Element (m, k) of op(A) and (k, n) of op(B) in their stored layouts.
  const [am, ak] = s.transA ? [1, M] : [K, 1];
  const [bk, bn] = s.transB ? [1, K] : [N, 1];
  const dot = (m: number, n: number): number => {
    let sum = 0;
    for (let k = 0; k < K; k++) sum += a[m * am + k * ak]! * b[k * bk + n * bn]!;
    return sum;
  };
  if (at) return Float64Array.from(at, (i) => dot(Math.floor(i / N), i % N));
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) c[m * N + n] = dot(m, n);
  return c;
}

/** C [M, N] = op(A)·op(B): A stored [M, K] ([K, M] when transA), B stored [K, N] ([N, K] when transB). */
export interface MatmulShape {
  name: string;
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
}

/** Host operands of a matmul case, shared with the peers so every implementation multiplies the same numbers. */
export function matmulOperands(s: MatmulShape, seed: number): { a: Float32Array; b: Float32Array } {
  return { a: randomNonZero(s.M * s.K, seed), b: randomNonZero(s.K * s.N, seed + 1) };
}

/** Checks a full [M, N] product: every element when M·N·K <= 1e9, else 4096 spread-out elements. */
export function checkProduct(got: Float32Array, a: Float32Array, b: Float32Array, s: MatmulShape): string | null {
  const { M, K, N } = s;
  const all = M * N * K <= 1e9;
  const at = all ? null : Array.from({ length: 4096 }, (_, i) => Math.floor(((i + 0.5) * M * N) / 4096));
  const want = matmulRef(a, b, s, at);
  const picked = at ? at.map((i) => got[i]!) : got;
  return compare(picked, want, dotTolerance(K), 1e-5, 'matmul');
}

/** One product; with `dtype` f16 both operands are f16 (the float64 reference multiplies the halves they hold). */
export function matmulCase(s: MatmulShape, seed: number, dtype: 'f32' | 'f16' = 'f32'): KernelCase {
  const operands = matmulOperands(s, seed);
  const stored = (x: Float32Array, shape: number[]): Tensor => {
    const t = tensor(x, shape);
    if (dtype === 'f32') return t;
    const h = cast(t, 'f16');
    t.dispose();
    return h;
  };
  const ta = stored(operands.a, s.transA ? [s.K, s.M] : [s.M, s.K]);
  const tb = stored(operands.b, s.transB ? [s.N, s.K] : [s.K, s.N]);
  const options = { transA: !!s.transA, transB: !!s.transB };
  const size = dtype === 'f16' ? 2 : 4;
  return {
    family: dtype === 'f16' ? 'matmul f16' : 'matmul',
    name: s.name,
    flops: 2 * s.M * s.N * s.K,
    bytes: size * (s.M * s.K + s.K * s.N) + 4 * s.M * s.N,
    async validate() {
      const [a, b] = dtype === 'f16' ? [await read(ta), await read(tb)] : [operands.a, operands.b];
      const id = poisonNextOutput([s.M, s.N]);
      const c = matmul(ta, tb, options);
      expectPoisoned(c, id, 'matmul');
      const got = await read(c);
      c.dispose();
      return checkProduct(got, a, b, s);
    },
    run: () => matmul(ta, tb, options).dispose(),
    dispose: () => disposeAll(ta, tb),
  };
}

/**
 * A differentiable op under test, with its inputs that need gradients and the upstream gradient dout:
 *   output()     the forward without autograd, written into a NaN-poisoned buffer, read back;
 *   gradients()  forward, then backward of Σ out·dout, the inputs' gradients read back (in `inputs` order) and freed;
 *   run          what a timed run records: the forward alone, or forward + backward.
 */
function differentiable(fwd: () => Tensor, outShape: number[], dout: Tensor, inputs: Tensor[], backward: boolean, what: string) {
  const step = (): void => {
    const o = fwd();
    o.backward(dout);
    o.dispose();
  };
  return {
    async output(): Promise<Float32Array> {
      const id = poisonNextOutput(outShape);
      const o = noGrad(fwd);
      expectPoisoned(o, id, what);
      const got = await read(o);
      o.dispose();
      return got;
    },
    async gradients(): Promise<Float32Array[]> {
      step();
      const grads: Float32Array[] = [];
      for (const t of inputs) grads.push(await read(t.grad!));
      zeroGrad(inputs);
      return grads;
    },
    run: backward
      ? () => {
          step();
          zeroGrad(inputs);
        }
      : () => noGrad(fwd).dispose(),
  };
}

// ---- causal attention (GPT-2) ----

/** The float64 reference on one (b, h) slice: [T, HS] and [S, HS] rows of head `bh`. */
function headSlice(x: ArrayLike<number>, bh: number, rowsPerHead: number, HS: number): Float64Array {
  return f64(Array.prototype.slice.call(x, bh * rowsPerHead * HS, (bh + 1) * rowsPerHead * HS) as number[]);
}

/**
 * Attention tolerance: o and the gradients are f32 sums over up to S keys of terms bounded by 1, so the rounding is of
 * order sqrt(S)·2^-24 typical and S·2^-24 at worst (2.4e-4 for S = 4096); 2e-5 + 1e-4 relative is above the typical
 * error by 5× at S = 4096, and far below what a wrong mask or index produces (O(0.1)).
 */
const ATTN_TOL = { atol: 2e-5, rtol: 1e-4 };

/** forward: which forward kernel runs (causalAttention's option; 'auto' is what models get). */
export function attentionCase(B: number, NH: number, T: number, S: number, HS: number, backward: boolean, forward: AttentionForward = 'auto'): KernelCase {
  const P = S - T;
  const q = randomNonZero(B * NH * T * HS, 11, 0.5);
  const k = randomNonZero(B * NH * S * HS, 12, 0.5);
  const v = randomNonZero(B * NH * S * HS, 13);
  const dout = randomNonZero(B * NH * T * HS, 14);
  const tq = tensor(q, [B, NH, T, HS], { requiresGrad: backward });
  const tk = tensor(k, [B, NH, S, HS], { requiresGrad: backward });
  const tv = tensor(v, [B, NH, S, HS], { requiresGrad: backward });
  const tdo = tensor(dout, [B, NH, T, HS]);
  // Visible (query, key) pairs: key j <= P + t.
  const pairs = B * NH * (T * P + (T * (T + 1)) / 2);
  const oneHead = { B: 1, NH: 1, T, S, HS };
  const checkHeads = [0, B * NH - 1];
  const name = T === 1 ? `decode B ${B} NH ${NH} HS ${HS}, KV cache ${S}` : `${backward ? 'backward' : 'forward'} B ${B} NH ${NH} T ${T} HS ${HS}`;
  const op = differentiable(() => causalAttention(tq, tk, tv, { forward }), [B, NH, T, HS], tdo, [tq, tk, tv], backward, 'attention output');
  return {
    family: T === 1 ? 'attention decode' : backward ? 'attention backward' : 'attention forward',
    name,
    // Forward: s = q·k and p·v, 2·HS FLOPs each per pair. Backward: s again, dv, dp, dq, dk: 5 × 2·HS per pair.
    flops: (backward ? 10 : 4) * HS * pairs,
    // Forward reads q, k, v and writes o; backward reads q, k, v, o, do and writes dq, dk, dv.
    bytes: 4 * (backward ? 3 * B * NH * T * HS + 4 * B * NH * S * HS : 2 * B * NH * T * HS + 2 * B * NH * S * HS),
    async validate() {
      if (!backward) {
        const got = await op.output();
        for (const bh of checkHeads) {
          const want = attentionRef.causalAttention(headSlice(q, bh, T, HS), headSlice(k, bh, S, HS), headSlice(v, bh, S, HS), oneHead);
          const err = compare(headSlice(got, bh, T, HS), want, ATTN_TOL.atol, ATTN_TOL.rtol, `attention o, head ${bh}`);
          if (err) return err;
        }
        return null;
      }
      const [dq, dk, dv] = await op.gradients();
      const got = { dq: dq!, dk: dk!, dv: dv! };
      for (const bh of checkHeads) {
        const want = attentionRef.causalAttentionBackward(
          headSlice(q, bh, T, HS), headSlice(k, bh, S, HS), headSlice(v, bh, S, HS), headSlice(dout, bh, T, HS), oneHead,
        );
        for (const [g, n] of [['dq', T], ['dk', S], ['dv', S]] as const) {
          const err = compare(headSlice(got[g], bh, n, HS), want[g], ATTN_TOL.atol, ATTN_TOL.rtol, `attention ${g}, head ${bh}`);
          if (err) return err;
        }
      }
      return null;
    },
    run: op.run,
    keep: backward ? (n) => n.startsWith('attention_backward') : (n) => n.startsWith('attention_forward'),
    dispose: () => disposeAll(tq, tk, tv, tdo),
  };
}

// ---- layernorm ----

export function layerNormCase(N: number, C: number, backward: boolean): KernelCase {
  const eps = 1e-5;
  const x = randomNonZero(N * C, 21);
  const w = randomNonZero(C, 22);
  const b = randomNonZero(C, 23);
  const dy = randomNonZero(N * C, 24);
  const tx = tensor(x, [N, C], { requiresGrad: backward });
  const tw = tensor(w, [C], { requiresGrad: backward });
  const tb = tensor(b, [C], { requiresGrad: backward });
  const tdy = tensor(dy, [N, C]);
  const op = differentiable(() => layerNorm(tx, C, tw, tb, eps), [N, C], tdy, [tx, tw, tb], backward, 'layernorm output');
  return {
    family: backward ? 'layernorm backward' : 'layernorm forward',
    name: `[${N}, ${C}]`,
    flops: 0,
    // Forward reads x and writes y; backward reads x and dy and writes dx (the [C] vectors are noise).
    bytes: 4 * (backward ? 3 : 2) * N * C,
    async validate() {
      if (!backward) {
        const got = await op.output();
        // |y| = |x̂·w + b| < ~5 here; f32 statistics over C = 768 values round at ~1e-6 of that.
        return compare(got, rows.layerNorm(f64(x), C, f64(w), f64(b), eps), 1e-5, 1e-5, 'layernorm y');
      }
      const want = rows.layerNormBackward(x, w, dy, C, eps);
      const [dx, dw, db] = await op.gradients();
      const got = { dx: dx!, dw: dw!, db: db! };
      // dw and db sum N terms of size ~1: f32 rounding of order sqrt(N)·2^-24·N.
      return (
        compare(got.dx, want.dx, 1e-5, 1e-4, 'layernorm dx') ??
        compare(got.dw, want.dw, 1e-7 * N, 1e-4, 'layernorm dweight') ??
        compare(got.db, want.db, 1e-7 * N, 1e-4, 'layernorm dbias')
      );
    },
    run: op.run,
    keep: (n) => n.startsWith(backward ? 'layernorm_backward' : 'layernorm_forward') || (backward && n.startsWith('layernorm_param')),
    dispose: () => disposeAll(tx, tw, tb, tdy),
  };
}

// ---- softmax and cross-entropy over a vocabulary ----

export function softmaxCase(N: number, V: number): KernelCase {
  const x = randomNonZero(N * V, 31, 4);
  const tx = tensor(x, [N, V]);
  return {
    family: 'softmax',
    name: `[${N}, ${V}]`,
    flops: 0,
    bytes: 4 * 2 * N * V,
    async validate() {
      const id = poisonNextOutput([N, V]);
      const y = noGrad(() => softmax(tx, -1));
      expectPoisoned(y, id, 'softmax output');
      const got = await read(y);
      y.dispose();
      // Probabilities ≈ e^x / Σ over V terms: f32 rounding relative 1e-6 at most for these sizes.
      return compare(got, rows.softmax(f64(x), [N, V]), 1e-9, 1e-5, 'softmax');
    },
    run: () => noGrad(() => softmax(tx, -1)).dispose(),
    dispose: () => tx.dispose(),
  };
}

/** Mean cross-entropy over N rows of V logits, forward and backward (GPT-2's loss; the logits gradient is written once). */
export function crossEntropyCase(N: number, V: number): KernelCase {
  const x = randomNonZero(N * V, 41, 4);
  const targets = randomInts(N, V, 42);
  const tx = tensor(x, [N, V], { requiresGrad: true });
  const tt = tensor(targets, [N], { dtype: 'i32' });
  return {
    family: 'cross-entropy',
    name: `forward + backward [${N}, ${V}]`,
    flops: 0,
    bytes: 4 * 2 * N * V,
    async validate() {
      const loss = crossEntropy(tx, tt);
      loss.backward();
      const got = await read(loss);
      loss.dispose();
      const grad = await read(tx.grad!);
      zeroGrad([tx]);
      const lossErr = compare(got, rows.crossEntropy(f64(x), V, targets), 1e-5, 1e-5, 'cross-entropy loss');
      if (lossErr) return lossErr;
      // d loss / d x = (softmax(x) - onehot(target)) / N, checked on the first and last rows.
      const p = rows.softmax(f64(x), [N, V]);
      for (const r of [0, N - 1]) {
        const want = Float64Array.from({ length: V }, (_, j) => (p[r * V + j]! - (j === targets[r] ? 1 : 0)) / N);
        const err = compare(grad.subarray(r * V, (r + 1) * V), want, 1e-8, 1e-4, `cross-entropy d logits row ${r}`);
        if (err) return err;
      }
      return null;
    },
    run() {
      const loss = crossEntropy(tx, tt);
      loss.backward();
      loss.dispose();
      zeroGrad([tx]);
    },
    keep: (n) => n.startsWith('cross_entropy'),
    dispose: () => disposeAll(tx, tt),
  };
}

// ---- AdamW ----

export function adamwCase(N: number): KernelCase {
  const p0 = randomNonZero(N, 51);
  const g = randomNonZero(N, 52, 1e-2);
  const p = tensor(p0, [N], { requiresGrad: true });
  p.grad = tensor(g, [N]);
  const hyper = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01 };
  let opt = new AdamW([p], hyper);
  return {
    family: 'adamw',
    name: `${N.toLocaleString('en')} parameters`,
    flops: 0,
    // Reads p, g, m, v and writes p, m, v.
    bytes: 4 * 7 * N,
    async validate() {
      opt.step();
      const got = await read(p);
      const want = { p: f64(p0), m: new Float64Array(N), v: new Float64Array(N), step: 0 };
      adamwStep(want, f64(g), hyper.lr, 0.9, 0.999, hyper.eps, hyper.weightDecay);
      // One step moves each weight by about lr; f32 keeps it to 1 ulp of |p| < 1.
      const err = compare(got, want.p, 2e-7, 1e-6, 'adamw parameters');
      opt.dispose();
      opt = new AdamW([p], hyper);
      return err;
    },
    run: () => opt.step(),
    keep: (n) => n === 'adamw',
    dispose() {
      opt.dispose();
      disposeAll(p.grad, p);
    },
  };
}

// ---- gradient-norm clipping ----

export function clipCase(N: number): KernelCase {
  const g0 = randomNonZero(N, 53, 1e-2);
  const p = tensor(new Float32Array(N), [N], { requiresGrad: true });
  p.grad = tensor(g0, [N]);
  return {
    family: 'clip',
    name: `clip_grad_norm, ${N.toLocaleString('en')} gradients`,
    flops: 0,
    // Reads g for the norm, then reads and writes it to scale it.
    bytes: 4 * 3 * N,
    async validate() {
      const norm = clipGradNorm([p], 1);
      const [gotNorm, got] = [await norm.item(), await read(p.grad!)];
      norm.dispose();
      const want = [f64(g0)];
      const wantNorm = clipRef(want, 1);
      p.grad!.upload(g0);
      // The norm sums N squares in f32 (fixed blocks, then one pass over the blocks): relative error ~1e-6.
      return compare([gotNorm], [wantNorm], 0, 1e-5, 'grad norm') ?? compare(got, want[0]!, 1e-9, 1e-5, 'clipped gradients');
    },
    // A max norm above the norm leaves the gradients as they are, so every timed run sees the same data.
    run: () => clipGradNorm([p], 1e30).dispose(),
    dispose: () => disposeAll(p.grad, p),
  };
}

// ---- sampling ----

export function samplingCase(V: number, mode: 'top-k' | 'top-p'): KernelCase {
  const B = 1;
  const logits = randomNonZero(B * V, 61, 8);
  const t = tensor(logits, [B, V]);
  const options = mode === 'top-k' ? { topK: 40, temperature: 0.9 } : { topP: 0.9, temperature: 0.9 };
  let step = 0;
  return {
    family: 'sampling',
    name: `${mode === 'top-k' ? 'top-k 40' : 'top-p 0.9'}, vocab ${V}, batch ${B}`,
    flops: 0,
    bytes: 4 * B * V,
    async validate() {
      for (const s of [0, 1, 2]) {
        const ids = sampleNext(t, { ...options, seed: 5, step: s });
        const got = (await ids.toArray())[0]!;
        ids.dispose();
        const want = sampleRow(logits, 0, { ...options, seed: 5, step: s });
        if (got !== want.id && !want.alternatives.includes(got)) return `sampling step ${s}: drew ${got}, the reference draws ${want.id}`;
      }
      return null;
    },
    run: () => sampleNext(t, { ...options, seed: 5, step: step++ }).dispose(),
    dispose: () => t.dispose(),
  };
}

// ---- XLNet relative attention ----

export function relAttentionCase(B: number, NH: number, T: number, M: number, HS: number, backward: boolean): KernelCase {
  const K = M + T;
  const R = K + T;
  const Q = T;
  const qpos = Int32Array.from({ length: B * T }, (_, i) => i % T);
  const qq = randomNonZero(2 * B * NH * Q * HS, 71, 0.5);
  const k = randomNonZero(B * NH * K * HS, 72, 0.5);
  const v = randomNonZero(B * NH * K * HS, 73);
  const kr = randomNonZero(NH * R * HS, 74, 0.5);
  const dout = randomNonZero(B * NH * Q * HS, 75);
  const scale = 1 / Math.sqrt(HS);
  const masks = { T, M, qpos, selfVisible: true };
  const t = {
    qq: tensor(qq, [2, B, NH, Q, HS], { requiresGrad: backward }),
    k: tensor(k, [B, NH, K, HS], { requiresGrad: backward }),
    v: tensor(v, [B, NH, K, HS], { requiresGrad: backward }),
    kr: tensor(kr, [1, NH, R, HS], { requiresGrad: backward }),
    dout: tensor(dout, [B, NH, Q, HS]),
  };
  const plan = relAttentionPlan(B, Q, masks);
  const op = differentiable(() => relativeAttention(t.qq, t.k, t.v, t.kr, null, plan, { scale }), [B, NH, Q, HS], t.dout, [t.qq, t.k, t.v, t.kr], backward, 'relative attention output');
  const dims: RelDims = { B, NH, Q, T, M, HS, R };
  const ref: RelOptions = { qpos, selfVisible: true, scale };
  const x = { qu: qq.subarray(0, B * NH * Q * HS), qv: qq.subarray(B * NH * Q * HS), k, v, kr };
  return {
    family: backward ? 'xlnet rel-attention backward' : 'xlnet rel-attention forward',
    name: `content stream B ${B} NH ${NH} T ${T} mem ${M} HS ${HS}`,
    // Per (row, key): qu·k, qv·kr and p·v forward (3 × 2·HS); backward recomputes s (2 dots) and forms dv, dp,
    // dqu, dk, dqv, dkr (8 × 2·HS in all).
    flops: (backward ? 16 : 6) * HS * B * NH * Q * K,
    bytes: 4 * (backward ? 2 * (2 * B * NH * Q * HS + 2 * B * NH * K * HS + NH * R * HS) + 2 * B * NH * Q * HS : 2 * B * NH * Q * HS + 2 * B * NH * K * HS + NH * R * HS + B * NH * Q * HS),
    async validate() {
      if (!backward) {
        const got = await op.output();
        return compare(got, relAttention(x, dims, ref), ATTN_TOL.atol, ATTN_TOL.rtol, 'relative attention o');
      }
      const [dqq, dk, dv, dkr] = await op.gradients();
      const got = { qu: dqq!.subarray(0, B * NH * Q * HS), qv: dqq!.subarray(B * NH * Q * HS), k: dk!, v: dv!, kr: dkr! };
      const want = relAttentionBackward(x, dout, dims, ref);
      for (const n of ['qu', 'qv', 'k', 'v'] as const) {
        const err = compare(got[n], want[n], ATTN_TOL.atol, ATTN_TOL.rtol, `relative attention d${n}`);
        if (err) return err;
      }
      // dkr sums over B·Q rows per table entry: allow sqrt(B·Q) more rounding than one row's sum.
      return compare(got.kr, want.kr, ATTN_TOL.atol * Math.sqrt(B * Q), ATTN_TOL.rtol, 'relative attention dkr');
    },
    run: op.run,
    keep: (n) => n.startsWith(backward ? 'rel_attention_backward' : 'rel_attention_forward'),
    dispose() {
      disposeAll(...Object.values(t), plan.meta);
    },
  };
}
