// WGSL for row gather (embedding, indexSelect) and its deterministic scatter-add gradient.
//
// Both kernels view the table as x [outer, V, inner] and the result as [outer, N, inner], where ids [N]
// (i32) pick rows along V. For an embedding: outer = 1, V = vocab, inner = C, N = B·T.
// Out-of-range ids (< 0 or >= V) cannot be reported without a read-back, so the kernels make them
// harmless instead: the gather writes zeros for them and the scatter-add skips them (consistent: a
// zero output does not depend on x, so its gradient is zero). Reference: test/reference/shape.ts.

export const WG = 256;
/** Rows of dx owned by one scatter-add workgroup (the vocab tile). */
export const SCATTER_ROWS = 256;
/** Ids staged per step of the scatter-add scan. */
export const SCATTER_CHUNK = 1024;

/**
 * out[o, n, k] = x[o, ids[n], k], or 0 when ids[n] is out of range. Moves u32 bits (f32 and i32 alike).
 * A table or output larger than one storage binding is split (ops/indexing.ts): one launch per pair of
 * an output chunk (elements first .. first+n of the flat out) and a table chunk (elements x0 .. x0+xn of
 * the flat x); each launch writes the outputs whose source lies in its table chunk. Unsplit: first = 0,
 * x0 = 0, xn = the table's size.
 *   x: [outer, V, inner] (chunk)   ids: [N]   out: [outer, N, inner] (chunk)   grid: grid1d(n)
 */
export const GATHER_WGSL = /* wgsl */ `
struct Params { n: u32, N: u32, V: u32, inner: u32, first: u32, x0: u32, xn: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * (nwg.x * ${WG}u) + gid.x;
  if (i >= p.n) { return; }
  let e = p.first + i;
  let k = e % p.inner;
  let on = e / p.inner;
  let n = on % p.N;
  let o = on / p.N;
  let id = ids[n];
  if (id < 0 || u32(id) >= p.V) {
    out[i] = 0u;
    return;
  }
  // The source's place in this table chunk; one below x0 wraps to a huge u32, so one comparison rejects both sides.
  let src = (o * p.V + u32(id)) * p.inner + k - p.x0;
  if (src < p.xn) { out[i] = x[src]; }
}`;

/**
 * dx[o, v, k] += sum over n with ids[n] == v of g[o, n, k], summed in increasing n: deterministic, with no
 * float atomics, so a training run gives the same bits every time. dx must be zeroed beforehand.
 *
 * Ownership: the columns q = (o, k), q < cols = outer·inner, are cut into groups of WG; a workgroup owns
 * one column group (grid x, overflowing into z) and one tile of SCATTER_ROWS rows v0..v0+ROWS (grid y).
 * Invocation `lid` owns column q = group·WG + lid of every row in the tile, so each dx element has exactly
 * one writer, which adds into it in n order.
 *
 * The scan: the workgroup walks the N ids in chunks of CHUNK = SCATTER_CHUNK (4 per invocation). One that
 * loads an id inside the tile notes its row and sets bit j (the id's place in the chunk) of a CHUNK-bit
 * mask in workgroup memory: atomicOr on integers, so the mask comes out the same whatever order the bits
 * arrive in. Every invocation then walks the set bits from the lowest up (countTrailingZeros), which
 * visits the chunk's hits in n order, adding g[o, n, k] into dx[o, v, k]. (Appending hits to a list
 * with an atomic counter would shuffle their order, and with it the rounding; a prefix sum over hit
 * flags keeps the order too, but costs 2·log2(WG) barriers per chunk instead of 3.)
 *
 * Split (dx larger than one binding, ops/indexing.ts): a launch covers rows v0 .. v0+rows of one o0 (cols =
 * inner) and binds dx from dx[o0, v0, 0], which is element `base` of its binding. Unsplit: o0 = v0 = base = 0,
 * rows = V, cols = outer·inner. Either way each dx element is summed by one invocation in n order.
 *
 * Cost: ceil(cols / WG)·ceil(V / ROWS) workgroups each read all N ids, with 3 barriers and CHUNK/32 mask
 * reads per chunk; plus outer·N·inner adds in total. GPT-2 (V = 50257, C = 768, N = B·T = 8192):
 * 3·197 workgroups, 4.8M id reads, 6.3M adds. The adds into one element are sequential, so a batch where
 * every position holds the same token serialises N adds per invocation in one workgroup.
 *   g: [outer, N, inner] f32   ids: [N] i32   dx: [outer, V, inner] f32 (or the rows of one split launch)
 *   grid: (column groups, ceil(rows / ROWS), column-group overflow), workgroup WG
 */
export const SCATTER_ADD_WGSL = /* wgsl */ `
struct Params { N: u32, V: u32, inner: u32, cols: u32, o0: u32, v0: u32, rows: u32, base: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
var<workgroup> mask: array<atomic<u32>, ${SCATTER_CHUNK / 32}>;
var<workgroup> rowOf: array<u32, ${SCATTER_CHUNK}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = wid.z * nwg.x + wid.x;
  if (group * ${WG}u >= p.cols) { return; }   // the same for the whole workgroup, so barriers stay uniform
  let q = group * ${WG}u + lid;
  let owner = q < p.cols;
  let o = p.o0 + q / p.inner;
  let k = q % p.inner;
  let v0 = p.v0 + wid.y * ${SCATTER_ROWS}u;
  let rows = min(${SCATTER_ROWS}u, p.v0 + p.rows - v0);
  let dxCol = ((o - p.o0) * p.V + v0 - p.v0) * p.inner + k + p.base;   // dx[o, v0 + r, k] = dx[dxCol + r·inner]
  let gCol = o * p.N * p.inner + k;                                    // g[o, n, k]       = g[gCol + n·inner]

  for (var c = 0u; c < p.N; c += ${SCATTER_CHUNK}u) {
    if (lid < ${SCATTER_CHUNK / 32}u) { atomicStore(&mask[lid], 0u); }
    workgroupBarrier();
    for (var j = lid; j < ${SCATTER_CHUNK}u; j += ${WG}u) {
      let n = c + j;
      if (n < p.N) {
        // A negative id becomes a huge u32 and an id >= V gives row >= rows, so one comparison rejects both.
        let row = u32(ids[n]) - v0;
        if (row < rows) {
          rowOf[j] = row;
          atomicOr(&mask[j / 32u], 1u << (j % 32u));
        }
      }
    }
    workgroupBarrier();
    if (owner) {
      for (var m = 0u; m < ${SCATTER_CHUNK / 32}u; m++) {
        var bits = atomicLoad(&mask[m]);
        while (bits != 0u) {
          let j = m * 32u + countTrailingZeros(bits);
          bits &= bits - 1u;   // clear the lowest set bit
          let at = dxCol + rowOf[j] * p.inner;
          dx[at] = dx[at] + g[gCol + (c + j) * p.inner];
        }
      }
    }
    workgroupBarrier();   // the next chunk overwrites mask and rowOf
  }
}`;
