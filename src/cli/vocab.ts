// `webgpu-lm vocab`: build a vocab.txt from a corpus (GPT2-Chinese's cache/make_vocab.py; character-level, see tokenizers/vocab.ts).

import { readCorpus } from '../../datasets/corpus.js';
import { formatVocabFile, makeVocab } from '../../tokenizers/index.js';
import { atomicWriteFile } from '../io/fs.js';
import { formatHelp, parseArgs, type FlagSpec } from './args.js';

export const VOCAB_FLAGS: FlagSpec[] = [
  { name: 'raw-data-path', type: 'string', default: 'data/train.json', help: 'corpus (train.json, .jsonl, .txt, optionally .gz)' },
  { name: 'vocab-file', type: 'string', default: 'vocab_processed.txt', help: 'output vocabulary, one token per line' },
  { name: 'vocab-size', type: 'int', default: 50000, help: 'tokens to keep besides the 5 special tokens' },
  { name: 'min-frequency', type: 'int', default: 1, help: 'drop tokens seen fewer times' },
];

export async function vocab(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('vocab', argv, VOCAB_FLAGS);
  if (args.help) {
    out.write(formatHelp('vocab', 'Build a vocab.txt from a corpus (GPT2-Chinese make_vocab.py flags).', VOCAB_FLAGS));
    return 0;
  }
  const f = args.flags;
  const articles = await readCorpus(String(f['raw-data-path']));
  // make_vocab.py keeps vocab_size words plus the 5 special tokens.
  const tokens = makeVocab(articles, { maxSize: Number(f['vocab-size']) + 5, minFrequency: Number(f['min-frequency']) });
  await atomicWriteFile(String(f['vocab-file']), formatVocabFile(tokens));
  out.write(`wrote ${tokens.length} tokens to ${f['vocab-file']} (use it with --tokenizer-path and a config whose vocab_size is ${tokens.length})\n`);
  return 0;
}
