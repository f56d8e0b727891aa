// Elementwise ops (forward + backward): unary maps, broadcasting add/sub/mul/div, scalar variants, expand, fill.

import { defineOp } from '../autograd.js';
import { ACCUMULATE_WGSL, FILL_WGSL, FROM_HALF_WGSL, TO_HALF_WGSL, binaryWGSL, unaryBackwardWGSL, unaryWGSL, type BinaryOp, type UnaryOp } from '../../kernels/elementwise.js';
import { STRIDED_GATHER_WGSL } from '../../kernels/shape.js';
import { Kernel, type ParamValues } from '../gpu/kernel.js';
import { runtime } from '../gpu/runtime.js';
import { empty, type DType, type Shape, type Tensor } from '../tensor.js';
import { sumToShape } from './reduce.js';
import { alignElements, flatChunks, rangeOf, windowOf } from './bindings.js';
import { broadcastShapes, broadcastStrides, checkRank, dispatch, expectDtype, fmt, grid1d, kernelCache, sameShape } from './util.js';

const unaryKernel = kernelCache<UnaryOp>('unary', unaryWGSL);
const unaryBackwardKernel = kernelCache<UnaryOp>('unary_backward', unaryBackwardWGSL);
const binaryKernel = kernelCache<`${BinaryOp}:${'same' | 'bcast'}`>('binary', (k) => {
  const [op, mode] = k.split(':') as [BinaryOp, string];
  return binaryWGSL(op, mode === 'same');
});
// expand is the strided gather of kernels/shape.ts with stride 0 along the broadcast dims.
const expandKernel = new Kernel('expand', STRIDED_GATHER_WGSL);
const fillKernel = new Kernel('fill', FILL_WGSL);
const accumulateKernel = new Kernel('accumulate', ACCUMULATE_WGSL);

/**
 * Launches an elementwise kernel whose bindings are all `n` elements long (or [1], like clipGradNorm's
 * norm: `whole` tensors are bound as they are): once, or once per flat chunk when the tensors outgrow
 * one binding (ops/bindings.ts). The kernel's uniform `n` is the chunk's length and `start` (for kernels
 * that declare it, like dropout's hash of the flat index) the index of its first element.
 */
export function launchElementwise(
  kernel: Kernel,
  tensors: readonly Tensor[],
  n: number,
  params: ParamValues,
  label: string,
  { whole = [] as readonly Tensor[] } = {},
): void {
  const chunks = flatChunks(n);
  for (const [start, count] of chunks) {
    dispatch(kernel, {
      buffers: tensors.map((t) => (whole.includes(t) ? t.range : chunks.length === 1 ? t.range : rangeOf(t, start, count))),
      params: { ...params, n: count, start },
      grid: grid1d(count),
      label: chunks.length === 1 ? label : `${label} elements ${start}..${start + count - 1}`,
    });
  }
}

// ---- unary: y = f(x, s) ----

function launchUnary(op: UnaryOp, x: Tensor, s: number): Tensor {
  const y = empty(x.shape, 'f32', op);
  launchElementwise(unaryKernel(op), [x, y], x.size, { s }, `${op} x${fmt(x)}`);
  return y;
}

/** Ops whose derivative is a constant times g: d/dx of neg, x+s, x*s, s-x. */
const LINEAR: Partial<Record<UnaryOp, (s: number) => number>> = { neg: () => -1, add_s: () => 1, mul_s: (s) => s, rsub_s: () => -1 };

const unaryOp = defineOp<[Tensor], { op: UnaryOp; s: number }>({
  name: 'unary',
  forward([x], { op, s }) {
    expectDtype(op, 'f32', { x });
    return launchUnary(op, x, s);
  },
  // dL/dx = g * f'(x)
  backward(g, { inputs: [x], out, options: { op, s } }) {
    const slope = LINEAR[op];
    if (slope) return [slope(s) === 1 ? g : launchUnary('mul_s', g, slope(s))];
    return [unaryBackward(op, x, out, g, s)];
  },
});

/** dx = g * f'(x) for y = f(x, s) (kernels/elementwise.ts; the GELUs read only x, so y may be x itself). */
export function unaryBackward(op: UnaryOp, x: Tensor, y: Tensor, g: Tensor, s = 0): Tensor {
  const dx = empty(x.shape, 'f32', `${op}_backward`);
  launchElementwise(unaryBackwardKernel(op), [x, y, g, dx], x.size, { s }, `${op}_backward x${fmt(x)}`);
  return dx;
}

export const neg = (x: Tensor): Tensor => unaryOp([x], { op: 'neg', s: 0 });
export const exp = (x: Tensor): Tensor => unaryOp([x], { op: 'exp', s: 0 });
export const log = (x: Tensor): Tensor => unaryOp([x], { op: 'log', s: 0 });
export const sqrt = (x: Tensor): Tensor => unaryOp([x], { op: 'sqrt', s: 0 });
export const tanh = (x: Tensor): Tensor => unaryOp([x], { op: 'tanh', s: 0 });
export const relu = (x: Tensor): Tensor => unaryOp([x], { op: 'relu', s: 0 });
/** x^p for a number p (torch.pow(x, p)). */
export const pow = (x: Tensor, p: number): Tensor => unaryOp([x], { op: 'pow_s', s: p });

/**
 * GELU, as torch.nn.functional.gelu(input, approximate): 'none' is x Phi(x) with the exact erf (BERT, XLNet),
 * 'tanh' is the tanh approximation (GPT-2's gelu_new).
 */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unaryOp([x], { op: approximate === 'tanh' ? 'gelu_tanh' : 'gelu_erf', s: 0 });
}

// ---- binary with broadcasting ----

/** Sums a temporary broadcast gradient back to an input's shape; frees the temporary if a new tensor was made. */
function reduceTo(g: Tensor, shape: Shape): Tensor {
  const r = sumToShape(g, shape);
  if (r !== g) g.dispose();
  return r;
}

function launchBinary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = empty(shape, 'f32', op);
  const same = sameShape(a.shape, shape) && sameShape(b.shape, shape);
  // Same shapes (the sum of two gradients of one weight, for one) split like any elementwise op; broadcast
  // operands are bound whole.
  if (same) {
    launchElementwise(binaryKernel(`${op}:same`), [a, b, out], out.size, { rank: 0, shape: [], sa: [], sb: [] }, `${op} a${fmt(a)} b${fmt(b)}`);
    return out;
  }
  dispatch(binaryKernel(`${op}:bcast`), {
    buffers: [a.range, b.range, out.range],
    params: { n: out.size, rank: shape.length, shape, sa: broadcastStrides(a.shape, shape), sb: broadcastStrides(b.shape, shape) },
    grid: grid1d(out.size),
    label: `${op} a${fmt(a)} b${fmt(b)}`,
  });
  return out;
}

const binaryOp = defineOp<[Tensor, Tensor], BinaryOp>({
  name: 'binary',
  forward([a, b], op) {
    expectDtype(op, 'f32', { a, b });
    checkRank(op, a);
    checkRank(op, b);
    return launchBinary(op, a, b);
  },
  // add: (g, g)   sub: (g, -g)   mul: (g b, g a)   div: (g / b, -g a / b^2 = -(g / b) * out)
  // then each is summed over the dimensions its input was broadcast along.
  backward(g, { inputs: [a, b], out, options: op, needsGrad: [ga, gb] }) {
    switch (op) {
      case 'add':
        return [ga ? sumToShape(g, a.shape) : null, gb ? sumToShape(g, b.shape) : null];
      case 'sub':
        return [ga ? sumToShape(g, a.shape) : null, gb ? reduceTo(launchUnary('neg', g, 0), b.shape) : null];
      case 'mul':
        return [ga ? reduceTo(launchBinary('mul', g, b), a.shape) : null, gb ? reduceTo(launchBinary('mul', g, a), b.shape) : null];
      case 'div': {
        const q = launchBinary('div', g, b);
        let db: Tensor | null = null;
        if (gb) {
          const qy = launchBinary('mul', q, out);
          db = reduceTo(launchUnary('neg', qy, 0), b.shape);
          qy.dispose();
        }
        if (!ga) q.dispose();
        return [ga ? reduceTo(q, a.shape) : null, db];
      }
    }
  },
});

type Operand = Tensor | number;

function scalarOr(op: BinaryOp, a: Operand, b: Operand): Tensor {
  if (typeof a !== 'number' && typeof b !== 'number') return binaryOp([a, b], op);
  if (typeof a !== 'number' && typeof b === 'number') {
    if (op === 'add') return unaryOp([a], { op: 'add_s', s: b });
    if (op === 'sub') return unaryOp([a], { op: 'add_s', s: -b });
    if (op === 'mul') return unaryOp([a], { op: 'mul_s', s: b });
    return unaryOp([a], { op: 'mul_s', s: 1 / b });
  }
  if (typeof a === 'number' && typeof b !== 'number') {
    if (op === 'add') return unaryOp([b], { op: 'add_s', s: a });
    if (op === 'sub') return unaryOp([b], { op: 'rsub_s', s: a });
    if (op === 'mul') return unaryOp([b], { op: 'mul_s', s: a });
    return unaryOp([b], { op: 'rdiv_s', s: a });
  }
  throw new TypeError(`${op}: at least one operand must be a tensor`);
}

/** a + b with broadcasting; either may be a number. */
export const add = (a: Operand, b: Operand): Tensor => scalarOr('add', a, b);
/** a - b with broadcasting; either may be a number. */
export const sub = (a: Operand, b: Operand): Tensor => scalarOr('sub', a, b);
/** a * b with broadcasting; either may be a number. */
export const mul = (a: Operand, b: Operand): Tensor => scalarOr('mul', a, b);
/** a / b with broadcasting; either may be a number. */
export const div = (a: Operand, b: Operand): Tensor => scalarOr('div', a, b);

// ---- expand (broadcast copy) ----

/** Broadcasts x to `shape` (torch.Tensor.expand, but materialised). Backward sums over the broadcast dims. */
export const expand = (x: Tensor, shape: Shape): Tensor => expandOp([x], shape);

const expandOp = defineOp<[Tensor], Shape>({
  name: 'expand',
  forward([x], shape) {
    const full = broadcastShapes('expand', x.shape, shape);
    if (!sameShape(full, shape)) throw new Error(`expand: cannot expand [${x.shape}] to [${shape}]`);
    const out = empty(shape, x.dtype, 'expand');
    dispatch(expandKernel, {
      buffers: [x.range, out.range],
      params: { n: out.size, rank: shape.length, shape, sx: broadcastStrides(x.shape, shape) },
      grid: grid1d(out.size),
      label: `expand x${fmt(x)} to [${shape}]`,
    });
    return out;
  },
  backward(g, { inputs: [x] }) {
    return [sumToShape(g, x.shape)];
  },
});

// ---- dtype casts ----

const toHalfKernel = new Kernel('to_f16', TO_HALF_WGSL);
const fromHalfKernel = new Kernel('from_f16', FROM_HALF_WGSL);

function launchCast(x: Tensor, dtype: 'f32' | 'f16'): Tensor {
  const out = empty(x.shape, dtype, `to_${dtype}`);
  const toHalf = dtype === 'f16';
  // A tensor over one binding (GPT-2's [V, C] embedding under autocast) converts in chunks of whole 128-element
  // (256-byte f16) units, so every chunk starts aligned on both sides and packs whole word pairs.
  const chunks = flatChunks(x.size, 2 * alignElements());
  for (const [start, count] of chunks) {
    const whole = chunks.length === 1;
    dispatch(toHalf ? toHalfKernel : fromHalfKernel, {
      buffers: whole ? [x.range, out.range] : [windowOf(x, start, count).range, windowOf(out, start, count).range],
      params: { n: count },
      grid: grid1d(toHalf ? Math.ceil(count / 2) : count),
      label: `to_${dtype} x${fmt(x)}${whole ? '' : ` elements ${start}..${start + count - 1}`}`,
    });
  }
  return out;
}

const castOp = defineOp<[Tensor], 'f32' | 'f16'>({
  name: 'cast',
  forward([x], dtype) {
    return launchCast(x, dtype);
  },
  // y = x in another precision: dL/dx = g, cast back to x's precision.
  backward(g, { inputs: [x] }) {
    return [launchCast(g, x.dtype as 'f32' | 'f16')];
  },
});

/**
 * x converted between f32 and f16 (torch's x.half() / x.float()): to f16 rounds to nearest even (overflow gives
 * inf), back to f32 is exact (kernels/elementwise.ts). The same dtype returns x itself.
 */
export function cast(x: Tensor, dtype: 'f32' | 'f16'): Tensor {
  if (x.dtype === 'i32') throw new TypeError(`cast: ${fmt(x)} is i32; only f32 and f16 convert`);
  if (dtype !== 'f32' && dtype !== 'f16') throw new TypeError(`cast: dtype must be 'f32' or 'f16', got ${String(dtype)}`);
  return x.dtype === dtype ? x : castOp([x], dtype);
}

// ---- creation and in-place helpers (no gradient) ----

/** A tensor filled with one value (torch.full). */
export function full(shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  if (dtype === 'f16') throw new TypeError('full: f16 is not supported yet');
  const out = empty(shape, dtype, 'full');
  const bits = dtype === 'f32' ? new Uint32Array(new Float32Array([value]).buffer)[0]! : value >>> 0;
  launchElementwise(fillKernel, [out], out.size, { bits }, `fill [${shape}]`);
  return out;
}

export const ones = (shape: Shape): Tensor => full(shape, 1);

/** dst += src, in place, no gradient (used to accumulate .grad). */
export function accumulate_(dst: Tensor, src: Tensor): void {
  if (!sameShape(dst.shape, src.shape)) throw new Error(`accumulate_: shapes ${fmt(dst)} and ${fmt(src)} differ`);
  launchElementwise(accumulateKernel, [src, dst], dst.size, {}, `accumulate ${fmt(dst)}`);
}

/** A copy with its own memory, no gradient link. */
export function clone(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype, 'clone');
  if (x.size > 0) runtime().copy(x.range, out.range);
  return out;
}
