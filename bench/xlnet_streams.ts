// XLNet's two streams: the cost of the query stream (P predict slots) relative to the content stream (T tokens), forward + backward of the fused relative attention.
//
//   npm run build && node dist/bench/xlnet_streams.js [--B 8] [--T 64] [--M 32] [--P 11] [--heads 4] [--hs 32] [--reps 5]
// Validates first: query slots given the content stream's query vectors and self-visibility reproduce its rows.

import { init, sync } from '../src/gpu/runtime.js';
import { relAttentionPlan, relativeAttention, type RelAttentionPlan } from '../src/ops/rel_attention.js';
import { manualSeed, randn } from '../src/random.js';
import { noGrad } from '../src/autograd.js';
import { tensor, tidy, type Tensor } from '../src/tensor.js';
import { indexSelect } from '../src/ops/indexing.js';
import { sum } from '../src/ops/reduce.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const [B, T, M, P, NH, HS, reps] = [flag('B', 8), flag('T', 64), flag('M', 32), flag('P', 11), flag('heads', 4), flag('hs', 32), flag('reps', 5)];
const K = M + T;
const R = K + T;

const { gpu } = await init();
manualSeed(1);
const k = randn([B, NH, K, HS], { requiresGrad: true });
const v = randn([B, NH, K, HS], { requiresGrad: true });
const kr = randn([1, NH, R, HS], { requiresGrad: true });
const perm = Float32Array.from({ length: B * T * T }, (_, i) => ((i * 2654435761) >>> 28) % 3 === 0 ? 1 : 0);
const positions = Array.from({ length: P }, (_, m) => Math.floor((m * T) / P)); // slot m predicts token positions[m]
const slotPos = Int32Array.from({ length: B * P }, (_, i) => positions[i % P]!);
const content = relAttentionPlan(B, T, { T, M, perm, qpos: Int32Array.from({ length: B * T }, (_, i) => i % T), selfVisible: true });
const slots = relAttentionPlan(B, P, { T, M, perm, qpos: slotPos });
const scale = { scale: 1 / Math.sqrt(HS) };

// Validation: slots whose query vectors are the content stream's at their positions, allowed to see themselves,
// reproduce the content stream's output rows there.
const qqContent = randn([2, B, NH, T, HS], { requiresGrad: true });
const ids = tensor(Int32Array.from(positions), [P], { dtype: 'i32' });
const [whole, picked] = noGrad(() => {
  const all = relativeAttention(qqContent, k, v, kr, null, content, scale);
  const seeing = relAttentionPlan(B, P, { T, M, perm, qpos: slotPos, selfVisible: true });
  return [indexSelect(all, 2, ids), relativeAttention(indexSelect(qqContent, 3, ids), k, v, kr, null, seeing, scale)];
});
const [want, got] = [Array.from(await whole!.toArray()), Array.from(await picked!.toArray())];
const worst = want.reduce((m, x, i) => Math.max(m, Math.abs(x - got[i]!)), 0);
if (!(worst < 1e-5)) throw new Error(`validation failed: slot rows differ from content rows by ${worst}`);
const qqSlots = randn([2, B, NH, P, HS], { requiresGrad: true });

/** Mean seconds of forward + backward over `reps` runs (after one warm-up run that compiles the pipelines). */
async function time(qq: Tensor, plan: RelAttentionPlan): Promise<number> {
  const once = (): void =>
    tidy(() => {
      sum(relativeAttention(qq, k, v, kr, null, plan, scale)).backward();
    });
  once();
  await sync();
  const start = performance.now();
  for (let i = 0; i < reps; i++) once();
  await sync();
  return (performance.now() - start) / 1000 / reps;
}

const contentSeconds = await time(qqContent, content);
const query = await time(qqSlots, slots);
process.stdout.write(
  `adapter: ${gpu.name}\n` +
    `B ${B}, T ${T}, M ${M}, P ${P}, heads ${NH}, head size ${HS}: forward + backward of the fused relative attention\n` +
    `validation: slot rows == content rows (max |diff| ${worst.toExponential(1)})\n` +
    `content stream (${T} rows): ${(contentSeconds * 1000).toFixed(1)} ms\n` +
    `query stream (${P} slots): ${(query * 1000).toFixed(1)} ms = ${((100 * query) / contentSeconds).toFixed(0)}% of the content stream (P/T = ${((100 * P) / T).toFixed(0)}%)\n`,
);
