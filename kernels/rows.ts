// WGSL pieces shared by the row kernels (softmax, cross-entropy, layerNorm): workgroup size per row, workgroup sums, online softmax statistics.
//
// A row kernel owns one row of x viewed as [N, C] per workgroup; its invocations fold strided slices of
// the row and combine them with the trees below. Reference: test/reference/rows.ts.

/** Invocations per row workgroup: the smallest power of two >= C in [32, 256], so short rows (T = 7) do not idle 249 lanes. */
export function rowWorkgroupSize(C: number): number {
  let wg = 32;
  while (wg < C && wg < 256) wg *= 2;
  return wg;
}

/**
 * Shared WGSL for row kernels:
 *   NEG_BIG          -FLT_MAX, the "minus infinity" we can compute with (WGSL may assume no infinities exist);
 *   row_id()         the row this workgroup owns;
 *   row_sum(v, lid)  the workgroup-wide sum of v (f32 or vec2<f32>), returned to every invocation.
 * row_sum contains barriers: call it from uniform control flow (every invocation of the workgroup).
 */
export function rowCommonWGSL(wg: number, sumType: 'f32' | 'vec2<f32>' = 'f32'): string {
  return /* wgsl */ `
const NEG_BIG: f32 = -3.4028234663852886e38;
fn row_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }

var<workgroup> sum_tree: array<${sumType}, ${wg}>;
fn row_sum(v: ${sumType}, lid: u32) -> ${sumType} {
  sum_tree[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sum_tree[lid] += sum_tree[lid + s]; }
    workgroupBarrier();
  }
  let total = sum_tree[0];
  // Nobody may overwrite sum_tree[0] (a second row_sum) before everyone has read it.
  workgroupBarrier();
  return total;
}`;
}

/**
 * Online softmax statistics: a pair ms = (m, s) with m the running max and s = sum_i exp(v_i - m).
 *   online_add(ms, v)   folds in one value with a single exp: e = exp(-|v - m|) is exp(v - m) when v <= m,
 *                       and exp(m - v), the factor that rescales the old sum to the new max, when v > m.
 *   row_max_sum(ms, lid) merges the pairs of the workgroup: m = max(m1, m2), s = s1 e^(m1-m) + s2 e^(m2-m).
 * Start from (NEG_BIG, 0). Because nothing is ever below NEG_BIG, every exponent is <= 0 (no overflow), and a
 * row whose values are all NEG_BIG (fully masked) ends with m = NEG_BIG, s = C: uniform, never 0/0.
 */
export function onlineSoftmaxWGSL(wg: number): string {
  return /* wgsl */ `
fn online_add(ms: vec2<f32>, v: f32) -> vec2<f32> {
  let e = exp(-abs(v - ms.x));
  return select(vec2<f32>(ms.x, ms.y + e), vec2<f32>(v, ms.y * e + 1.0), v > ms.x);
}
fn online_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}
var<workgroup> ms_tree: array<vec2<f32>, ${wg}>;
fn row_max_sum(ms: vec2<f32>, lid: u32) -> vec2<f32> {
  ms_tree[lid] = ms;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { ms_tree[lid] = online_merge(ms_tree[lid], ms_tree[lid + s]); }
    workgroupBarrier();
  }
  return ms_tree[0];
}`;
}
