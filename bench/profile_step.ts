// Where a training step's GPU time goes: one XLNet pretraining step (or a GPT-2 step), timed per kernel with timestamp queries.
//
//   npm run build && node dist/bench/profile_step.js [--model xlnet|gpt2] [--B 8] [--T 64] [--layers 4] [--width 64] [--inner 256] [--heads 4] [--reps 3]
// Defaults are `webgpu-lm demo --xlnet`'s CPU model (and for gpt2 the same sizes, vocabulary 8000 in both).
// Validates: the profiled steps give the same loss as an unprofiled one. Prints GPU ms per kernel family
// (the kernel name up to its first ':') averaged over --reps steps, and the wall time of an unprofiled step.

import { init, runtime, sync } from '../src/gpu/runtime.js';
import { manualSeed } from '../src/random.js';
import { tensor, tidy, type Tensor } from '../src/tensor.js';
import { GPT2LMHeadModel, gpt2Config } from '../src/models/gpt2.js';
import { XLNetLMHeadModel } from '../src/models/xlnet.js';
import { bundledCorpusPath, readCorpus } from '../datasets/corpus.js';
import { sentenceStreamFromArticles, XLNetPretrainingData } from '../datasets/xlnet.js';
import { bundledVocabPath, loadTokenizer } from '../tokenizers/node.js';
import type { KernelTime } from '../src/gpu/profiler.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}
const kind = flag('model', 'xlnet');
const [B, T, layers, width, inner, heads, reps] = ['B', 'T', 'layers', 'width', 'inner', 'heads', 'reps'].map((n, i) => Number(flag(n, String([8, 64, 4, 64, 256, 4, 3][i]))));
const V = 8000;

const { gpu } = await init();
manualSeed(1);
let step: () => Tensor;
let zeroGrad: () => void;
let dispose: () => void;
if (kind === 'xlnet') {
  const tokenizer = loadTokenizer(bundledVocabPath('songci-unigram'), { mode: 'xlnet' });
  const articles = (await readCorpus(bundledCorpusPath())).slice(0, 2000);
  const data = new XLNetPretrainingData(sentenceStreamFromArticles(articles, tokenizer), tokenizer, { batchSize: B, seqLen: T, seed: 1 });
  const model = new XLNetLMHeadModel({ vocab_size: V, d_model: width, n_layer: layers, n_head: heads, d_inner: inner, dropout: 0, bi_data: true });
  const b = data.batch(0, 0);
  step = () =>
    tidy(() => {
      const out = model.forward({
        inputIds: tensor(b.inputIds, [B, T], { dtype: 'i32' }),
        tokenTypeIds: b.tokenTypeIds!,
        permMask: b.permMask,
        targetMapping: b.targetMapping,
        numPredict: b.numPredict,
        labels: tensor(b.labels, [B, b.numPredict], { dtype: 'i32' }),
      });
      out.loss!.backward();
      return out.loss!.detach();
    });
  zeroGrad = () => model.zeroGrad();
  dispose = () => model.dispose();
} else if (kind === 'gpt2') {
  const model = new GPT2LMHeadModel(gpt2Config({ vocab_size: V, n_embd: width, n_layer: layers, n_head: heads, n_positions: T, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }));
  const ids = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % V), [B, T], { dtype: 'i32' });
  step = () =>
    tidy(() => {
      const loss = model.forward({ inputIds: ids, labels: ids }).loss!;
      loss.backward();
      return loss.detach();
    });
  zeroGrad = () => model.zeroGrad();
  dispose = () => {
    ids.dispose();
    model.dispose();
  };
} else {
  throw new Error(`--model must be xlnet or gpt2, got ${kind}`);
}

/** One forward + backward, its loss read back; gradients are dropped after, so every call does the same work. */
async function run(): Promise<number> {
  const l = step();
  const v = await l.item();
  l.dispose();
  zeroGrad();
  return v;
}

const reference = await run(); // also compiles every pipeline
runtime().startProfile();
const losses: number[] = [];
for (let r = 0; r < reps; r++) losses.push(await run());
const report: KernelTime[] = await runtime().stopProfile();
if (losses.some((l) => l !== reference)) throw new Error(`validation failed: profiled steps gave losses ${losses.join(', ')}, unprofiled ${reference}`);

const t0 = performance.now();
for (let r = 0; r < reps; r++) await run();
await sync();
const wall = (performance.now() - t0) / reps;

const families = new Map<string, { ms: number; dispatches: number }>();
for (const k of report) {
  const name = k.kernel.split(':')[0]!;
  const f = families.get(name) ?? { ms: 0, dispatches: 0 };
  f.ms += k.ms / reps;
  f.dispatches += k.dispatches / reps;
  families.set(name, f);
}
const total = [...families.values()].reduce((t, f) => t + f.ms, 0);
console.log(`${kind} training step (forward + backward), B ${B}, T ${T}, ${layers} layers, width ${width}, inner ${inner}, ${heads} heads, vocab ${V}, on ${gpu.name}`);
console.log(`wall ${wall.toFixed(0)} ms per step unprofiled (${(((B * T) / wall) * 1000).toFixed(0)} tokens/s); GPU ${total.toFixed(0)} ms per step profiled (one pass per kernel)`);
console.log(`${'kernel'.padEnd(36)}${'launches'.padStart(9)}${'ms'.padStart(9)}${'share'.padStart(8)}`);
for (const [name, f] of [...families].sort((a, b) => b[1].ms - a[1].ms)) {
  console.log(`${name.padEnd(36)}${f.dispatches.toFixed(0).padStart(9)}${f.ms.toFixed(1).padStart(9)}${`${((100 * f.ms) / total).toFixed(1)}%`.padStart(8)}`);
}
dispose();
