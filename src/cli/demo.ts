// `webgpu-lm demo`: a small GPT-2 learns Song-dynasty ci poems and writes some; `demo --xlnet`: an XLNet pretrains on them and fills blanks; `demo --mlp`: an MLP learns y = sin(3x).

import { AdamW } from '../optim/adamw.js';
import { init } from '../gpu/runtime.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { mean } from '../ops/reduce.js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundledCorpusPath } from '../../datasets/corpus.js';
import { GPT2_PRESETS } from '../models/presets.js';
import { fill } from './fill.js';
import { generateCommand } from './generate.js';
import { train } from './train.js';
import { trainXLNet } from './train_xlnet.js';
import { vocab } from './vocab.js';
import { mul, sub, tanh } from '../ops/elementwise.js';
import { manualSeed } from '../random.js';
import { tensor, tidy, type Tensor } from '../tensor.js';

/** 1 -> 64 -> 64 -> 1 with tanh: enough to fit three half-periods of a sine. */
class MLP extends Module {
  fc1 = new Linear(1, 64);
  fc2 = new Linear(64, 64);
  fc3 = new Linear(64, 1);

  forward(x: Tensor): Tensor {
    return this.fc3.forward(tanh(this.fc2.forward(tanh(this.fc1.forward(x)))));
  }
}

/** The engine in one loop: a 1 -> 64 -> 64 -> 1 MLP fits sin(3x), printing its loss as it falls. */
export async function mlpDemo(args: string[]): Promise<void> {
  const i = args.indexOf('--steps');
  const steps = i >= 0 ? Number(args[i + 1]) : 300;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`demo: --steps takes a positive integer, got ${args[i + 1]}`);
  const { gpu } = await init();
  manualSeed(0);

  const N = 256; // points in [-1, 1]
  const xs = Float32Array.from({ length: N }, (_, k) => -1 + (2 * k) / (N - 1));
  const x = tensor(xs, [N, 1]);
  const y = tensor(xs.map((v) => Math.sin(3 * v)), [N, 1]);
  const model = new MLP();
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
  process.stdout.write(`adapter: ${gpu.name}\nMLP with ${model.numParameters()} parameters learns y = sin(3x) from ${N} points\n`);

  const start = performance.now();
  let first = NaN;
  let last = NaN;
  for (let step = 1; step <= steps; step++) {
    // One step: forward, loss, backward, update — recorded into one command encoder; every intermediate freed at the end.
    const loss = tidy(() => {
      const err = sub(model.forward(x), y);
      const l = mean(mul(err, err));
      l.backward();
      opt.step();
      return l;
    });
    model.zeroGrad();
    if (step === 1 || step % 50 === 0 || step === steps) {
      last = await loss.item(); // the only read-back: submits the recorded steps and waits
      if (step === 1) first = last;
      process.stdout.write(`step ${String(step).padStart(4)}  loss ${last.toFixed(6)}\n`);
    }
    loss.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  const pred = await tidy(() => model.forward(x)).toArray();
  process.stdout.write(`\n${steps} steps in ${seconds.toFixed(2)} s (${(steps / seconds).toFixed(0)} steps/s); loss fell ${(first / last).toFixed(0)}x\n`);
  process.stdout.write('     x   sin(3x)   model\n');
  for (const k of [0, 64, 128, 192, 255]) {
    process.stdout.write(`${xs[k]!.toFixed(2).padStart(6)}  ${Math.sin(3 * xs[k]!).toFixed(4).padStart(8)}  ${pred[k]!.toFixed(4).padStart(7)}\n`);
  }
  model.dispose();
  opt.dispose();
  x.dispose();
  y.dispose();
}

/** The adapter, whether it is a CPU one, and --steps (default by adapter). */
async function demoSetup(args: string[], cpuSteps: number, gpuSteps: number): Promise<{ gpu: Awaited<ReturnType<typeof init>>['gpu']; cpu: boolean; steps: number }> {
  const i = args.indexOf('--steps');
  const { gpu } = await init();
  const cpu = /llvmpipe|lavapipe|swiftshader|software/i.test(`${gpu.name} ${gpu.adapterInfo.architecture}`);
  const steps = i >= 0 ? Number(args[i + 1]) : cpu ? cpuSteps : gpuSteps;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`demo: --steps takes a positive integer, got ${args[i + 1]}`);
  return { gpu, cpu, steps };
}

/**
 * XLNet pretraining on the bundled corpus with the bundled Song-ci unigram vocabulary (permutation LM with span
 * masks, two streams, memory carried between steps), then fill-in-the-blank on famous lines and a sample. On a
 * CPU adapter a 4-layer, 64-wide model for a few minutes; on a GPU a 6-layer, 256-wide one for longer.
 */
async function xlnetDemo(args: string[]): Promise<void> {
  const { gpu, cpu, steps } = await demoSetup(args, 120, 3000);
  const out = 'demo-xlnet';
  const size = cpu
    ? { layers: 4, width: 64, inner: 256, seqLen: 64, batch: 8, lr: '2e-3' }
    : { layers: 6, width: 256, inner: 1024, seqLen: 256, batch: 16, lr: '5e-4' };
  process.stdout.write(`\nwebgpu-lm demo --xlnet: a ${size.layers}-layer XLNet pretrains on Song-dynasty ci poems for ${steps} steps on ${gpu.name}\n\n`);
  const code = await trainXLNet([
    '--model-dir', out, '--seq-len', String(size.seqLen), '--mem-len', String(size.seqLen / 2), '--train-batch-size', String(size.batch),
    '--n-layer', String(size.layers), '--d-model', String(size.width), '--n-head', '4', '--d-inner', String(size.inner), '--ff-activation', 'gelu',
    '--learning-rate', size.lr, '--warmup-steps', String(Math.min(100, Math.floor(steps / 6))), '--train-steps', String(steps), '--iterations', '10', '--seed', '1',
  ]);
  if (code !== 0) throw new Error(`demo: training stopped with code ${code}`);
  process.stdout.write('\nfill in the blanks (one <mask> per piece, filled left to right; candidates with probabilities):\n');
  for (const text of ['春花秋<mask>何时了', '明月几时<mask>', '大江东<mask>，浪淘尽']) {
    await fill(['--model-path', `${out}/final_model`, '--text', text, '--candidates', '3']);
  }
  process.stdout.write('\na sample (Hugging Face\'s XLNet decoding: a dummy token read by the query stream, memory carried):\n');
  await generateCommand(['--model-path', `${out}/final_model`, '--prefix', '春风', '--length', cpu ? '40' : '120', '--nsamples', '1', '--repetition-penalty', '1.2', '--seed', '3']);
  process.stdout.write(`\nthe model, its checkpoint and loss.svg are in ${out}/; fill your own blanks with\n  npx webgpu-lm fill --model-path ${out}/final_model --text "<mask>花秋月何时了"\n`);
}

/**
 * The GPT2-Chinese workflow on the bundled corpus: build a vocabulary from the Song-ci poems (make_vocab), train
 * a small GPT-2 on them, then generate. Sized by the adapter: on a CPU adapter (lavapipe) a 2-layer, 64-token
 * model for a few minutes; on a GPU a 6-layer, 256-token one for longer. --steps overrides the optimizer steps.
 */
export async function demo(args: string[]): Promise<void> {
  if (args.includes('--mlp')) return mlpDemo(args.filter((a) => a !== '--mlp'));
  if (args.includes('--xlnet')) return xlnetDemo(args.filter((a) => a !== '--xlnet'));
  const { gpu, cpu, steps } = await demoSetup(args, 200, 3000);
  const out = 'demo-model';
  const size = cpu ? { ...GPT2_PRESETS.tiny!, batch: 8, stride: 48 } : { ...GPT2_PRESETS.mini!, batch: 16, stride: 192 };
  await mkdir(out, { recursive: true });
  // A vocabulary of the corpus's own characters (about 6,000) keeps the output layer, the largest matmul, small.
  const vocabFile = path.join(out, 'vocab.txt');
  await vocab(['--raw-data-path', bundledCorpusPath(), '--vocab-file', vocabFile, '--min-frequency', '2', '--vocab-size', '8000']);
  const vocabSize = (await readFile(vocabFile, 'utf8')).split('\n').filter(Boolean).length;
  const { n_layer, n_embd, n_head, n_positions } = size;
  const configFile = path.join(out, 'model_config.json');
  await writeFile(configFile, JSON.stringify({ n_layer, n_embd, n_head, n_positions, vocab_size: vocabSize }, null, 2));
  process.stdout.write(`\nwebgpu-lm demo: a ${n_layer}-layer GPT-2 learns Song-dynasty ci poems for ${steps} steps on ${gpu.name}\n\n`);
  const code = await train([
    '--model-config', configFile, '--tokenizer-path', vocabFile, '--output-dir', out, '--tokenized-data-path', `${out}/tokenized/`,
    '--epochs', '1', '--batch-size', String(size.batch), '--stride', String(size.stride), '--num-pieces', '10', '--min-length', '8',
    '--lr', '3e-3', '--warmup-steps', String(Math.min(100, Math.floor(steps / 10))), '--log-step', '10', '--max-steps', String(steps), '--seed', '1',
  ]);
  if (code !== 0) throw new Error(`demo: training stopped with code ${code}`);
  process.stdout.write('\nsamples (each starts from [CLS] and a tune title):\n');
  for (const title of ['浣溪沙', '水调歌头', '蝶恋花']) {
    await generateCommand([
      '--model-path', `${out}/checkpoint`, '--tokenizer-path', vocabFile, '--prefix', `[CLS]${title}`,
      '--length', cpu ? '64' : '160', '--nsamples', '1', '--topk', '8', '--repetition-penalty', '1.2', '--seed', '3',
    ]);
  }
  process.stdout.write(`\nthe model, its checkpoint and loss.svg are in ${out}/; continue training with\n  npx webgpu-lm train --resume --output-dir ${out} --max-steps ${2 * steps}\n`);
}
