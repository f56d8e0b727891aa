// Checks the peers against our framework and float64 on the shared adapter; --time adds a checked, rough ms/step for a small GPT-2.
//
//   npm run build && node dist/bench/peers/check.js [--time]
//
// Matmul: each peer's 67×129×95 product against float64. GPT-2: two tiny random configs (weights of standard deviation
// 0.02, as GPT-2's init, and 0.2, whose O(1) activations make GELU, layer-norm and softmax details visible in the loss);
// each peer must pass the bench's check (validate.ts: first loss within 1e-5 relative of ours, loss after three Adam
// updates within 1e-3) and, here, a stricter one on the first loss: within STRICT_FIRST_RTOL.
// Exits 1 if a loaded peer fails a check.

import { init, runtime } from '../../src/index.js';
import { randomGpt2Spec } from './gpt2_spec.js';
import { shareDawnWithPeers } from './index.js';
import { jaxjsPeer } from './jaxjs.js';
import { tfjsPeer } from './tfjs.js';
import type { Peer, TrainStepContender } from './types.js';
import { LOSS_RTOL, oursGpt2TrainStep, referenceLosses, relErr, stepLosses, validatePeerMatmul, validatePeerStep } from './validate.js';

shareDawnWithPeers();

const TIME = process.argv.includes('--time');
/**
 * On these tiny configs a correct peer's first loss is within float32 rounding of ours (≤ 1.2e-7 relative, one ulp);
 * the bench's 1e-5 catches a layer-norm eps of 1e-12 instead of 1e-5 (2.4e-5 at std 0.02) but lets through erf GELU
 * instead of gelu_new (2.4e-6 at std 0.2), which this catches.
 */
const STRICT_FIRST_RTOL = 1e-6;

await init();
console.log(`adapter: ${runtime().gpu.name}`);
const peers: Peer[] = [];
for (const p of [tfjsPeer, jaxjsPeer]) {
  const loaded = await p.load();
  console.log(`${p.name}: ${loaded.ok ? loaded.version : `not loaded: ${loaded.error}`}`);
  if (loaded.ok) peers.push(p);
}

let failed = false;
const fail = (what: string): void => {
  failed = true;
  console.log(`  FAIL ${what}`);
};
const firstLine = (e: unknown): string => (e as Error).message.split('\n')[0]!;

console.log('\nmatmul 67×129×95 against float64');
for (const p of peers) {
  try {
    const error = await validatePeerMatmul(p);
    if (error) fail(`${p.name}: ${error}`);
    else console.log(`  ${p.name} ok`);
  } catch (e) {
    fail(`${p.name}: ${firstLine(e)}`);
  }
}

const tiny = { n_layer: 2, n_embd: 64, n_head: 4, n_positions: 32, vocab_size: 500, B: 2, T: 32 };
for (const std of [0.02, 0.2]) {
  const spec = randomGpt2Spec(tiny, { seed: 42, std });
  const want = await referenceLosses(spec);
  console.log(`\nGPT-2 ${JSON.stringify(tiny)}, weights std ${std}, lr ${spec.lr}: loss at steps 1..${want.length}`);
  console.log(`  ours   ${want.map((l) => l.toFixed(6)).join('  ')}`);
  for (const p of peers) {
    try {
      const c = await p.gpt2TrainStep(spec);
      try {
        const { losses, error } = await validatePeerStep(c, want);
        const firstErr = relErr(losses[0]!, want[0]!);
        const rel = `relative error ${firstErr.toExponential(1)} first (≤ ${STRICT_FIRST_RTOL.toExponential(0)}), ${relErr(losses.at(-1)!, want.at(-1)!).toExponential(1)} last (≤ ${LOSS_RTOL.last})`;
        console.log(`  ${p.name.padEnd(6)} ${losses.map((l) => l.toFixed(6)).join('  ')}   ${rel}`);
        if (error) fail(`${p.name}: ${error}`);
        else if (!(firstErr <= STRICT_FIRST_RTOL)) fail(`${p.name}: first loss ${firstErr.toExponential(1)} relative from ours (> ${STRICT_FIRST_RTOL.toExponential(0)})`);
      } finally {
        c.dispose();
      }
    } catch (e) {
      fail(`${p.name}: ${firstLine(e)}`);
    }
  }
}

/** Rough wall-clock ms per step of a warmed-up contender: `n` steps, then one drain. */
async function msPerStep(c: TrainStepContender, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) c.step();
  await c.drain();
  return (performance.now() - t0) / n;
}

if (TIME) {
  const sizes = { n_layer: 2, n_embd: 128, n_head: 4, n_positions: 64, vocab_size: 13317, B: 8, T: 64 };
  const spec = randomGpt2Spec(sizes, { seed: 7 });
  console.log(`\nrough ms per training step, ${JSON.stringify(sizes)}, after the checked steps (one run each, sequential: noisy on a shared machine)`);
  const ours = oursGpt2TrainStep(spec);
  const want = await stepLosses(ours);
  console.log(`  ours   ${(await msPerStep(ours, 3)).toFixed(0)} ms`);
  ours.dispose();
  for (const p of peers) {
    try {
      const c = await p.gpt2TrainStep(spec);
      try {
        const { error } = await validatePeerStep(c, want);
        if (error) fail(`${p.name}: ${error}`);
        else console.log(`  ${p.name.padEnd(6)} ${(await msPerStep(c, 3)).toFixed(0)} ms`);
      } finally {
        c.dispose();
      }
    } catch (e) {
      fail(`${p.name}: ${firstLine(e)}`);
    }
  }
}

// The Dawn devices keep Node's event loop alive; end explicitly.
process.exit(failed ? 1 : 0);
