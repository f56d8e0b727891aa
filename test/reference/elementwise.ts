// Float64 CPU references for elementwise ops and reductions: the oracle the GPU kernels are tested against.

/** erf to ~1e-15: Maclaurin series for |x| < 3, Lentz continued fraction for erfc beyond. */
export function erf(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(z) = exp(-z^2)/sqrt(pi) * 1/(z + 1/2/(z + 1/(z + 3/2/(z + ...))))
    let f = z;
    let c = z;
    let d = 0;
    for (let n = 1; n < 200; n++) {
      const a = n / 2;
      d = z + a * d;
      d = d === 0 ? 1e-300 : 1 / d;
      c = z + a / c;
      const delta = c * d;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

export function map(x: Float64Array, f: (v: number) => number): Float64Array {
  return x.map(f);
}

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    return da === 1 ? db : da;
  });
}

/** Element of x (shape xs) read at the coordinates of flat index i of the broadcast shape `to`. */
function at(x: Float64Array, xs: readonly number[], to: readonly number[], i: number): number {
  let idx = 0;
  let stride = 1;
  let rest = i;
  for (let d = to.length - 1; d >= 0; d--) {
    const c = rest % to[d]!;
    rest = Math.floor(rest / to[d]!);
    const j = d - (to.length - xs.length);
    if (j >= 0) {
      if (xs[j] !== 1) idx += c * stride;
      stride *= xs[j]!;
    }
  }
  return x[idx]!;
}

export function binary(a: Float64Array, as: readonly number[], b: Float64Array, bs: readonly number[], f: (x: number, y: number) => number): Float64Array {
  const shape = broadcastShape(as, bs);
  const n = shape.reduce((p, q) => p * q, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(at(a, as, shape, i), at(b, bs, shape, i));
  return out;
}

/** Reduces `axes` of x (shape) with f, starting from init; keepdim layout (same element order either way). */
export function reduce(x: Float64Array, shape: readonly number[], axes: readonly number[], f: (acc: number, v: number) => number, init: number): Float64Array {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const n = outShape.reduce((p, q) => p * q, 1);
  const out = new Float64Array(n).fill(init);
  const total = shape.reduce((p, q) => p * q, 1);
  for (let i = 0; i < total; i++) {
    let rest = i;
    let o = 0;
    let stride = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rest % shape[d]!;
      rest = Math.floor(rest / shape[d]!);
      if (!axes.includes(d)) o += c * stride;
      stride *= outShape[d]!;
    }
    out[o] = f(out[o]!, x[i]!);
  }
  return out;
}
