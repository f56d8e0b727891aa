// make_vocab: a character-level BERT vocab.txt built from a corpus, with GPT2-Chinese's basic tokenization.

import { BERT_SPECIAL_TOKENS, basicTokenize, isSpecialToken, splitOnSpecialTokens } from './wordpiece.js';

// How this relates to GPT2-Chinese's cache/make_vocab.py: that script cuts every article into words with
// THULAC (a Chinese word segmenter), counts them with a Keras Tokenizer (lower-cased, ASCII punctuation
// dropped) and writes [SEP] [CLS] [MASK] [PAD] [UNK] followed by the most frequent words. That word-level
// vocabulary only works with its --segment tokenizer, which needs THULAC again at run time. We build the
// character-level kind instead, like GPT2-Chinese's default vocab_small.txt: the entries are exactly the units
// BertTokenizer({ variant: 'gpt2-chinese' }) sees before WordPiece (one CJK character, one digit, one
// punctuation mark, or a lower-cased Latin word), so the file works with the default tokenizer, needs no
// segmenter (THULAC has no JS/browser port), and a few thousand entries cover a Chinese corpus where a word
// list needs tens of thousands. Ordering matches Keras: descending count, ties in order of first appearance.

export interface MakeVocabOptions {
  /** Keep tokens seen at least this many times. Default 1. */
  minFrequency?: number;
  /** Most lines in the file, special tokens included (so it can be the model's vocab_size). Default: no limit. */
  maxSize?: number;
  /** Written first, in this order. Default BERT's [PAD] [UNK] [CLS] [SEP] [MASK]; make_vocab.py wrote [SEP] [CLS] [MASK] [PAD] [UNK]. */
  specialTokens?: readonly string[];
  /** Lower-case and strip accents, as the tokenizer that will use the vocabulary does. Default true. */
  doLowerCase?: boolean;
}

/** Words longer than this become [UNK] in WordPiece whatever the vocabulary holds, so they are not counted. */
const MAX_INPUT_CHARS_PER_WORD = 100;

/** The tokens of a vocab.txt, id order: special tokens, then corpus tokens by descending frequency. */
export function makeVocab(texts: Iterable<string>, options: MakeVocabOptions = {}): string[] {
  const minFrequency = options.minFrequency ?? 1;
  const maxSize = options.maxSize ?? Infinity;
  const specialTokens = options.specialTokens ?? BERT_SPECIAL_TOKENS;
  if (!specialTokens.includes('[UNK]')) throw new Error('makeVocab: specialTokens must include [UNK]; WordPiece needs it for unknown words');
  if (new Set(specialTokens).size !== specialTokens.length) throw new Error('makeVocab: specialTokens has duplicates');
  if (!(minFrequency >= 1)) throw new Error(`makeVocab: minFrequency must be >= 1, got ${minFrequency}`);
  if (!(maxSize >= specialTokens.length)) {
    throw new Error(`makeVocab: maxSize ${maxSize} leaves no room for the ${specialTokens.length} special tokens`);
  }

  // A Map iterates in insertion order, so equal counts keep their first-appearance order through the stable sort.
  const counts = new Map<string, number>();
  const reserved = new Set(specialTokens);
  for (const text of texts) {
    for (const piece of splitOnSpecialTokens(text)) {
      if (isSpecialToken(piece)) continue;
      const words = basicTokenize(piece, { doLowerCase: options.doLowerCase ?? true, tokenizeChineseChars: true, splitDigits: true });
      for (const word of words) {
        if (reserved.has(word) || [...word].length > MAX_INPUT_CHARS_PER_WORD) continue;
        counts.set(word, (counts.get(word) ?? 0) + 1);
      }
    }
  }
  const ranked = [...counts].filter(([, count]) => count >= minFrequency).sort((a, b) => b[1] - a[1]);
  return [...specialTokens, ...ranked.slice(0, maxSize - specialTokens.length).map(([token]) => token)];
}

/** The vocab.txt text for a token list: one token per line, "\n"-terminated, line number = id. */
export function formatVocabFile(tokens: readonly string[]): string {
  const bad = tokens.find((t) => t.includes('\n'));
  if (bad !== undefined) throw new Error(`vocabulary token ${JSON.stringify(bad)} contains a newline and cannot be written one per line`);
  return tokens.map((t) => `${t}\n`).join('');
}
