// Node-only tokenizer loading: picks the tokenizer by the files it finds and locates the vocabularies bundled in tokenizers/data.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { packageRoot } from '../src/io/fs.js';
import { GPT2Tokenizer, type GPT2TokenizerOptions } from './bpe.js';
import { SentencePieceTokenizer, type SentencePieceTokenizerOptions } from './sentencepiece.js';
import { BertTokenizer, type BertTokenizerOptions } from './wordpiece.js';

/** Vocabularies shipped in tokenizers/data (sources and licences in tokenizers/data/README.md). */
export type BundledVocab = 'bert-base-chinese' | 'gpt2-chinese-small' | 'gpt2' | 'songci-unigram';

const BUNDLED: Record<BundledVocab, string> = {
  'bert-base-chinese': 'bert-base-chinese-vocab.txt',
  'gpt2-chinese-small': 'gpt2-chinese-vocab_small.txt',
  gpt2: 'gpt2', // a folder: encoder.json + vocab.bpe
  'songci-unigram': 'songci_unigram_8k.model', // SentencePiece unigram, XLNet's special-token layout
};

/** tokenizers/data of this package (found from the package root, from the sources and from the build alike). */
export function bundledDataDir(): string {
  const data = join(packageRoot(), 'tokenizers', 'data');
  if (!existsSync(data)) throw new Error(`bundled tokenizer data missing: ${data} does not exist`);
  return data;
}

/** Path of a bundled vocabulary: a vocab .txt file, a SentencePiece .model, or for 'gpt2' the folder with encoder.json + vocab.bpe. */
export function bundledVocabPath(name: BundledVocab): string {
  const file = BUNDLED[name];
  if (file === undefined) throw new Error(`unknown bundled vocabulary ${JSON.stringify(name)}; have ${Object.keys(BUNDLED).join(', ')}`);
  return join(bundledDataDir(), file);
}

export type LoadTokenizerOptions = BertTokenizerOptions & GPT2TokenizerOptions & SentencePieceTokenizerOptions;

/** The byte-level BPE file pairs, OpenAI's names and Hugging Face's. */
const BPE_PAIRS = [
  ['encoder.json', 'vocab.bpe'],
  ['vocab.json', 'merges.txt'],
] as const;

const LOOKED_FOR = 'vocab.txt (WordPiece), encoder.json + vocab.bpe or vocab.json + merges.txt (GPT-2 byte-level BPE), spiece.model or another .model (SentencePiece unigram)';
const SPIECE = 'spiece.model';

/**
 * Loads a tokenizer from a file or a folder, choosing by file name:
 * - a WordPiece vocabulary: vocab.txt, or any other .txt but merges.txt (GPT2-Chinese's vocab_small.txt);
 * - byte-level BPE: encoder.json or vocab.bpe (OpenAI), vocab.json or merges.txt (HF), with its partner file
 *   from the same folder;
 * - SentencePiece unigram: a .model file (XLNet's spiece.model);
 * - a folder: vocab.txt, then encoder.json + vocab.bpe, then vocab.json + merges.txt, then spiece.model.
 * Options go to the tokenizer built (`variant` etc. for WordPiece, `parseSpecialTokens` for BPE, `mode` etc.
 * for SentencePiece).
 */
export function loadTokenizer(pathOrDir: string, options: LoadTokenizerOptions = {}): BertTokenizer | GPT2Tokenizer | SentencePieceTokenizer {
  const path = resolve(pathOrDir);
  if (!existsSync(path)) throw new Error(`tokenizer path ${path} does not exist`);
  if (statSync(path).isDirectory()) return loadFromDir(path, options);

  const name = basename(path);
  const dir = dirname(path);
  for (const [vocab, merges] of BPE_PAIRS) {
    if (name === vocab || name === merges) return loadBpe(join(dir, vocab), join(dir, merges), options);
  }
  if (name.endsWith('.txt')) return BertTokenizer.fromVocabText(readFileSync(path, 'utf8'), options);
  if (name.endsWith('.model')) return loadSentencePiece(path, options);
  throw new Error(`unrecognised tokenizer file ${path}: expected ${LOOKED_FOR}`);
}

function loadFromDir(dir: string, options: LoadTokenizerOptions): BertTokenizer | GPT2Tokenizer | SentencePieceTokenizer {
  if (existsSync(join(dir, 'vocab.txt'))) return BertTokenizer.fromVocabText(readFileSync(join(dir, 'vocab.txt'), 'utf8'), options);
  for (const [vocab, merges] of BPE_PAIRS) {
    if (existsSync(join(dir, vocab)) || existsSync(join(dir, merges))) return loadBpe(join(dir, vocab), join(dir, merges), options);
  }
  if (existsSync(join(dir, SPIECE))) return loadSentencePiece(join(dir, SPIECE), options);
  throw new Error(`no tokenizer files in ${dir}: looked for ${LOOKED_FOR}`);
}

function loadBpe(vocabPath: string, mergesPath: string, options: GPT2TokenizerOptions): GPT2Tokenizer {
  for (const p of [vocabPath, mergesPath]) {
    if (!existsSync(p)) throw new Error(`byte-level BPE needs ${basename(vocabPath)} and ${basename(mergesPath)} side by side; ${p} is missing`);
  }
  return GPT2Tokenizer.fromFiles(readFileSync(vocabPath, 'utf8'), readFileSync(mergesPath, 'utf8'), options);
}

function loadSentencePiece(path: string, options: SentencePieceTokenizerOptions): SentencePieceTokenizer {
  try {
    return SentencePieceTokenizer.fromModelBytes(readFileSync(path), options);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}
