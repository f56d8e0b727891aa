// `webgpu-lm generate` and `generate-texts`: GPT2-Chinese's generate.py / generate_texts.py on WebGPU, sampling on the GPU; GPT-2 or XLNet by the folder's model_type.
//
// Fixed on purpose (README, "Where webgpu-lm differs"): a batch holds independent samples (generate.py repeated
// one), nsamples need not divide by batch_size (generate.py looped forever), the repetition penalty is sign-aware
// and applies with the cache too (generate.py's was sign-unaware and skipped by --fast_pattern; --compat
// gpt2-chinese restores its rules), [UNK] is banned in both modes, and generate_texts names files {title}-{article}.
// An XLNet folder runs HF's XLNet recipe (src/generate/xlnet.ts) with the same flags: --length -1 means 100 tokens
// (XLNet has no context size), --no-cache recomputes the whole text each step (not the same numbers as the mems,
// see there), --padding-text puts a document before short prefixes, and texts are decoded as SentencePiece does.

import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundledVocabPath, loadTokenizer } from '../../tokenizers/node.js';
import type { Gpt2ChinesePostprocessStyle, Tokenizer } from '../../tokenizers/index.js';
import { SentencePieceTokenizer } from '../../tokenizers/sentencepiece.js';
import { sampleTexts, type TextSamplingOptions } from '../generate/text.js';
import { sampleXLNetTexts, XLNET_DEFAULT_LENGTH } from '../generate/xlnet.js';
import { init } from '../gpu/runtime.js';
import type { GPT2LMHeadModel } from '../models/gpt2.js';
import { loadPretrained } from '../models/pretrained.js';
import { XLNET_INFERENCE_CONFIG, XLNetLMHeadModel } from '../models/xlnet.js';
import { DEVICE_FLAG, formatHelp, parseArgs, type FlagSpec, type FlagValue } from './args.js';

const SAMPLING_FLAGS: FlagSpec[] = [
  DEVICE_FLAG,
  { name: 'length', type: 'int', default: -1, help: `tokens to generate per sample (-1 = n_ctx; XLNet: ${XLNET_DEFAULT_LENGTH})` },
  { name: 'temperature', type: 'float', default: 1, help: 'divide the logits by this (0 = greedy)' },
  { name: 'topk', type: 'int', default: 8, help: 'keep the k most likely tokens (0 = off)' },
  { name: 'topp', type: 'float', default: 0, help: 'nucleus sampling threshold (0 = off)' },
  { name: 'repetition-penalty', type: 'float', default: 1.0, help: 'penalise tokens already in the text (1 = off)' },
  { name: 'model-config', type: 'string', default: '', help: 'accepted for compatibility: the config comes from --model-path' },
  { name: 'tokenizer-path', type: 'string', default: '', help: 'vocab.txt (default: vocab.txt in --model-path, else the bundled vocab_small.txt); XLNet: spiece.model (default: spiece.model in --model-path, else the bundled songci-unigram model)' },
  { name: 'model-path', type: 'string', default: 'model/final_model', help: 'model folder (config.json + weights)' },
  { name: 'no-wordpiece', type: 'bool', help: 'accepted for compatibility (unused, as in GPT2-Chinese)' },
  { name: 'segment', type: 'bool', help: 'word-level (THULAC) tokenization: not available' },
  { name: 'fast-pattern', type: 'bool', help: 'accepted: the KV cache is on by default' },
  { name: 'no-cache', type: 'bool', help: 'recompute the whole window every step instead of using the KV cache (XLNet: the mems)' },
  { name: 'compat', type: 'string', default: 'hf', help: "sampling rules: 'hf' (sign-aware penalty) or 'gpt2-chinese' (generate.py's exact rules)" },
  { name: 'seed', type: 'int', default: 0, help: 'random seed (same seed, same text)' },
  { name: 'padding-text', type: 'string', default: '', help: "XLNet: a text put before the prefix, ending in <eod>, so a short prefix has context (HF's trick; not printed)" },
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

/** A loaded model and its tokenizer; which recipe samples from it follows from `kind`. */
type Loaded =
  | { kind: 'gpt2'; model: GPT2LMHeadModel; tokenizer: Tokenizer }
  | { kind: 'xlnet'; model: XLNetLMHeadModel; tokenizer: SentencePieceTokenizer };

/**
 * An XLNet ready for inference, with its tokenizer: XLNET_INFERENCE_CONFIG applied (a training checkpoint still
 * carries the pretraining-only settings), and the SentencePiece model in 'xlnet' mode from `tokenizerPath`, else
 * spiece.model in the model folder, else the bundled songci-unigram model; refused when it has more pieces than
 * the model's vocabulary. The model is freed if the tokenizer is refused.
 */
export function xlnetForInference(model: XLNetLMHeadModel, modelPath: string, tokenizerPath: string): { model: XLNetLMHeadModel; tokenizer: SentencePieceTokenizer } {
  Object.assign(model.config, XLNET_INFERENCE_CONFIG);
  const own = path.join(modelPath, 'spiece.model');
  const file = tokenizerPath || (existsSync(own) ? own : bundledVocabPath('songci-unigram'));
  try {
    const tokenizer = loadTokenizer(file, { mode: 'xlnet' });
    if (!(tokenizer instanceof SentencePieceTokenizer)) throw new Error(`${file} is not a SentencePiece model; an XLNet needs its spiece.model`);
    const V = model.config.vocab_size;
    if (tokenizer.vocabSize > V) throw new Error(`the tokenizer (${file}) has ${tokenizer.vocabSize} pieces but the model's vocab_size is ${V}`);
    return { model, tokenizer };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

async function setup(f: Record<string, FlagValue>): Promise<Loaded> {
  if (f.segment) throw new Error('--segment (THULAC word segmentation) is not available');
  if (f.compat !== 'hf' && f.compat !== 'gpt2-chinese') throw new Error(`--compat must be 'hf' or 'gpt2-chinese', got '${f.compat}'`);
  const modelPath = String(f['model-path']);
  await init();
  const model = await loadPretrained(modelPath, (config) => {
    if (config.model_type !== 'xlnet' && f['padding-text']) throw new Error('--padding-text is for XLNet models (GPT-2 continues the prefix as it is)');
  });
  if (model instanceof XLNetLMHeadModel) return { kind: 'xlnet', ...xlnetForInference(model, modelPath, String(f['tokenizer-path'])) };
  const own = path.join(modelPath, 'vocab.txt');
  const vocabPath = String(f['tokenizer-path']) || (existsSync(own) ? own : bundledVocabPath('gpt2-chinese-small'));
  const tokenizer = loadTokenizer(vocabPath, { variant: 'gpt2-chinese' });
  if (tokenizer.vocabSize > model.config.vocab_size) {
    model.dispose();
    throw new Error(`the tokenizer (${vocabPath}) has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}`);
  }
  return { kind: 'gpt2', model, tokenizer };
}

/** `count` texts from `prefix` by the model's own recipe (GPT-2's post-processing `style`; XLNet decodes plainly). */
function sample(
  loaded: Loaded,
  prefix: string,
  count: number,
  options: TextSamplingOptions & { paddingText: string },
  style: Gpt2ChinesePostprocessStyle,
): Promise<string[]> {
  if (loaded.kind === 'xlnet') return sampleXLNetTexts(loaded.model, loaded.tokenizer, prefix, count, options);
  return sampleTexts(loaded.model, loaded.tokenizer, prefix, count, options, style);
}

/** The sampling flags as sampleTexts / sampleXLNetTexts options. */
function samplingOptions(f: Record<string, FlagValue>): TextSamplingOptions & { paddingText: string } {
  return {
    length: Number(f.length),
    temperature: Number(f.temperature),
    topK: Number(f.topk),
    topP: Number(f.topp),
    repetitionPenalty: Number(f['repetition-penalty']),
    compat: f.compat as 'hf' | 'gpt2-chinese',
    seed: Number(f.seed),
    useCache: !f['no-cache'],
    paddingText: String(f['padding-text']),
  };
}

export async function generateCommand(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('generate', argv, GENERATE_FLAGS);
  if (args.help) {
    out.write(formatHelp('generate', 'Sample text from a prefix with a GPT-2 or an XLNet (GPT2-Chinese generate.py flags).', GENERATE_FLAGS));
    return 0;
  }
  const f = args.flags;
  const nsamples = Number(f.nsamples);
  const batchSize = Number(f['batch-size']);
  if (!(nsamples >= 1) || !(batchSize >= 1)) throw new Error('--nsamples and --batch-size must be at least 1');
  const loaded = await setup(f);
  try {
    const start = performance.now();
    const texts = await sample(loaded, String(f.prefix), nsamples, { ...samplingOptions(f), batchSize }, 'generate');
    const seconds = (performance.now() - start) / 1000;
    let saved = '';
    texts.forEach((text, k) => {
      const header = `${'='.repeat(40)} SAMPLE ${k + 1} ${'='.repeat(40)}`;
      out.write(`${header}\n${text}\n`);
      saved += `${header}\n${text}\n${'='.repeat(90)}\n\n`;
    });
    const length = Number(f.length) >= 0 ? Number(f.length) : loaded.kind === 'xlnet' ? XLNET_DEFAULT_LENGTH : loaded.model.config.n_positions;
    out.write(`${'='.repeat(80)}\n${nsamples} samples of ${length} tokens in ${seconds.toFixed(1)} s (${((nsamples * length) / seconds).toFixed(1)} tokens/s)\n`);
    if (f['save-samples']) {
      const dir = String(f['save-samples-path']);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'samples.txt'), saved);
    }
    return 0;
  } finally {
    loaded.model.dispose();
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
  const loaded = await setup(f);
  try {
    const dir = String(f['save-path']);
    await mkdir(dir, { recursive: true });
    const perTitle = Number(f['articles-per-title']);
    for (const [i, title] of titles.entries()) {
      const options = { ...samplingOptions(f), batchSize: perTitle, seedOffset: i * 100_003 };
      const texts = await sample(loaded, title, perTitle, options, 'generate_texts');
      for (const [j, text] of texts.entries()) await writeFile(path.join(dir, `${i}-${j}.txt`), `${text}\n`);
      out.write(`${title}: ${texts.length} texts written to ${dir}\n`);
    }
    return 0;
  } finally {
    loaded.model.dispose();
  }
}
