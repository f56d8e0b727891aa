// `webgpu-lm train`: GPT2-Chinese's train.py / train_single.py on WebGPU, with exact resume, a progress bar and a loss curve.

import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildPieces, buildSinglePieces } from '../../datasets/gpt2_chinese.js';
import { bundledCorpusPath, readCorpus } from '../../datasets/corpus.js';
import { bundledVocabPath, loadTokenizer } from '../../tokenizers/node.js';
import type { Tokenizer } from '../../tokenizers/index.js';
import { init } from '../gpu/runtime.js';
import { atomicWriteFile } from '../io/fs.js';
import { GPT2LMHeadModel, gpt2Config, type GPT2Config } from '../models/gpt2.js';
import { GPT2_PRESETS } from '../models/presets.js';
import { manualSeed } from '../random.js';
import { loadGpt2 } from '../models/pretrained.js';
import { restoreOptimizer, saveCheckpoint, type LoadedCheckpoint } from '../train/checkpoint.js';
import type { CurvePoint } from '../train/curve.js';
import { GPT2_CHINESE_TRAIN_DEFAULTS, Trainer, type TrainOptions, type TrainerState } from '../train/trainer.js';
import { DEVICE_FLAG, formatHelp, parseArgs, UsageError, type FlagSpec, type FlagValue } from './args.js';
import { trainModelKind, trainXLNet } from './train_xlnet.js';
import { Progress } from './progress.js';
import { catchInterrupt, LossLog, resumeRun, stoppedMessage } from './run.js';

/** GPT2-Chinese train.py's flags and defaults (gpt2-chinese-features.md §1), plus ours at the end. */
export const TRAIN_FLAGS: FlagSpec[] = [
  DEVICE_FLAG,
  { name: 'model', type: 'string', default: 'gpt2', help: 'gpt2, or xlnet for XLNet pretraining (`webgpu-lm train --model xlnet --help` lists its flags)' },
  { name: 'model-config', type: 'string', default: 'small', help: 'model config: a config.json path or a preset (base, small, test, tiny, mini)' },
  { name: 'tokenizer-path', type: 'string', default: '', help: 'vocab.txt (WordPiece) or a BPE folder; default: the bundled GPT2-Chinese vocab_small.txt' },
  { name: 'raw-data-path', type: 'string', default: '', help: 'corpus: train.json (JSON array of articles), .jsonl, .txt, optionally .gz; default: the bundled Song-ci corpus' },
  { name: 'tokenized-data-path', type: 'string', default: 'data/tokenized/', help: 'where tokenized pieces are cached' },
  { name: 'raw', type: 'bool', help: 'tokenize the raw corpus again (otherwise a matching cache is reused; a missing one is built)' },
  { name: 'epochs', type: 'int', default: 5, help: 'training epochs' },
  { name: 'batch-size', type: 'int', default: 8, help: 'windows per micro-batch' },
  { name: 'lr', type: 'float', default: 1.5e-4, help: 'peak learning rate (AdamW)' },
  { name: 'warmup-steps', type: 'int', default: 2000, help: 'linear warm-up steps, then linear decay to 0 at the estimated total' },
  { name: 'log-step', type: 'int', default: 1, help: 'report the loss every N micro-batches (a multiple of --gradient-accumulation)' },
  { name: 'stride', type: 'int', default: 768, help: 'window stride over the token stream (window length = n_ctx)' },
  { name: 'gradient-accumulation', type: 'int', default: 1, help: 'micro-batches per optimizer step' },
  { name: 'fp16', type: 'bool', help: 'mixed precision (apex O1): matrix products read f16 operands, f32 master weights, dynamic loss scaling' },
  { name: 'fp16-opt-level', type: 'string', default: 'O1', help: 'only O1 (what --fp16 does); accepted for GPT2-Chinese compatibility' },
  { name: 'eager-steps', type: 'bool', help: "run every step's JavaScript instead of replaying the captured step's GPU commands (for debugging; same results)" },
  { name: 'max-grad-norm', type: 'float', default: 1.0, help: 'clip the global gradient norm to this (0 = off)' },
  { name: 'num-pieces', type: 'int', default: 100, help: 'pieces the corpus is split into' },
  { name: 'min-length', type: 'int', default: 128, help: 'drop articles with at most this many characters' },
  { name: 'output-dir', type: 'string', default: 'model/', help: 'checkpoints, final model, loss.csv and loss.svg go here' },
  { name: 'pretrained-model', type: 'string', default: '', help: 'start from this model folder instead of random weights' },
  { name: 'writer-dir', type: 'string', default: '', help: 'where loss.csv / loss.svg go (default: --output-dir)' },
  { name: 'segment', type: 'bool', help: 'word-level (THULAC) tokenization: not available (refused with a message)' },
  { name: 'bpe-token', type: 'bool', help: 'use the GPT-2 byte-level BPE tokenizer (--encoder-json + --vocab-bpe)' },
  { name: 'encoder-json', type: 'string', default: '', help: 'BPE encoder.json (with --bpe-token; default: the bundled GPT-2 files)' },
  { name: 'vocab-bpe', type: 'string', default: '', help: 'BPE vocab.bpe (with --bpe-token)' },
  { name: 'single', type: 'bool', help: "train_single.py's mode: the corpus as one long text, no article markers" },
  { name: 'seed', type: 'int', default: 42, help: 'seed for initialisation, data order and dropout' },
  { name: 'resume', type: 'bool', help: 'continue the run checkpointed in --output-dir exactly where it stopped' },
  { name: 'checkpoint-steps', type: 'int', default: 0, help: 'also checkpoint every N optimizer steps (0 = at each epoch end only)' },
  { name: 'max-steps', type: 'int', default: 0, help: 'stop after this many optimizer steps in total (0 = all epochs), checkpointing first' },
];

/** Flags that only say how this invocation runs; a resumed run takes them from the new command line. */
const RUN_FLAGS = ['max-steps', 'checkpoint-steps', 'log-step'];

const SUMMARY = 'Train a GPT-2 on a corpus of articles (GPT2-Chinese train.py flags).';

/** Flags that decide what the token pieces are; a cache made with other values is rebuilt. */
function dataKey(f: Record<string, FlagValue>, tokenizerPath: string, rawPath: string): Record<string, FlagValue> {
  return { rawPath: path.resolve(rawPath), tokenizerPath: path.resolve(tokenizerPath), numPieces: f['num-pieces']!, minLength: f['min-length']!, single: f.single!, bpe: f['bpe-token']! };
}

/** Token pieces: from the cache (GPT2-Chinese's tokenized_train_{k}.txt files) when it matches, else built and cached. */
async function pieces(f: Record<string, FlagValue>, tokenizer: Tokenizer, tokenizerPath: string, rawPath: string, say: (s: string) => void): Promise<Int32Array[]> {
  const dir = String(f['tokenized-data-path']);
  const key = dataKey(f, tokenizerPath, rawPath);
  const manifestPath = path.join(dir, 'manifest.json');
  if (!f.raw && existsSync(manifestPath)) {
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { key: unknown; pieces: number };
    if (JSON.stringify(manifest.key) === JSON.stringify(key)) {
      const out: Int32Array[] = [];
      for (let k = 0; k < manifest.pieces; k++) {
        const text = await readFile(path.join(dir, `tokenized_train_${k}.txt`), 'utf8');
        out.push(Int32Array.from(text.trim().split(/\s+/).filter(Boolean), Number));
      }
      say(`reusing ${out.length} tokenized pieces from ${dir}`);
      return out;
    }
    say(`${dir} was tokenized with other settings: tokenizing again`);
  }
  const articles = await readCorpus(rawPath);
  say(`tokenizing ${articles.length} articles from ${rawPath} into ${f['num-pieces']} pieces`);
  const built = f.single
    ? buildSinglePieces(articles, tokenizer, { numPieces: Number(f['num-pieces']) })
    : buildPieces(articles, tokenizer, { numPieces: Number(f['num-pieces']), minLength: Number(f['min-length']) });
  if (built.length === 0) throw new Error(`${rawPath}: no article is longer than --min-length ${f['min-length']} characters; nothing to train on`);
  await mkdir(dir, { recursive: true });
  for (const [k, p] of built.entries()) await atomicWriteFile(path.join(dir, `tokenized_train_${k}.txt`), `${Array.from(p).join(' ')} `);
  await atomicWriteFile(manifestPath, JSON.stringify({ key, pieces: built.length }, null, 2));
  return built;
}

function tokenizerFor(f: Record<string, FlagValue>): { tokenizer: Tokenizer; tokenizerPath: string } {
  if (f.segment) throw new Error('--segment (THULAC word segmentation) is not available; build a word vocabulary with `webgpu-lm vocab` and use it with --tokenizer-path');
  if (f['bpe-token']) {
    const encoder = String(f['encoder-json']) || path.join(bundledVocabPath('gpt2'), 'encoder.json');
    return { tokenizer: loadTokenizer(encoder), tokenizerPath: encoder };
  }
  const vocab = String(f['tokenizer-path']) || bundledVocabPath('gpt2-chinese-small');
  return { tokenizer: loadTokenizer(vocab, { variant: 'gpt2-chinese' }), tokenizerPath: vocab };
}

async function modelConfig(spec: string): Promise<Partial<GPT2Config>> {
  const preset = GPT2_PRESETS[spec];
  if (preset) return preset;
  if (!existsSync(spec)) throw new Error(`--model-config: "${spec}" is neither a preset (${Object.keys(GPT2_PRESETS).join(', ')}) nor a file`);
  try {
    return JSON.parse(await readFile(spec, 'utf8')) as Partial<GPT2Config>;
  } catch (e) {
    throw new Error(`--model-config ${spec}: ${(e as Error).message}`);
  }
}

export async function train(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const kind = await trainModelKind(argv);
  if (kind === 'xlnet') return trainXLNet(argv, out);
  if (kind !== 'gpt2') throw new UsageError(`--model must be gpt2 or xlnet, got '${kind}'`);
  const args = parseArgs('train', argv, TRAIN_FLAGS);
  if (args.help) {
    out.write(formatHelp('train', SUMMARY, TRAIN_FLAGS));
    return 0;
  }
  let f = args.flags;
  const say = (s: string): void => void out.write(`${s}\n`);
  if (f.fp16 && String(f['fp16-opt-level']) !== 'O1') throw new Error(`--fp16-opt-level ${String(f['fp16-opt-level'])}: only O1 is available (f16 matrix-product operands, f32 everything else)`);
  const outputDir = String(f['output-dir']);
  const checkpointDir = path.join(outputDir, 'checkpoint');

  // The device first: loading a checkpoint uploads its weights.
  const { gpu } = await init();
  let resumed: LoadedCheckpoint<TrainerState, TrainOptions> | null = null;
  let resumedModel: GPT2LMHeadModel | null = null;
  if (f.resume) {
    const r = await resumeRun<TrainerState, TrainOptions, GPT2LMHeadModel>(checkpointDir, f, RUN_FLAGS, GPT2LMHeadModel, 'an XLNet run; resume it with --model xlnet');
    ({ resumed, model: resumedModel, flags: f } = r);
    say(`resuming from ${checkpointDir}: epoch ${r.resumed.meta.state.epoch + 1}, optimizer step ${r.resumed.meta.state.optimizerStep}`);
  }
  if (Number(f['log-step']) % Number(f['gradient-accumulation']) !== 0) {
    throw new Error(`--log-step ${f['log-step']} must be a multiple of --gradient-accumulation ${f['gradient-accumulation']}`);
  }
  const { tokenizer, tokenizerPath } = tokenizerFor(f);
  const rawPath = String(f['raw-data-path']) || bundledCorpusPath();

  let model: GPT2LMHeadModel;
  if (resumedModel) model = resumedModel;
  else if (f['pretrained-model']) model = await loadGpt2(String(f['pretrained-model']), 'train');
  else {
    manualSeed(Number(f.seed));
    model = new GPT2LMHeadModel(gpt2Config(await modelConfig(String(f['model-config']))));
  }
  if (model.config.vocab_size < tokenizer.vocabSize) {
    throw new Error(`the model's vocab_size ${model.config.vocab_size} is smaller than the tokenizer's ${tokenizer.vocabSize} tokens (${tokenizerPath}); use a matching --model-config`);
  }
  const data = await pieces(f, tokenizer, tokenizerPath, rawPath, say);
  const options: TrainOptions = {
    ...GPT2_CHINESE_TRAIN_DEFAULTS,
    epochs: Number(f.epochs),
    batchSize: Number(f['batch-size']),
    lr: Number(f.lr),
    warmupSteps: Number(f['warmup-steps']),
    stride: Number(f.stride),
    gradientAccumulation: Number(f['gradient-accumulation']),
    maxGradNorm: Number(f['max-grad-norm']),
    seed: Number(f.seed),
    fp16: f.fp16 === true,
    eagerSteps: f['eager-steps'] === true,
  };
  const trainer = new Trainer(model, data, options, resumed?.meta.state);
  if (resumed) {
    const tokens = data.reduce((n, p) => n + p.length, 0);
    if (resumed.meta.data.pieces !== data.length || resumed.meta.data.tokens !== tokens) {
      throw new Error(`--resume: the corpus changed since the checkpoint (${resumed.meta.data.pieces} pieces / ${resumed.meta.data.tokens} tokens then, ${data.length} / ${tokens} now)`);
    }
    restoreOptimizer(trainer, resumed.meta, resumed.moments);
  }
  const curve: CurvePoint[] = (resumed?.meta.extra.curve as CurvePoint[] | undefined) ?? [];
  const c = model.config;
  say(`adapter: ${gpu.name}`);
  say(`model: ${c.n_layer} layers, ${c.n_embd} wide, ${c.n_head} heads, n_ctx ${c.n_positions}, vocab ${c.vocab_size}: ${(model.numParameters() / 1e6).toFixed(2)}M parameters`);
  say(`data: ${data.length} pieces, ${data.reduce((n, p) => n + p.length, 0)} tokens, ${trainer.batchesPerEpoch} batches per epoch; about ${trainer.totalSteps} optimizer steps`);

  await mkdir(outputDir, { recursive: true });
  const writerDir = String(f['writer-dir']) || outputDir;
  const logEvery = Number(f['log-step']) / Number(f['gradient-accumulation']);
  const maxSteps = Number(f['max-steps']);
  const checkpointSteps = Number(f['checkpoint-steps']);
  const stepsPerEpoch = Math.ceil(trainer.batchesPerEpoch / options.gradientAccumulation);
  const allSteps = stepsPerEpoch * options.epochs;
  const progress = new Progress(maxSteps > 0 ? Math.min(maxSteps, allSteps) : allSteps, { stream: out, label: 'train' });
  const log = new LossLog(curve, progress);
  // A saved model carries its WordPiece vocabulary, so `generate --model-path` finds the matching tokenizer.
  const saveModel = async (dir: string): Promise<void> => {
    await model.save(dir);
    if (tokenizerPath.endsWith('.txt')) await copyFile(tokenizerPath, path.join(dir, 'vocab.txt'));
  };
  const checkpoint = async (): Promise<void> => {
    await saveCheckpoint(checkpointDir, trainer, { flags: f, curve });
    await log.write(writerDir, `training loss (${path.basename(path.resolve(outputDir))})`);
  };

  const ctrlC = catchInterrupt();
  try {
    while (!trainer.done) {
      const epochBefore = trainer.state.epoch;
      const r = trainer.step();
      const step = trainer.state.optimizerStep;
      await log.step(step, r, step % logEvery === 0 || trainer.state.epoch !== epochBefore);
      if (trainer.state.epoch !== epochBefore) {
        const dir = path.join(outputDir, `model_epoch${epochBefore + 1}`);
        await saveModel(dir);
        await checkpoint();
        progress.log(`epoch ${epochBefore + 1} done: saved ${dir}`);
      } else if (checkpointSteps > 0 && step % checkpointSteps === 0) {
        await checkpoint();
      }
      if (ctrlC.interrupted || (maxSteps > 0 && step >= maxSteps)) {
        await checkpoint();
        progress.finish();
        say(stoppedMessage(ctrlC.interrupted, step, checkpointDir));
        return ctrlC.interrupted ? 130 : 0;
      }
    }
    progress.finish();
    const finalDir = path.join(outputDir, 'final_model');
    await saveModel(finalDir);
    await checkpoint();
    say(`done: ${finalDir} (loss curve: ${path.join(writerDir, 'loss.svg')})`);
    return 0;
  } finally {
    ctrlC.dispose();
    trainer.dispose();
    model.dispose();
  }
}
