// Float64 CPU references for shape and indexing ops (permute, slice, cat, indexSelect, embedding) and a float32 scatter-add.
//
// permute, slice and cat walk the input element by element and compute where each one lands (the kernels
// do the reverse: each output element finds its source), so a shared indexing mistake is unlikely. The
// gathers are direct, since finite differences call them once per input element and must stay cheap.

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

function stridesOf(shape: readonly number[]): number[] {
  const s = shape.map(() => 1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
}

/** Coordinates of flat index i in a row-major tensor of `shape`. */
function coords(i: number, shape: readonly number[]): number[] {
  const c = shape.map(() => 0);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}

function flat(c: readonly number[], shape: readonly number[]): number {
  const s = stridesOf(shape);
  return c.reduce((acc, v, d) => acc + v * s[d]!, 0);
}

const norm = (d: number, rank: number): number => (d < 0 ? d + rank : d);

/** torch.permute: out dim i is x's dim perm[i] (negative allowed). */
export function permute(x: Float64Array, shape: readonly number[], perm: readonly number[]): Float64Array {
  const p = perm.map((d) => norm(d, shape.length));
  const outShape = p.map((d) => shape[d]!);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = coords(i, shape);
    out[flat(p.map((d) => c[d]!), outShape)] = x[i]!;
  }
  return out;
}

/** x[..., start:end, ...] along dim (start, end already non-negative). */
export function slice(x: Float64Array, shape: readonly number[], dim: number, start: number, end: number): Float64Array {
  const d = norm(dim, shape.length);
  const outShape = shape.map((n, i) => (i === d ? end - start : n));
  const out = new Float64Array(prod(outShape));
  for (let i = 0; i < x.length; i++) {
    const c = coords(i, shape);
    if (c[d]! < start || c[d]! >= end) continue;
    c[d] = c[d]! - start;
    out[flat(c, outShape)] = x[i]!;
  }
  return out;
}

/** torch.cat along dim. */
export function cat(xs: readonly Float64Array[], shapes: readonly (readonly number[])[], dim: number): Float64Array {
  const d = norm(dim, shapes[0]!.length);
  const outShape = shapes[0]!.map((n, i) => (i === d ? shapes.reduce((a, s) => a + s[d]!, 0) : n));
  const out = new Float64Array(prod(outShape));
  let offset = 0;
  xs.forEach((x, t) => {
    for (let i = 0; i < x.length; i++) {
      const c = coords(i, shapes[t]!);
      c[d] = c[d]! + offset;
      out[flat(c, outShape)] = x[i]!;
    }
    offset += shapes[t]![d]!;
  });
  return out;
}

/** torch.index_select, except that ids outside 0..size-1 give zeros (the kernels' documented rule). */
export function indexSelect(x: Float64Array, shape: readonly number[], dim: number, ids: ArrayLike<number>): Float64Array {
  const d = norm(dim, shape.length);
  const outShape = shape.map((n, i) => (i === d ? ids.length : n));
  const out = new Float64Array(prod(outShape));
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, outShape);
    const id = ids[c[d]!]!;
    if (id < 0 || id >= shape[d]!) continue;
    c[d] = id;
    out[i] = x[flat(c, shape)]!;
  }
  return out;
}

/** F.embedding: out [N, C] = weight [V, C] at rows ids [N]; out-of-range ids give zero rows. */
export function embedding(ids: ArrayLike<number>, weight: Float64Array, V: number, C: number): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let n = 0; n < ids.length; n++) {
    const v = ids[n]!;
    if (v >= 0 && v < V) out.set(weight.subarray(v * C, (v + 1) * C), n * C);
  }
  return out;
}

/**
 * dweight [V, C] = sum of g[n, :] into row ids[n], in float32 with the additions in `order` of n:
 * the exact bits a deterministic kernel that adds in increasing n must produce.
 */
export function scatterAddF32(g: Float32Array, ids: ArrayLike<number>, V: number, C: number, order: 'increasing' | 'decreasing'): Float32Array {
  const out = new Float32Array(V * C);
  for (let k = 0; k < ids.length; k++) {
    const n = order === 'increasing' ? k : ids.length - 1 - k;
    const v = ids[n]!;
    if (v < 0 || v >= V) continue;
    for (let c = 0; c < C; c++) out[v * C + c] = Math.fround(out[v * C + c]! + g[n * C + c]!);
  }
  return out;
}
