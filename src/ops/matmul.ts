// Matrix products (forward + backward): matmul with torch.matmul semantics and transposed reads, linear with a fused bias.
//
// Shapes: a [..., M, K] (or [..., K, M] read transposed), b [..., K, N] (or [..., N, K]), out [..., M, N];
// the leading "batch" dims broadcast NumPy-style. In a model, linear's input is x [B, T, C] and its weight
// W [C_out, C], so y = x·Wᵀ + b is [B, T, C_out] (legend: B batch, T time, C channels).

import { defineOp, isGradEnabled, type Grads } from '../autograd.js';
import { matmulGrid, matmulWGSL, tilesName, type MatmulTiles } from '../../kernels/matmul.js';
import { Kernel } from '../gpu/kernel.js';
import { formatBytes } from '../gpu/pool.js';
import { runtime } from '../gpu/runtime.js';
import { empty, type Shape, type Tensor } from '../tensor.js';
import { nextSeed } from '../random.js';
import { fitsBinding, windowElements, windowOf, type Window } from './bindings.js';
import { dropout as dropoutOp, dropoutLaunch, dropoutThreshold, type DropoutOptions } from './dropout.js';
import { add, cast, gelu, unaryBackward } from './elementwise.js';
import { sum } from './reduce.js';
import { matmulTiles } from './matmul_tiles.js';
import { checkRank, dispatch, expectDtype, fmt, sameShape, stridesOf } from './util.js';

type Activation = 'gelu_tanh' | 'gelu_erf';
type Key = `${'n' | 't'}${'n' | 't'}${'' | '+bias'}${'' | ':window' | ':window+acc'}${'' | `:${Activation}${'' | '+pre'}`}${'' | ':drop'}${'' | ':res'}${'' | ':ha'}${'' | ':hb'}${'' | ':va'}${'' | ':vb'}`;

const kernels = new Map<string, Kernel>();

/**
 * The kernel for a variant and a tile shape, built on first use; the runtime caches its pipeline, so a new tile
 * choice (ops/matmul_tiles.ts) compiles its own and going back to an earlier one compiles nothing.
 */
function matmulKernel(key: Key, tiles: MatmulTiles): Kernel {
  const name = `matmul:${key}@${tilesName(tiles)}`;
  let kernel = kernels.get(name);
  if (!kernel) {
    const variant = {
      transA: key[0] === 't',
      transB: key[1] === 't',
      bias: key.includes('+bias'),
      windowed: key.includes(':window'),
      accumulate: key.includes('+acc'),
      activation: key.includes(':gelu_tanh') ? 'gelu_tanh' : key.includes(':gelu_erf') ? 'gelu_erf' : undefined,
      savePre: key.includes('+pre'),
      dropout: key.includes(':drop'),
      residual: key.includes(':res'),
      halfA: key.includes(':ha'),
      halfB: key.includes(':hb'),
      vecA: key.includes(':va'),
      vecB: key.includes(':vb'),
    } as const;
    kernels.set(name, (kernel = new Kernel(name, matmulWGSL(variant, tiles))));
  }
  return kernel;
}

/** Products with at most this many rows (decoding one token: x [B, 1, C] · Wᵀ) use the skinny tiles. */
const SKINNY_ROWS = 4;

/** The tiles a product with M rows runs with on this device. */
function tilesFor(M: number): MatmulTiles {
  const { tiles, skinny } = matmulTiles();
  return M <= SKINNY_ROWS ? skinny : tiles;
}

/** Read an operand transposed (its last two dims swapped) without copying it. */
export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

interface Flags {
  transA: boolean;
  transB: boolean;
}

// ---- the one launcher: every forward and backward product goes through here ----

/** An operand as the kernel reads it: its buffer, whether its matrices are stored transposed, and one
 *  element stride per batch dim telling where each matrix starts (0 = the operand is broadcast there). */
interface Side {
  t: Tensor;
  trans: boolean;
  strides: readonly number[];
}

const prod = (xs: readonly number[]): number => xs.reduce((p, q) => p * q, 1);

/** Whether `strides` are those of matrices of `size` elements packed back to back over batch `sizes`. */
function packed(strides: readonly number[], sizes: readonly number[], size: number): boolean {
  return strides.every((s, d) => s === size * prod(sizes.slice(d + 1)));
}

/** A fused store (kernels/matmul.ts): out = residual + dropout(activation(v)), with v itself written to `pre`. */
interface Store {
  activation?: Activation;
  pre?: Tensor;
  dropout?: DropoutOptions;
  residual?: Tensor;
}

/**
 * out[kept..., M, N] = Σ over the summed batch dims of op(x[b]) · op(y[b])  (+ bias[N]), then `store`'s epilogue.
 * `batch` lists the batch dims both operands are indexed by; summed[d] says whether dim d is summed away
 * (the gradient of an operand broadcast along d) or kept in the output. `shape` is the output's shape as
 * the caller wants it (its memory is [kept..., M, N] whatever size-1 dims it lists).
 */
function product(
  label: string,
  x: Side,
  y: Side,
  [M, N, K]: [number, number, number],
  batch: readonly number[],
  summed: readonly boolean[],
  shape: Shape,
  bias?: Tensor,
  store: Store = {},
): Tensor {
  // Size-1 dims index nothing.
  let dims = batch.map((size, d) => ({ size, sum: summed[d]!, sx: x.strides[d]!, sy: y.strides[d]! })).filter((d) => d.size !== 1);
  const sizes = dims.map((d) => d.size);
  const count = prod(sizes);
  const xPacked = (size: number): boolean => packed(dims.map((d) => d.sx), sizes, size);
  const yPacked = (size: number): boolean => packed(dims.map((d) => d.sy), sizes, size);
  if (dims.length > 0 && dims.every((d) => !d.sum && d.sy === 0) && !x.trans && xPacked(M * K)) {
    // y is shared by every matrix (x [B, T, C] · W): one [B·T, C] · W instead of B thin products.
    M *= count;
    dims = [];
  } else if (dims.length > 0 && dims.every((d) => d.sum) && x.trans && !y.trans && xPacked(K * M) && yPacked(K * N)) {
    // A summed batch where both operands are stored K-major (dW = Σ_b x[b]ᵀ · dy[b]): the batch simply
    // lengthens K, so it is one [C, B·T] · [B·T, C_out] product.
    K *= count;
    dims = [];
  }
  const kept = dims.filter((d) => !d.sum);
  const sums = dims.filter((d) => d.sum);
  const out = empty(shape, 'f32', label);
  const tiles = tilesFor(M);
  const { activation, pre, dropout, residual } = store;
  const extras = [...(residual ? [residual] : []), ...(pre ? [pre] : [])];
  if (![x.t, y.t, out, ...(bias ? [bias] : []), ...extras].every(fitsBinding)) {
    if (activation || dropout || residual) throw new Error(`${label}: fused epilogues need every operand in one binding (the caller checks fusable())`);
    if (dims.length > 0) {
      throw new RangeError(
        `${label}: an operand is larger than one storage binding (${formatBytes(runtime().bindingLimit)}); only 2-D products ` +
          '(after folding a shared weight\'s batch into M or K) are split. Use a smaller batch or a GPU with a larger limit.',
      );
    }
    splitProduct(label, x, y, out, bias, [M, N, K], tiles);
    return out;
  }
  const epilogue = `${activation ? `:${activation}${pre ? '+pre' : ''}` : ''}${dropout ? ':drop' : ''}${residual ? ':res' : ''}` as const;
  const half = `${x.t.dtype === 'f16' ? ':ha' : ''}${y.t.dtype === 'f16' ? ':hb' : ''}` as const;
  // vec4 loads where an operand's stored rows (K, or M / N when read transposed / not) and every matrix start are
  // multiples of 4 elements, so each 4 neighbours along a row are one aligned load; the same values either way.
  // (An empty row, K = 0, binds a 4-byte buffer, too small for a vec4 binding.)
  const vec4s = (row: number, batchStrides: number[]): boolean => row > 0 && row % 4 === 0 && batchStrides.every((s) => s % 4 === 0);
  const vecA = vec4s(x.trans ? M : K, dims.map((d) => d.sx));
  const vecB = vec4s(y.trans ? K : N, dims.map((d) => d.sy));
  const vec = `${vecA ? ':va' : ''}${vecB ? ':vb' : ''}` as const;
  const key = `${x.trans ? 't' : 'n'}${y.trans ? 't' : 'n'}${bias ? '+bias' : ''}${epilogue}${half}${vec}` as Key;
  dispatch(matmulKernel(key, tiles), {
    buffers: [x.t.range, y.t.range, ...[bias, ...extras, out].flatMap((t) => (t ? [t.range] : []))],
    params: {
      ...(dropout ? { seed: dropout.seed, threshold: dropoutThreshold(dropout.p), keep_scale: 1 / (1 - dropout.p) } : {}),
      M,
      N,
      K,
      keptRank: kept.length,
      sumRank: sums.length,
      sumCount: prod(sums.map((d) => d.size)),
      keptShape: kept.map((d) => d.size),
      keptA: kept.map((d) => d.sx),
      keptB: kept.map((d) => d.sy),
      sumShape: sums.map((d) => d.size),
      sumA: sums.map((d) => d.sx),
      sumB: sums.map((d) => d.sy),
    },
    grid: [...matmulGrid(M, N, tiles), prod(kept.map((d) => d.size))],
    label,
  });
  return out;
}

// ---- products larger than one binding ----

/**
 * Block sizes [mc, nc, kc] for a 2-D product whose operands do not all fit one binding. Each operand is a
 * stored row-major matrix (C [M, N]; A [M, K], or [K, M] when transposed; B [K, N], or [N, K]) and a block
 * of r of its rows and c of its columns spans (r - 1)·ld + c elements, which must fit a window. For each
 * operand in turn, rows are cut first (the span is mostly rows·ld), then, for a single row still too long,
 * columns. Cutting a dim only shrinks the other operands' spans, so one pass makes them all fit. Cut dims
 * are then rounded down to whole workgroup tiles where they are large enough, so most workgroups are full.
 */
function productBlocks([M, N, K]: [number, number, number], transA: boolean, transB: boolean, tiles: MatmulTiles): [number, number, number] {
  const L = windowElements();
  const size = { M, N, K };
  type Dim = keyof typeof size;
  const operands: [rows: Dim, cols: Dim, ld: number][] = [['M', 'N', N], transA ? ['K', 'M', M] : ['M', 'K', K], transB ? ['N', 'K', K] : ['K', 'N', N]];
  for (const [r, c, ld] of operands) {
    if ((size[r] - 1) * ld + size[c] <= L) continue;
    if (size[c] <= L) size[r] = Math.floor((L - size[c]) / ld) + 1;
    else [size[r], size[c]] = [1, L];
  }
  const round = (n: number, whole: number, step: number): number => (n < whole && n >= step ? n - (n % step) : n);
  return [round(size.M, M, tiles.WY * tiles.TM), round(size.N, N, tiles.WX * tiles.TN), round(size.K, K, tiles.BK)];
}

/**
 * out [M, N] = op(x) · op(y) (+ bias) for 2-D operands of which some exceed one binding (GPT-2's LM head on
 * its [V, C] embedding, the [B·T, V] logits and their gradients): one launch per block of [M, N, K], binding
 * the windows of x, y, out and bias that the block touches (productBlocks). The blocks of one output block
 * run along K in order, each after the first continuing the sums in `out` (the accumulate variant), and the
 * bias is added by the last. Every output element is summed in the same order as in one launch: the result
 * is the same bits.
 */
function splitProduct(label: string, x: Side, y: Side, out: Tensor, bias: Tensor | undefined, [M, N, K]: [number, number, number], tiles: MatmulTiles): void {
  const [mc, nc, kc] = productBlocks([M, N, K], x.trans, y.trans, tiles);
  const [lda, ldb, ldc] = [x.trans ? M : K, y.trans ? K : N, N];
  // Elements [start, start + count) of t; an empty operand (K = 0) is bound as it is and never read.
  const win = (t: Tensor, start: number, count: number): Window => (t.size === 0 ? { range: t.range, base: 0 } : windowOf(t, start, count));
  for (let m0 = 0; m0 < M; m0 += mc) {
    const m = Math.min(mc, M - m0);
    for (let n0 = 0; n0 < N; n0 += nc) {
      const n = Math.min(nc, N - n0);
      for (let k0 = 0; k0 === 0 || k0 < K; k0 += Math.max(kc, 1)) {
        const k = Math.min(kc, K - k0);
        const a = x.trans ? win(x.t, k0 * lda + m0, (k - 1) * lda + m) : win(x.t, m0 * lda + k0, (m - 1) * lda + k);
        const b = y.trans ? win(y.t, n0 * ldb + k0, (n - 1) * ldb + k) : win(y.t, k0 * ldb + n0, (k - 1) * ldb + n);
        const c = windowOf(out, m0 * ldc + n0, (m - 1) * ldc + n);
        const last = k0 + kc >= K;
        const bw = bias && last ? windowOf(bias, n0, n) : null;
        const half = `${x.t.dtype === 'f16' ? ':ha' : ''}${y.t.dtype === 'f16' ? ':hb' : ''}` as const;
        const key: Key = `${x.trans ? 't' : 'n'}${y.trans ? 't' : 'n'}${bw ? '+bias' : ''}${k0 === 0 ? ':window' : ':window+acc'}${half}`;
        dispatch(matmulKernel(key, tiles), {
          buffers: bw ? [a.range, b.range, bw.range, c.range] : [a.range, b.range, c.range],
          params: {
            M: m,
            N: n,
            K: k,
            keptRank: 0,
            sumRank: 0,
            sumCount: 1,
            lda,
            ldb,
            ldc,
            offA: a.base,
            offB: b.base,
            offC: c.base,
            offBias: bw?.base ?? 0,
            keptShape: [],
            keptA: [],
            keptB: [],
            sumShape: [],
            sumA: [],
            sumB: [],
          },
          grid: [...matmulGrid(m, n, tiles), 1],
          label: `${label} block rows ${m0}..${m0 + m - 1} cols ${n0}..${n0 + n - 1} k ${k0}..${k0 + k - 1}`,
        });
      }
    }
  }
}

// ---- shapes ----

/** How a product's operands line up: sizes, the broadcast batch, and which batch dims each operand lacks. */
interface Plan {
  M: number;
  N: number;
  K: number;
  /** Broadcast batch dims of the output. */
  batch: number[];
  /** Element strides of a's and b's matrices along `batch` (0 where the operand is broadcast). */
  sa: number[];
  sb: number[];
  /** Dims of `batch` along which a (b) is broadcast, so its gradient is summed over them. */
  aBroadcast: boolean[];
  bBroadcast: boolean[];
  /** The output shape (torch drops the M or N dim of a 1-D operand). */
  out: number[];
}

/** Throws unless every operand is f32 or f16 (the kernel reads f16 operands exactly as f32). */
function expectFloat(op: string, tensors: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`${op}: expected f32 or f16 for ${name}, got ${t.dtype} ${fmt(t)}`);
  }
}

/** torch.matmul's shape rules. A 1-D a [K] is a [1, K] row and a 1-D b [K] a [K, 1] column. */
function plan(a: Tensor, b: Tensor, { transA, transB }: Flags): Plan {
  expectFloat('matmul', { a, b });
  checkRank('matmul', a);
  checkRank('matmul', b);
  for (const [name, t, trans] of [['a', a, transA], ['b', b, transB]] as const) {
    if (t.ndim === 0) throw new Error(`matmul: ${name} is a scalar (shape []); both operands need at least 1 dimension`);
    if (trans && t.ndim === 1) throw new Error(`matmul: trans${name.toUpperCase()} needs a matrix, but ${name} ${fmt(t)} is 1-D`);
  }
  const am = a.ndim === 1 ? [1, a.shape[0]!] : a.shape.slice(-2);
  const bm = b.ndim === 1 ? [b.shape[0]!, 1] : b.shape.slice(-2);
  const [M, K] = transA ? [am[1]!, am[0]!] : [am[0]!, am[1]!];
  const [Kb, N] = transB ? [bm[1]!, bm[0]!] : [bm[0]!, bm[1]!];
  const described = (name: string, t: Tensor, trans: boolean): string => `${name} ${fmt(t)}${trans ? ` (read transposed: ${name}ᵀ)` : ''}`;
  if (K !== Kb) {
    throw new Error(
      `matmul: ${described('a', a, transA)} and ${described('b', b, transB)} do not match ` +
        `(${transA ? 'aᵀ' : 'a'} has ${K} columns, ${transB ? 'bᵀ' : 'b'} has ${Kb} rows)`,
    );
  }
  const ab = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  const rank = Math.max(ab.length, bb.length);
  const pa = [...Array<number>(rank - ab.length).fill(1), ...ab];
  const pb = [...Array<number>(rank - bb.length).fill(1), ...bb];
  const batch = pa.map((da, d) => {
    const db = pb[d]!;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`matmul: the batch dims of a ${fmt(a)} and b ${fmt(b)} cannot be broadcast together ([${ab}] vs [${bb}], ${da} vs ${db})`);
    }
    return da === 1 ? db : da;
  });
  const strides = (padded: number[], size: number): number[] => stridesOf(padded).map((s, d) => (padded[d] === 1 ? 0 : s * size));
  const out = [...batch, ...(a.ndim === 1 ? [] : [M]), ...(b.ndim === 1 ? [] : [N])];
  return {
    M,
    N,
    K,
    batch,
    sa: strides(pa, M * K),
    sb: strides(pb, K * N),
    aBroadcast: pa.map((d, i) => d === 1 && batch[i] !== 1),
    bBroadcast: pb.map((d, i) => d === 1 && batch[i] !== 1),
    out,
  };
}

function label(op: string, a: Tensor, b: Tensor, { transA, transB }: Flags): string {
  return `${op} a${fmt(a)}${transA ? 'ᵀ' : ''} b${fmt(b)}${transB ? 'ᵀ' : ''}`;
}

/** C = op(A) · op(B) (+ bias, then `store`'s epilogue), batched and broadcast as planned. */
function forwardProduct(op: string, a: Tensor, b: Tensor, flags: Flags, bias?: Tensor, store?: Store): Tensor {
  const p = plan(a, b, flags);
  const x: Side = { t: a, trans: flags.transA, strides: p.sa };
  const y: Side = { t: b, trans: flags.transB, strides: p.sb };
  const noneSummed = p.batch.map(() => false);
  return product(label(op, a, b, flags), x, y, [p.M, p.N, p.K], p.batch, noneSummed, p.out, bias, store);
}

/**
 * With Â = op(A) [M, K], B̂ = op(B) [K, N] and C = Â·B̂:
 *   dÂ = dC · B̂ᵀ,   dB̂ = Âᵀ · dC,
 * and where an operand is stored transposed its gradient is the transpose of those:
 *   transA: dA = dÂᵀ = B̂ · dCᵀ,   transB: dB = dB̂ᵀ = dCᵀ · Â.
 * Every one of these is one launch of the same kernel with transpose flags (no transposed copies). Over a
 * batch dim along which an operand was broadcast, its gradient is the sum of the per-matrix products; the
 * kernel does that sum in its accumulator (or, for a 2-D weight under a [B, T, C] input, folds B into K).
 */
function productGradients(g: Tensor, a: Tensor, b: Tensor, flags: Flags, [needA, needB]: readonly boolean[]): [Tensor | null, Tensor | null] {
  const { transA, transB } = flags;
  const p = plan(a, b, flags);
  const gs = stridesOf(p.batch).map((s) => s * p.M * p.N);
  const dC = (trans: boolean): Side => ({ t: g, trans, strides: gs });
  const A = (trans: boolean): Side => ({ t: a, trans, strides: p.sa });
  const B = (trans: boolean): Side => ({ t: b, trans, strides: p.sb });
  const what = label('matmul_backward', a, b, flags);
  let da: Tensor | null = null;
  let db: Tensor | null = null;
  if (needA) {
    da = transA
      ? product(`${what} dA`, B(transB), dC(true), [p.K, p.M, p.N], p.batch, p.aBroadcast, a.shape)
      : product(`${what} dA`, dC(false), B(!transB), [p.M, p.K, p.N], p.batch, p.aBroadcast, a.shape);
  }
  if (needB) {
    db = transB
      ? product(`${what} dB`, dC(true), A(transA), [p.N, p.K, p.M], p.batch, p.bBroadcast, b.shape)
      : product(`${what} dB`, A(!transA), dC(false), [p.K, p.N, p.M], p.batch, p.bBroadcast, b.shape);
  }
  return [da && likeOperand(da, a), db && likeOperand(db, b)];
}

/** A gradient in its operand's dtype: an f16 operand's f32 product rounded once to f16. */
function likeOperand(grad: Tensor, operand: Tensor): Tensor {
  if (operand.dtype !== 'f16') return grad;
  const half = cast(grad, 'f16');
  grad.dispose();
  return half;
}

// ---- matmul ----

const matmulOp = defineOp<[Tensor, Tensor], Flags>({
  name: 'matmul',
  forward([a, b], flags) {
    return forwardProduct('matmul', a, b, flags);
  },
  // dA = dC·op(B)ᵀ, dB = op(A)ᵀ·dC (transposed back where an operand is stored transposed), each summed
  // over the batch dims its operand was broadcast along: see productGradients.
  backward(g, { inputs: [a, b], options, needsGrad }) {
    return productGradients(g, a, b, options, needsGrad);
  },
});

/**
 * torch.matmul(a, b): a [..., M, K] · b [..., K, N] -> [..., M, N], batch dims broadcast; a 1-D a is a row
 * vector and a 1-D b a column vector (their dim is dropped from the result). `transA` / `transB` read an
 * operand as its transpose (a [..., K, M] gives op(a) [..., M, K]) without copying it. Operands are f32 or f16
 * (either, or both: half the memory traffic); products and sums are f32 and so is the result (unlike torch,
 * whose f16 product is rounded to f16: cast() it for that). An f16 operand's gradient is f16.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  return matmulOp([a, b], { transA: options.transA ?? false, transB: options.transB ?? false });
}

// ---- linear and addmm: a product with the bias fused into the store ----

const LINEAR: Flags = { transA: false, transB: true };
const ADDMM: Flags = { transA: false, transB: false };

const affineOp = defineOp<[Tensor, Tensor, Tensor], Flags>({
  name: 'affine',
  forward([x, w, bias], flags) {
    return forwardProduct(flags.transB ? 'linear' : 'addmm', x, w, flags, bias);
  },
  // linear y = x·Wᵀ + b:  dx = dy·W,   dW = dyᵀ·x;   addmm y = x·W + b:  dx = dy·Wᵀ,  dW = xᵀ·dy;
  // both summed over B and T, and db = Σ_rows dy.
  backward(g, { inputs: [x, w], options: flags, needsGrad }): Grads<[Tensor, Tensor, Tensor]> {
    const [dx, dw] = productGradients(g, x, w, flags, needsGrad);
    if (!needsGrad[2]) return [dx, dw, null];
    return [dx, dw, g.ndim === 1 ? g : sum(g, [...Array(g.ndim - 1).keys()])];
  },
});

/** Checks input [..., in] against a 2-D weight whose in_features sit on dim `inDim`, and the bias [out]. */
function checkAffine(op: string, input: Tensor, weight: Tensor, bias: Tensor | undefined, inDim: 0 | 1): void {
  expectFloat(op, { input, weight });
  if (bias) expectDtype(op, 'f32', { bias });
  const layout = inDim === 1 ? '[out_features, in_features]' : '[in_features, out_features]';
  if (weight.ndim !== 2) throw new Error(`${op}: weight ${fmt(weight)} must be 2-D ${layout}`);
  const inF = weight.shape[inDim]!;
  const outF = weight.shape[1 - inDim]!;
  if (input.ndim === 0) throw new Error(`${op}: input is a scalar (shape []); it needs a last dim of ${inF} in_features`);
  if (input.shape[input.ndim - 1] !== inF) {
    throw new Error(
      `${op}: input ${fmt(input)} and weight ${fmt(weight)} do not match ` +
        `(input has ${input.shape[input.ndim - 1]} features in its last dim, weight has ${inF} in_features)`,
    );
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF)) {
    throw new Error(`${op}: bias ${fmt(bias)} must be [${outF}] for weight ${fmt(weight)} (one value per out_feature)`);
  }
}

// ---- fused epilogues: what follows a projection, done in its store ----

/**
 * What follows an affine product in a transformer, applied in this order to y = x·W + b:
 *   y = residual + dropout(gelu(y))
 * (GPT-2's MLP: gelu(c_fc(x)); a block's output projections: x + dropout(c_proj(h))). Every part is optional.
 */
export interface Epilogue {
  /** torch.nn.functional.gelu's `approximate`: 'tanh' is GPT-2's gelu_new, 'none' the exact erf form. */
  gelu?: 'none' | 'tanh';
  /** Dropout probability (training only: pass 0 in eval) and optionally its seed (default: nextSeed()). */
  dropout?: number;
  seed?: number;
  /** A tensor of the output's shape, added last. */
  residual?: Tensor;
}

interface FusedOptions {
  flags: Flags;
  activation?: Activation;
  dropout?: DropoutOptions;
}

/** The fused op: inputs [x, w, bias] or [x, w, bias, residual]. */
const fusedAffineOp = defineOp<Tensor[], FusedOptions>({
  name: 'affine_fused',
  forward([x, w, bias, residual], { flags, activation, dropout }, save) {
    // The backward needs the activation's input; inference does not, and skips storing it.
    const keep = activation && isGradEnabled() && [x, w, bias].some((t) => t!.requiresGrad);
    const pre = keep ? empty([...x!.shape.slice(0, -1), w!.shape[flags.transB ? 0 : 1]!], 'f32', 'affine_pre') : undefined;
    const out = forwardProduct(flags.transB ? 'linear' : 'addmm', x!, w!, flags, bias, {
      ...(activation ? { activation } : {}),
      ...(pre ? { pre } : {}),
      ...(dropout ? { dropout } : {}),
      ...(residual ? { residual } : {}),
    });
    if (pre) save(pre);
    return out;
  },
  // y = r + drop(act(v)), v = x·op(W) + b:  dr = dy;  dv = act'(v) ⊙ (dy ⊙ mask / (1 - p));  then dx, dW, db
  // from dv as for the plain affine op (the mask is regenerated from the seed; v was saved by the forward).
  backward(g, { inputs: [x, w, , residual], options: { flags, activation, dropout }, saved: [pre], needsGrad }) {
    let dv = dropout ? dropoutLaunch(g, dropout, 'affine_fused dropout_backward') : g;
    if (activation) {
      const masked = dv;
      dv = unaryBackward(activation, pre!, pre!, masked);
      if (masked !== g) masked.dispose();
    }
    const [dx, dw] = productGradients(dv, x!, w!, flags, needsGrad.slice(0, 2));
    const db = needsGrad[2] ? sum(dv, [...Array(dv.ndim - 1).keys()]) : null;
    if (dv !== g) dv.dispose();
    return residual ? [dx, dw, db, needsGrad[3] ? g : null] : [dx, dw, db];
  },
});

/** Whether the product and its epilogue can run as one launch: every operand and the output within one binding. */
function fusable(x: Tensor, w: Tensor, bias: Tensor, outFeatures: number, residual?: Tensor): boolean {
  const outBytes = (x.size / x.shape[x.ndim - 1]!) * outFeatures * 4;
  return [x, w, bias, ...(residual ? [residual] : [])].every(fitsBinding) && outBytes <= runtime().bindingLimit;
}

function affine(op: 'linear' | 'addmm', input: Tensor, weight: Tensor, bias: Tensor | undefined, flags: Flags, epilogue: Epilogue): Tensor {
  const { gelu: approximate, dropout: p = 0, residual } = epilogue;
  if (!(p >= 0 && p < 1)) throw new RangeError(`${op}: dropout must be in [0, 1), got ${p}`);
  const outFeatures = weight.shape[flags.transB ? 0 : 1]!;
  const outShape = [...input.shape.slice(0, -1), outFeatures];
  if (residual) {
    expectDtype(op, 'f32', { residual });
    if (!sameShape(residual.shape, outShape)) throw new Error(`${op}: residual ${fmt(residual)} must have the output's shape [${outShape}]`);
  }
  const seed = p > 0 ? (epilogue.seed ?? nextSeed()) : 0;
  const activation: Activation | undefined = approximate === undefined ? undefined : approximate === 'tanh' ? 'gelu_tanh' : 'gelu_erf';
  if (!activation && p === 0 && !residual) return bias ? affineOp([input, weight, bias], flags) : matmulOp([input, weight], flags);
  if (bias && fusable(input, weight, bias, outFeatures, residual)) {
    return fusedAffineOp([input, weight, bias, ...(residual ? [residual] : [])], {
      flags,
      ...(activation ? { activation } : {}),
      ...(p > 0 ? { dropout: { p, seed } } : {}),
    });
  }
  // Too large for one launch's bindings, or no bias: the same computation as separate ops (the same bits).
  let y = bias ? affineOp([input, weight, bias], flags) : matmulOp([input, weight], flags);
  if (approximate !== undefined) y = gelu(y, approximate);
  if (p > 0) y = dropoutOp(y, p, true, seed);
  return residual ? add(residual, y) : y;
}

/**
 * torch.nn.functional.linear: input [..., in] · weight[out, in]ᵀ (+ bias [out]) -> [..., out], then the
 * optional `epilogue` (residual + dropout(gelu(·))). The weight is read transposed in place; the bias and the
 * epilogue are applied in the kernel's store.
 */
export function linear(input: Tensor, weight: Tensor, bias?: Tensor, epilogue: Epilogue = {}): Tensor {
  checkAffine('linear', input, weight, bias, 1);
  return affine('linear', input, weight, bias, LINEAR, epilogue);
}

/**
 * bias + input · mat2 with mat2 stored [in, out] (torch.addmm, extended to input [..., in]): Hugging Face's
 * Conv1D, the layout of every GPT-2 projection. The bias and the optional `epilogue` (residual +
 * dropout(gelu(·))) are applied in the kernel's store.
 */
export function addmm(bias: Tensor, input: Tensor, mat2: Tensor, epilogue: Epilogue = {}): Tensor {
  checkAffine('addmm', input, mat2, bias, 0);
  return affine('addmm', input, mat2, bias, ADDMM, epilogue);
}
