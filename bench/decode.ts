// Attention's two forward kernels side by side on decoding shapes: the single pass and split-K, each validated against float64 first.
//
//   npm run build && node dist/bench/decode.js [--quick]
// Prints GPU ms per shape for both and which one causalAttention's 'auto' picks (src/ops/attention.ts decodeSplit),
// so the rule can be checked against the adapter at hand: the faster column should be the one 'auto' names.

import { init } from '../src/gpu/runtime.js';
import { decodeSplit, type AttentionForward } from '../src/ops/attention.js';
import { timeGpu } from './common.js';
import { attentionCase } from './kernels.js';

const QUICK = process.argv.includes('--quick');
const { gpu } = await init();
console.log(`adapter: ${gpu.name}`);
// [B, NH, T, S, HS]: GPT-2 124M's heads (12 × 64) decoding 1 token, a few draft tokens, then prompt-sized blocks.
const shapes: [number, number, number, number, number][] = [
  [1, 12, 1, 32, 64], [1, 12, 1, 256, 64], [1, 12, 1, 1024, 64], [4, 12, 1, 1024, 64], [2, 4, 1, 333, 80],
  [1, 12, 4, 64, 64], [1, 12, 4, 1024, 64], [1, 12, 8, 1024, 64], [1, 12, 16, 1024, 64],
  ...(QUICK ? [] : ([[1, 12, 1, 4096, 64], [1, 12, 32, 1024, 64]] as [number, number, number, number, number][])),
];
console.log('B NH T S HS            single-pass ms   split-k ms   auto picks');
for (const [B, NH, T, S, HS] of shapes) {
  const ms: Record<string, number> = {};
  for (const forward of ['single-pass', 'split-k'] as AttentionForward[]) {
    const c = attentionCase(B, NH, T, S, HS, false, forward);
    try {
      const err = await c.validate();
      if (err) throw new Error(`${forward} B ${B} NH ${NH} T ${T} S ${S} HS ${HS}: ${err}`);
      ms[forward] = (await timeGpu(c.run, QUICK ? 150 : 300, c.keep)).ms;
    } finally {
      c.dispose();
    }
  }
  const picks = decodeSplit(B, NH, T, S, HS) ? 'split-k' : 'single-pass';
  console.log(`${[B, NH, T, S, HS].join(' ').padEnd(22)}${ms['single-pass']!.toFixed(2).padStart(12)}${ms['split-k']!.toFixed(2).padStart(13)}   ${picks}`);
}
process.exit(0);
