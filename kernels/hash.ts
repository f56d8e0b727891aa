// WGSL for the counter-based hash behind every random draw on the GPU (dropout masks, sampling): lowbias32.
//
// mix32 is "lowbias32" from Chris Wellons' hash-prospector: xorshift-multiply rounds with good avalanche, so
// hashing a counter (element index, step, row) with a seed gives independent-looking 32-bit numbers with no
// state to carry between launches. Reference: test/reference/hash.ts (the same function with Math.imul).

export const MIX32_WGSL = /* wgsl */ `
fn mix32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}`;
