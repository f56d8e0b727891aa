// `webgpu-lm train --model xlnet`: XLNet pretraining (train_gpu.py + data_utils.py's flags) on WebGPU, with a progress bar, checkpoints and exact resume.

import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { bundledCorpusPath, readCorpus } from '../../datasets/corpus.js';
import { sentenceStreamFromArticles, XLNetPretrainingData, type SpanUnit } from '../../datasets/xlnet.js';
import { bundledVocabPath, loadTokenizer } from '../../tokenizers/node.js';
import { SentencePieceTokenizer } from '../../tokenizers/sentencepiece.js';
import { init } from '../gpu/runtime.js';
import { loadPretrained, savePretrained } from '../models/pretrained.js';
import { XLNET_INFERENCE_CONFIG, XLNetLMHeadModel, xlnetConfig, type XLNetConfig } from '../models/xlnet.js';
import { manualSeed } from '../random.js';
import { findCheckpoint, restoreOptimizer, saveCheckpoint, type LoadedCheckpoint } from '../train/checkpoint.js';
import type { CurvePoint } from '../train/curve.js';
import { XLNET_TRAIN_DEFAULTS, XLNetTrainer, type XLNetTrainerState, type XLNetTrainOptions } from '../train/xlnet_trainer.js';
import { DEVICE_FLAG, formatHelp, parseArgs, UsageError, type FlagSpec, type FlagValue } from './args.js';
import { Progress } from './progress.js';
import { catchInterrupt, LossLog, resumeRun, stoppedMessage } from './run.js';

/**
 * XLNet's own flag names (train_gpu.py, data_utils.py) with their defaults, where they have one; the GPT-2
 * command's names work as aliases. Differences: seq_len and num_predict have defaults here (the original
 * requires them), d_head defaults to d_model / n_head (Hugging Face requires that), untie_r is always on (as in
 * the released checkpoints), dropatt must equal dropout (HF has one rate), and logging is every 10 steps.
 */
export const XLNET_TRAIN_FLAGS: FlagSpec[] = [
  DEVICE_FLAG,
  { name: 'model', type: 'string', default: 'xlnet', help: 'xlnet here; gpt2 is `webgpu-lm train` without it' },
  // data (data_utils.py)
  { name: 'raw-data-path', type: 'string', default: '', help: 'corpus: .txt with one sentence per line and a blank line between documents (the original format), or train.json / .jsonl articles whose lines are sentences, optionally .gz; default: the bundled Song-ci corpus' },
  { name: 'tokenizer-path', type: 'string', default: '', help: 'SentencePiece unigram model (spiece.model); default: the bundled Song-ci unigram model (8000 pieces)', aliases: ['sp-path', 'spiece-model-file'] },
  { name: 'uncased', type: 'bool', help: 'lower-case the text before tokenizing' },
  { name: 'use-eod', type: 'bool', default: true, help: 'mark each document end with <eod>' },
  { name: 'seq-len', type: 'int', default: 128, help: 'tokens per example (the original requires it; 512 for XLNet)' },
  { name: 'reuse-len', type: 'int', default: 0, help: 'tokens of the first half, the part cached as memory; 0 = seq_len / 2, the only value data_utils.py accepts' },
  { name: 'perm-size', type: 'int', default: 0, help: 'factorisation-order block size; 0 = reuse_len (one random order per half)' },
  { name: 'bi-data', type: 'bool', default: true, help: 'half the rows read the text backwards (needs an even batch); --bi-data=false turns it off' },
  { name: 'mask-alpha', type: 'int', default: 6, help: 'span masking: a span of n tokens sits in a context of n·alpha/beta tokens' },
  { name: 'mask-beta', type: 'int', default: 1, help: 'span masking: see --mask-alpha' },
  { name: 'num-predict', type: 'int', default: 0, help: 'tokens predicted per example; 0 = round(seq_len / 6) (85 for 512)' },
  { name: 'span-unit', type: 'string', default: 'pieces', help: "what a span's length counts: 'pieces' (the released code, zihangdai/xlnet#220) or 'words' (what it meant)" },
  // model (train_gpu.py)
  { name: 'mem-len', type: 'int', default: 0, help: 'positions of memory carried into the next step; 0 = none' },
  { name: 'n-layer', type: 'int', default: 6, help: 'layers' },
  { name: 'd-model', type: 'int', default: 32, help: 'model width' },
  { name: 'd-embed', type: 'int', default: 0, help: 'embedding width; must equal d_model (0 = d_model)' },
  { name: 'n-head', type: 'int', default: 4, help: 'attention heads' },
  { name: 'd-head', type: 'int', default: 0, help: 'head size; must equal d_model / n_head (0 = that)' },
  { name: 'd-inner', type: 'int', default: 32, help: 'feed-forward width' },
  { name: 'ff-activation', type: 'string', default: 'relu', help: "'relu', 'gelu' (exact erf, as HF) or 'gelu_new' (tanh)" },
  { name: 'dropout', type: 'float', default: 0, help: 'dropout everywhere (embeddings, positions, attention, projections)' },
  { name: 'dropatt', type: 'float', default: -1, help: 'attention dropout; must equal --dropout (-1 = that)' },
  { name: 'untie-r', type: 'bool', default: true, help: 'per-layer r_w/r_r/r_s biases and seg_embed (always on, as in HF)' },
  { name: 'attn-type', type: 'string', default: 'bi', help: "'bi' or 'uni' (Transformer-XL causal)" },
  { name: 'clamp-len', type: 'int', default: -1, help: 'clamp relative distances to this (-1 = off)' },
  { name: 'same-length', type: 'bool', help: "'uni' only: every token sees the same number of keys" },
  { name: 'init-std', type: 'float', default: 0.02, help: 'std of the normal initialisation' },
  { name: 'init-checkpoint', type: 'string', default: '', help: 'start from this XLNet model folder instead of random weights', aliases: ['pretrained-model'] },
  // optimisation (train_gpu.py, model_utils.py)
  { name: 'train-batch-size', type: 'int', default: 16, help: 'rows per batch (fixed: each row is one stream of the corpus)', aliases: ['batch-size'] },
  { name: 'train-steps', type: 'int', default: 100_000, help: 'optimizer steps; the schedule ends here', aliases: ['total-steps'] },
  { name: 'learning-rate', type: 'float', default: 1e-4, help: 'peak learning rate', aliases: ['lr'] },
  { name: 'warmup-steps', type: 'int', default: 0, help: 'linear warm-up steps' },
  { name: 'decay-method', type: 'string', default: 'poly', help: "'poly' (linear) or 'cos' decay to lr · min_lr_ratio at train_steps" },
  { name: 'min-lr-ratio', type: 'float', default: 0.001, help: 'the final learning rate over the peak' },
  { name: 'adam-epsilon', type: 'float', default: 1e-8, help: "Adam's epsilon" },
  { name: 'weight-decay', type: 'float', default: 0, help: 'decoupled weight decay, not on LayerNorm weights and biases' },
  { name: 'clip', type: 'float', default: 1.0, help: 'clip the global gradient norm to this (0 = off)', aliases: ['max-grad-norm'] },
  { name: 'seed', type: 'int', default: 42, help: 'seed for initialisation, masks, orders and dropout' },
  // running
  { name: 'model-dir', type: 'string', default: 'model/', help: 'checkpoint, final model, loss.csv and loss.svg go here', aliases: ['output-dir'] },
  { name: 'iterations', type: 'int', default: 10, help: 'report the loss every N steps (the original: 1000)', aliases: ['log-step'] },
  { name: 'save-steps', type: 'int', default: 0, help: 'also checkpoint every N steps (0 = at the end and on Ctrl-C only)', aliases: ['checkpoint-steps'] },
  { name: 'max-steps', type: 'int', default: 0, help: 'stop at this step (checkpointing first) to continue later with --resume; 0 = train_steps' },
  { name: 'resume', type: 'bool', help: 'continue the run checkpointed in --model-dir exactly where it stopped' },
];

const SUMMARY = 'Pretrain an XLNet with permutation language modelling (the flags of XLNet\'s train_gpu.py and data_utils.py).';

/** Flags that only say how this invocation runs; a resumed run takes them from the new command line. */
const RUN_FLAGS = ['max-steps', 'save-steps', 'iterations'];

function positiveInt(f: Record<string, FlagValue>, name: string, min = 1): number {
  const v = Number(f[name]);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${f[name]}`);
  return v;
}

/** The model config the flags describe (checked here so a mistake is a usage error, before anything is allocated). */
function configFromFlags(f: Record<string, FlagValue>, vocabSize: number, reuseLen: number): XLNetConfig {
  const d = positiveInt(f, 'd-model');
  const nHead = positiveInt(f, 'n-head');
  if (Number(f['d-embed']) !== 0 && Number(f['d-embed']) !== d) throw new UsageError(`--d-embed ${f['d-embed']} must equal --d-model ${d} (Hugging Face's XLNet has one width)`);
  if (Number(f['d-head']) !== 0 && Number(f['d-head']) * nHead !== d) {
    throw new UsageError(`--d-head ${f['d-head']} × --n-head ${nHead} must equal --d-model ${d} (Hugging Face's XLNet requires it)`);
  }
  if (!f['untie-r']) throw new UsageError('--untie-r=false (one set of r_w/r_r/r_s biases for all layers) is not available: Hugging Face stores them per layer');
  const dropout = Number(f.dropout);
  if (Number(f.dropatt) >= 0 && Number(f.dropatt) !== dropout) throw new UsageError(`--dropatt ${f.dropatt} must equal --dropout ${dropout} (Hugging Face's XLNet has one dropout rate)`);
  const memLen = Number(f['mem-len']);
  if (!Number.isInteger(memLen) || memLen < 0) throw new UsageError(`--mem-len must be an integer >= 0, got ${f['mem-len']}`);
  try {
    return xlnetConfig({
      vocab_size: vocabSize,
      d_model: d,
      n_layer: positiveInt(f, 'n-layer'),
      n_head: nHead,
      d_inner: positiveInt(f, 'd-inner'),
      ff_activation: String(f['ff-activation']),
      attn_type: String(f['attn-type']) as 'bi' | 'uni',
      dropout,
      // HF reads mem_len 0 or null as "keep everything"; the original as "no memory", which is what 0 means here.
      mem_len: memLen > 0 ? memLen : null,
      reuse_len: memLen > 0 ? reuseLen : null,
      bi_data: Boolean(f['bi-data']),
      clamp_len: Number(f['clamp-len']),
      same_length: Boolean(f['same-length']),
      initializer_range: Number(f['init-std']),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function trainOptions(f: Record<string, FlagValue>): XLNetTrainOptions {
  const decay = String(f['decay-method']);
  if (decay !== 'poly' && decay !== 'cos') throw new UsageError(`--decay-method must be 'poly' or 'cos', got '${decay}'`);
  const options: XLNetTrainOptions = {
    ...XLNET_TRAIN_DEFAULTS,
    trainSteps: positiveInt(f, 'train-steps'),
    learningRate: Number(f['learning-rate']),
    warmupSteps: positiveInt(f, 'warmup-steps', 0),
    decayMethod: decay,
    minLrRatio: Number(f['min-lr-ratio']),
    adamEpsilon: Number(f['adam-epsilon']),
    weightDecay: Number(f['weight-decay']),
    clip: Number(f.clip),
    seed: Number(f.seed),
  };
  if (!(options.learningRate > 0)) throw new UsageError(`--learning-rate must be > 0, got ${options.learningRate}`);
  if (!(options.minLrRatio >= 0 && options.minLrRatio <= 1)) throw new UsageError(`--min-lr-ratio must be in [0, 1], got ${options.minLrRatio}`);
  return options;
}

function tokenizerFor(f: Record<string, FlagValue>): { tokenizer: SentencePieceTokenizer; tokenizerPath: string } {
  const tokenizerPath = String(f['tokenizer-path']) || bundledVocabPath('songci-unigram');
  const tokenizer = loadTokenizer(tokenizerPath, { mode: 'xlnet', doLowerCase: Boolean(f.uncased) });
  if (!(tokenizer instanceof SentencePieceTokenizer)) throw new Error(`--tokenizer-path ${tokenizerPath}: XLNet needs a SentencePiece .model file`);
  return { tokenizer, tokenizerPath };
}

async function pretrainingData(f: Record<string, FlagValue>, tokenizer: SentencePieceTokenizer, say: (s: string) => void): Promise<XLNetPretrainingData> {
  const rawPath = String(f['raw-data-path']) || bundledCorpusPath();
  const articles = await readCorpus(rawPath);
  const stream = sentenceStreamFromArticles(articles, tokenizer, { useEod: Boolean(f['use-eod']) });
  say(`data: ${articles.length} documents from ${rawPath}: ${stream.ids.length} tokens`);
  const seqLen = Number(f['seq-len']);
  const reuseLen = Number(f['reuse-len']) || seqLen / 2;
  const spanUnit = String(f['span-unit']);
  if (spanUnit !== 'pieces' && spanUnit !== 'words') throw new UsageError(`--span-unit must be 'pieces' or 'words', got '${spanUnit}'`);
  try {
    return new XLNetPretrainingData(stream, tokenizer, {
      batchSize: positiveInt(f, 'train-batch-size'),
      seqLen,
      reuseLen,
      permSize: Number(f['perm-size']) || reuseLen,
      ...(Number(f['num-predict']) > 0 ? { numPredict: Number(f['num-predict']) } : {}),
      biData: Boolean(f['bi-data']),
      maskAlpha: Number(f['mask-alpha']),
      maskBeta: Number(f['mask-beta']),
      spanUnit: spanUnit as SpanUnit,
      seed: Number(f.seed),
    });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message.replace(new RegExp(`\\b(${Object.keys(FLAG_OF).join('|')})\\b`, 'g'), (m) => `--${FLAG_OF[m]}`));
    throw e;
  }
}

/** The data options' names in datasets/xlnet.ts, as flags (its errors are reworded for the command line). */
const FLAG_OF: Record<string, string> = {
  batchSize: 'train-batch-size', seqLen: 'seq-len', reuseLen: 'reuse-len', permSize: 'perm-size', numPredict: 'num-predict', biData: 'bi-data', maskAlpha: 'mask-alpha', maskBeta: 'mask-beta',
};

export async function trainXLNet(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('train --model xlnet', argv, XLNET_TRAIN_FLAGS);
  if (args.help) {
    out.write(formatHelp('train --model xlnet', SUMMARY, XLNET_TRAIN_FLAGS));
    return 0;
  }
  if (args.positional.length > 0) throw new UsageError(`unexpected argument '${args.positional[0]}' (bool flags take --name=false)`);
  let f = args.flags;
  const say = (s: string): void => void out.write(`${s}\n`);
  const modelDir = String(f['model-dir']);
  const checkpointDir = path.join(modelDir, 'checkpoint');

  // The device first: loading a checkpoint uploads its weights.
  const { gpu } = await init();
  let resumed: LoadedCheckpoint<XLNetTrainerState, XLNetTrainOptions> | null = null;
  let resumedModel: XLNetLMHeadModel | null = null;
  if (f.resume) {
    const r = await resumeRun<XLNetTrainerState, XLNetTrainOptions, XLNetLMHeadModel>(checkpointDir, f, RUN_FLAGS, XLNetLMHeadModel, 'a GPT-2 run; resume it without --model xlnet');
    ({ resumed, model: resumedModel, flags: f } = r);
    say(`resuming from ${checkpointDir} at step ${r.resumed.meta.state.optimizerStep}`);
  }
  const options = trainOptions(f);
  const logEvery = positiveInt(f, 'iterations');
  const { tokenizer, tokenizerPath } = tokenizerFor(f);
  const data = await pretrainingData(f, tokenizer, say);

  let model: XLNetLMHeadModel;
  if (resumedModel) {
    model = resumedModel;
  } else {
    const config = configFromFlags(f, tokenizer.vocabSize, data.reuseLen);
    if (f['init-checkpoint']) {
      const loaded = await loadPretrained(String(f['init-checkpoint']));
      if (!(loaded instanceof XLNetLMHeadModel)) {
        loaded.dispose();
        throw new Error(`--init-checkpoint ${f['init-checkpoint']} is not an XLNet (model_type gpt2)`);
      }
      // The architecture comes from the folder; what only shapes training (memory, bi_data, dropout) from the flags.
      const { mem_len, reuse_len, bi_data, dropout } = config;
      Object.assign(loaded.config, { mem_len, reuse_len, bi_data, dropout });
      model = loaded;
    } else {
      manualSeed(options.seed);
      model = new XLNetLMHeadModel(config);
    }
  }
  if (model.config.vocab_size < tokenizer.vocabSize) {
    model.dispose();
    throw new Error(`the model's vocab_size ${model.config.vocab_size} is smaller than the tokenizer's ${tokenizer.vocabSize} pieces (${tokenizerPath})`);
  }
  let trainer: XLNetTrainer;
  try {
    trainer = new XLNetTrainer(model, data, options, resumed?.meta.state, resumed?.carried);
  } catch (e) {
    model.dispose();
    throw e;
  }
  if (resumed) {
    const now = JSON.stringify(trainer.dataId());
    if (JSON.stringify(resumed.meta.data) !== now) {
      trainer.dispose();
      model.dispose();
      throw new Error(`--resume: the corpus or data settings changed since the checkpoint (${JSON.stringify(resumed.meta.data)} then, ${now} now)`);
    }
    restoreOptimizer(trainer, resumed.meta, resumed.moments);
  }
  const curve: CurvePoint[] = (resumed?.meta.extra.curve as CurvePoint[] | undefined) ?? [];
  const c = model.config;
  say(`adapter: ${gpu.name}`);
  say(`model: XLNet, ${c.n_layer} layers, d_model ${c.d_model}, ${c.n_head} heads, d_inner ${c.d_inner}, ${c.ff_activation}, vocab ${c.vocab_size}: ${(model.numParameters() / 1e6).toFixed(2)}M parameters`);
  say(
    `pretraining: batch ${data.batchSize}, seq_len ${data.seqLen}, reuse_len ${data.reuseLen}, mem_len ${c.mem_len ?? 0}, perm_size ${data.permSize}, ` +
      `num_predict ${data.numPredict}, bi_data ${c.bi_data}; ${data.stepsPerEpoch} steps per pass over the corpus, ${options.trainSteps} steps`,
  );

  await mkdir(modelDir, { recursive: true });
  const maxSteps = Number(f['max-steps']);
  const saveSteps = Number(f['save-steps']);
  const end = maxSteps > 0 ? Math.min(maxSteps, options.trainSteps) : options.trainSteps;
  const progress = new Progress(end, { stream: out, label: 'pretrain' });
  const log = new LossLog(curve, progress);
  const checkpoint = async (): Promise<void> => {
    await saveCheckpoint(checkpointDir, trainer, { flags: f, curve });
    await copyFile(tokenizerPath, path.join(checkpointDir, 'spiece.model'));
    await log.write(modelDir, `XLNet pretraining loss (${path.basename(path.resolve(modelDir))})`);
  };

  const ctrlC = catchInterrupt();
  try {
    while (!trainer.done) {
      const r = trainer.step();
      const step = trainer.state.optimizerStep;
      await log.step(step, r, step % logEvery === 0 || step === end);
      if (saveSteps > 0 && step % saveSteps === 0) await checkpoint();
      if (ctrlC.interrupted || (maxSteps > 0 && step >= maxSteps && !trainer.done)) {
        await checkpoint();
        progress.finish();
        say(stoppedMessage(ctrlC.interrupted, step, checkpointDir));
        return ctrlC.interrupted ? 130 : 0;
      }
    }
    progress.finish();
    await checkpoint();
    const finalDir = path.join(modelDir, 'final_model');
    // Without the pretraining-only settings (reuse_len, bi_data): Hugging Face's generation would drop context.
    await savePretrained(model, finalDir, XLNET_INFERENCE_CONFIG);
    await copyFile(tokenizerPath, path.join(finalDir, 'spiece.model'));
    say(`done: ${finalDir} (loss curve: ${path.join(modelDir, 'loss.svg')}); try: webgpu-lm fill --model-path ${finalDir} --text "春花秋<mask>何时了"`);
    return 0;
  } finally {
    ctrlC.dispose();
    trainer.dispose();
    model.dispose();
  }
}

/**
 * Which model `train` runs: --model's value; without it, a --resume picks the kind of the checkpoint in the
 * output folder (its config.json's model_type); GPT-2 otherwise.
 */
export async function trainModelKind(argv: readonly string[]): Promise<string> {
  const value = (names: string[]): string | undefined => {
    for (let i = 0; i < argv.length; i++) {
      const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
      if (names.includes(flag.replaceAll('_', '-'))) return inline ?? argv[i + 1];
    }
    return undefined;
  };
  const model = value(['--model']);
  if (model !== undefined) return model;
  if (!argv.includes('--resume') && !argv.includes('--resume=true')) return 'gpt2';
  const dir = value(['--output-dir', '--model-dir']) ?? 'model/';
  const found = findCheckpoint(path.join(dir, 'checkpoint'));
  if (!found || !existsSync(path.join(found, 'config.json'))) return 'gpt2';
  try {
    const config = JSON.parse(await readFile(path.join(found, 'config.json'), 'utf8')) as { model_type?: unknown };
    return config.model_type === 'xlnet' ? 'xlnet' : 'gpt2';
  } catch {
    return 'gpt2'; // the GPT-2 path reports the unreadable checkpoint
  }
}
