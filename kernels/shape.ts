// WGSL for data-movement ops: the strided gather (permute, expand), a tiled last-two-dims transpose, block copies for slice/cat, and pad for slice's backward.
//
// Every kernel moves 32-bit words as u32 bits, so one kernel serves f32 and i32 tensors and copies are
// exact (NaN payloads and -0 included). 1-D kernels use 256 invocations per workgroup and a 2-D grid
// (x up to 65535 workgroups, then y): flat index i = gid.y * (num_workgroups.x * 256) + gid.x.
// Reference: test/reference/shape.ts.

export const WG = 256;
/** Side of the square tile of the tiled transpose; a workgroup is TILE x TILE_ROWS invocations. */
export const TILE = 32;
export const TILE_ROWS = 8;

const INDEX = /* wgsl */ `
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.y * (nwg.x * ${WG}u) + gid.x; }
`;

/**
 * out[i] = x[ix]: the strided gather behind permute and expand. i is split into coordinates over the
 * output shape (rank <= 8, innermost last, 4 per vec4) and ix = sum_d coord_d * sx[d]. For permute, sx[d]
 * is the stride of the input dimension that lands at output position d (the host merges dims that stay
 * adjacent first, so the rank is usually 3 or 4); for expand (broadcast), sx[d] is 0 along broadcast dims.
 *   x:   [n] words in input order      out: [n] words in output order      grid: grid1d(n)
 */
export const STRIDED_GATHER_WGSL = /* wgsl */ `
struct Params { n: u32, rank: u32, shape: array<vec4<u32>, 2>, sx: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  var rest = i;
  var ix = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let size = p.shape[d / 4][d % 4];
    ix += (rest % size) * p.sx[d / 4][d % 4];
    rest = rest / size;
  }
  out[i] = x[ix];
}`;

/**
 * out[b, n, m] = x[b, m, n]: batched transpose of the last two dims through a workgroup-memory tile.
 * A naive transpose reads rows and writes columns, so one of the two is strided. Here a workgroup loads
 * a TILE x TILE block with row-contiguous reads, then writes it out with row-contiguous writes, reading
 * the tile by columns. The tile row is TILE + 1 words long so that a column read walks through all
 * memory banks instead of hitting one bank TILE times.
 *   x: [B, M, N]   out: [B, N, M]   grid: (ceil(N / TILE), ceil(M / TILE), B), workgroup TILE x TILE_ROWS
 */
export const TRANSPOSE_TILED_WGSL = /* wgsl */ `
struct Params { M: u32, N: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
var<workgroup> tile: array<u32, ${TILE * (TILE + 1)}>;

@compute @workgroup_size(${TILE}, ${TILE_ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let base = wid.z * p.M * p.N;
  let m0 = wid.y * ${TILE}u;
  let n0 = wid.x * ${TILE}u;
  // Each invocation moves TILE / TILE_ROWS words: rows lid.y, lid.y + TILE_ROWS, ...
  for (var r = lid.y; r < ${TILE}u; r += ${TILE_ROWS}u) {
    let m = m0 + r;
    let n = n0 + lid.x;
    if (m < p.M && n < p.N) { tile[r * ${TILE + 1}u + lid.x] = x[base + m * p.N + n]; }
  }
  workgroupBarrier();
  for (var r = lid.y; r < ${TILE}u; r += ${TILE_ROWS}u) {
    let n = n0 + r;
    let m = m0 + lid.x;
    if (n < p.N && m < p.M) { out[base + n * p.M + m] = tile[lid.x * ${TILE + 1}u + r]; }
  }
}`;

/**
 * dst[r * dstStride + dstOffset + j] = src[r * srcStride + srcOffset + j]  for r < rows, j < width:
 * copies `rows` contiguous runs of `width` words between two row-major layouts. With x viewed as
 * [outer, D, inner] this is slice's forward (src = x, srcStride = D·inner, srcOffset = start·inner) and
 * one input of cat (dst = out, dstStride = D_out·inner, dstOffset = offset·inner).
 *   grid: grid1d(rows * width)
 */
export const COPY_ROWS_WGSL = /* wgsl */ `
struct Params { n: u32, width: u32, srcStride: u32, srcOffset: u32, dstStride: u32, dstOffset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let r = i / p.width;
  let j = i % p.width;
  dst[r * p.dstStride + p.dstOffset + j] = src[r * p.srcStride + p.srcOffset + j];
}`;

/**
 * dst[r, j] = src[r, j - offset] if offset <= j < offset + width, else 0: the gradient of a slice,
 * written as a gather so every element of dst is written exactly once (no separate zero fill).
 *   src: [rows, width]   dst: [rows, dstWidth]   grid: grid1d(rows * dstWidth)
 */
export const PAD_WGSL = /* wgsl */ `
struct Params { n: u32, dstWidth: u32, width: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let r = i / p.dstWidth;
  let j = i % p.dstWidth;
  // j - offset wraps around to a huge value when j < offset, so one comparison checks both ends.
  let k = j - p.offset;
  var v = 0u;
  if (k < p.width) { v = src[r * p.width + k]; }
  dst[i] = v;
}`;
