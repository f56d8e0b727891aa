// `webgpu-lm generate` and `generate-texts`: GPT2-Chinese's generate.py / generate_texts.py on WebGPU, sampling on the GPU.
//
// Fixed on purpose (README, "Where webgpu-lm differs"): a batch holds independent samples (generate.py repeated
// one), nsamples need not divide by batch_size (generate.py looped forever), the repetition penalty is sign-aware
// and applies with the cache too (generate.py's was sign-unaware and skipped by --fast_pattern; --compat
// gpt2-chinese restores its rules), [UNK] is banned in both modes, and generate_texts names files {title}-{article}.

import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundledVocabPath, loadTokenizer } from '../../tokenizers/node.js';
import type { Tokenizer } from '../../tokenizers/index.js';
import { sampleTexts, type TextSamplingOptions } from '../generate/text.js';
import { init } from '../gpu/runtime.js';
import type { GPT2LMHeadModel } from '../models/gpt2.js';
import { loadGpt2 } from '../models/pretrained.js';
import { DEVICE_FLAG, formatHelp, parseArgs, type FlagSpec, type FlagValue } from './args.js';

const SAMPLING_FLAGS: FlagSpec[] = [
  DEVICE_FLAG,
  { name: 'length', type: 'int', default: -1, help: 'tokens to generate per sample (-1 = n_ctx)' },
  { name: 'temperature', type: 'float', default: 1, help: 'divide the logits by this (0 = greedy)' },
  { name: 'topk', type: 'int', default: 8, help: 'keep the k most likely tokens (0 = off)' },
  { name: 'topp', type: 'float', default: 0, help: 'nucleus sampling threshold (0 = off)' },
  { name: 'repetition-penalty', type: 'float', default: 1.0, help: 'penalise tokens already in the text (1 = off)' },
  { name: 'model-config', type: 'string', default: '', help: 'accepted for compatibility: the config comes from --model-path' },
  { name: 'tokenizer-path', type: 'string', default: '', help: 'vocab.txt (default: vocab.txt in --model-path, else the bundled vocab_small.txt)' },
  { name: 'model-path', type: 'string', default: 'model/final_model', help: 'model folder (config.json + weights)' },
  { name: 'no-wordpiece', type: 'bool', help: 'accepted for compatibility (unused, as in GPT2-Chinese)' },
  { name: 'segment', type: 'bool', help: 'word-level (THULAC) tokenization: not available' },
  { name: 'fast-pattern', type: 'bool', help: 'accepted: the KV cache is on by default' },
  { name: 'no-cache', type: 'bool', help: 'recompute the whole window every step instead of using the KV cache' },
  { name: 'compat', type: 'string', default: 'hf', help: "sampling rules: 'hf' (sign-aware penalty) or 'gpt2-chinese' (generate.py's exact rules)" },
  { name: 'seed', type: 'int', default: 0, help: 'random seed (same seed, same text)' },
];

export const GENERATE_FLAGS: FlagSpec[] = [
  ...SAMPLING_FLAGS,
  { name: 'batch-size', type: 'int', default: 1, help: 'samples generated together' },
  { name: 'nsamples', type: 'int', default: 10, help: 'number of samples' },
  { name: 'prefix', type: 'string', default: '萧炎', help: 'text the sample starts with ([CLS] etc. may be written inline)' },
  { name: 'save-samples', type: 'bool', help: 'also write the samples to --save-samples-path/samples.txt' },
  { name: 'save-samples-path', type: 'string', default: '.', help: 'folder for samples.txt' },
];

export const GENERATE_TEXTS_FLAGS: FlagSpec[] = [
  ...SAMPLING_FLAGS,
  { name: 'save-path', type: 'string', default: 'generated/', help: 'output folder: one file {title}-{article}.txt per text' },
  { name: 'articles-per-title', type: 'int', default: 5, help: 'texts per title' },
  { name: 'titles', type: 'string', default: '萧炎', help: 'space-separated titles (prefixes)' },
  { name: 'titles-file', type: 'string', default: '', help: 'file with one title per line (overrides --titles)' },
];

async function setup(f: Record<string, FlagValue>): Promise<{ model: GPT2LMHeadModel; tokenizer: Tokenizer }> {
  if (f.segment) throw new Error('--segment (THULAC word segmentation) is not available');
  if (f.compat !== 'hf' && f.compat !== 'gpt2-chinese') throw new Error(`--compat must be 'hf' or 'gpt2-chinese', got '${f.compat}'`);
  await init();
  const modelPath = String(f['model-path']);
  const model = await loadGpt2(modelPath, 'generate');
  const own = path.join(modelPath, 'vocab.txt');
  const vocabPath = String(f['tokenizer-path']) || (existsSync(own) ? own : bundledVocabPath('gpt2-chinese-small'));
  const tokenizer = loadTokenizer(vocabPath, { variant: 'gpt2-chinese' });
  if (tokenizer.vocabSize > model.config.vocab_size) {
    model.dispose();
    throw new Error(`the tokenizer (${vocabPath}) has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}`);
  }
  return { model, tokenizer };
}

/** The sampling flags as sampleTexts options. */
function samplingOptions(f: Record<string, FlagValue>): TextSamplingOptions {
  return {
    length: Number(f.length),
    temperature: Number(f.temperature),
    topK: Number(f.topk),
    topP: Number(f.topp),
    repetitionPenalty: Number(f['repetition-penalty']),
    compat: f.compat as 'hf' | 'gpt2-chinese',
    seed: Number(f.seed),
    useCache: !f['no-cache'],
  };
}

export async function generateCommand(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('generate', argv, GENERATE_FLAGS);
  if (args.help) {
    out.write(formatHelp('generate', 'Sample text from a prefix (GPT2-Chinese generate.py flags).', GENERATE_FLAGS));
    return 0;
  }
  const f = args.flags;
  const nsamples = Number(f.nsamples);
  const batchSize = Number(f['batch-size']);
  if (!(nsamples >= 1) || !(batchSize >= 1)) throw new Error('--nsamples and --batch-size must be at least 1');
  const { model, tokenizer } = await setup(f);
  try {
    const start = performance.now();
    const texts = await sampleTexts(model, tokenizer, String(f.prefix), nsamples, { ...samplingOptions(f), batchSize });
    const seconds = (performance.now() - start) / 1000;
    let saved = '';
    texts.forEach((text, k) => {
      const header = `${'='.repeat(40)} SAMPLE ${k + 1} ${'='.repeat(40)}`;
      out.write(`${header}\n${text}\n`);
      saved += `${header}\n${text}\n${'='.repeat(90)}\n\n`;
    });
    const length = Number(f.length) < 0 ? model.config.n_positions : Number(f.length);
    out.write(`${'='.repeat(80)}\n${nsamples} samples of ${length} tokens in ${seconds.toFixed(1)} s (${((nsamples * length) / seconds).toFixed(1)} tokens/s)\n`);
    if (f['save-samples']) {
      const dir = String(f['save-samples-path']);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'samples.txt'), saved);
    }
    return 0;
  } finally {
    model.dispose();
  }
}

export async function generateTextsCommand(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('generate-texts', argv, GENERATE_TEXTS_FLAGS);
  if (args.help) {
    out.write(formatHelp('generate-texts', 'Generate articles for a list of titles (GPT2-Chinese generate_texts.py flags).', GENERATE_TEXTS_FLAGS));
    return 0;
  }
  const f = args.flags;
  const titles = f['titles-file']
    ? (await readFile(String(f['titles-file']), 'utf8')).split('\n').map((t) => t.trim()).filter(Boolean)
    : String(f.titles).split(/\s+/).filter(Boolean);
  if (titles.length === 0) throw new Error('generate-texts: no titles given');
  const { model, tokenizer } = await setup(f);
  try {
    const dir = String(f['save-path']);
    await mkdir(dir, { recursive: true });
    const perTitle = Number(f['articles-per-title']);
    for (const [i, title] of titles.entries()) {
      const options = { ...samplingOptions(f), batchSize: perTitle, seedOffset: i * 100_003 };
      const texts = await sampleTexts(model, tokenizer, title, perTitle, options, 'generate_texts');
      for (const [j, text] of texts.entries()) await writeFile(path.join(dir, `${i}-${j}.txt`), `${text}\n`);
      out.write(`${title}: ${texts.length} texts written to ${dir}\n`);
    }
    return 0;
  } finally {
    model.dispose();
  }
}
