// BERT WordPiece tokenizer (HF BertTokenizer), GPT2-Chinese's digit-splitting variant, and GPT2-Chinese's decoding.

import type { DecodeOptions, EncodeOptions, Tokenizer } from './index.js';

/**
 * 'bert': Hugging Face BertTokenizer (what bert-base-chinese was trained with).
 * 'gpt2-chinese': GPT2-Chinese's modified copy (tokenizations/tokenization_bert.py): additionally puts
 * every digit in its own token, adds no [CLS]/[SEP] by default and decodes the way its generate.py does.
 */
export type BertVariant = 'bert' | 'gpt2-chinese';

export interface BertTokenizerOptions {
  variant?: BertVariant;
  /** Lower-case and strip accents (NFD, drop Mn) before WordPiece. Default true (bert-base-chinese is uncased). */
  doLowerCase?: boolean;
  /** Put spaces around CJK ideographs so each is a word of its own. Default true. */
  tokenizeChineseChars?: boolean;
  /** Words longer than this (in code points) become [UNK] without trying WordPiece. Default 100. */
  maxInputCharsPerWord?: number;
}

/** BERT's special tokens, in the id order of bert-base-chinese (0, 100, 101, 102, 103). */
export const BERT_SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/**
 * Splits a vocab.txt into its tokens; the id of a token is its line number.
 * Only "\n" ends a line (as Python's readlines): bert-base-chinese's line 344 is U+2028, which a generic
 * line splitter would break on, shifting every later id. A trailing "\r" is dropped, as HF's Rust
 * tokenizers and Python's universal newlines do for CRLF files. A final newline does not add an empty token.
 */
export function parseVocabText(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new Error('WordPiece vocabulary is empty: expected one token per line');
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

export class BertTokenizer implements Tokenizer {
  readonly variant: BertVariant;
  readonly vocabSize: number;
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number;
  readonly clsTokenId: number | undefined;
  readonly sepTokenId: number | undefined;
  readonly maskTokenId: number | undefined;
  readonly eosTokenId = undefined;

  private readonly vocab = new Map<string, number>();
  private readonly idsToTokens: readonly string[];
  private readonly doLowerCase: boolean;
  private readonly tokenizeChineseChars: boolean;
  private readonly maxInputCharsPerWord: number;
  private readonly specialIds: ReadonlySet<number>;

  /** `tokens[i]` is the token with id i (see parseVocabText for reading a vocab.txt). */
  constructor(tokens: readonly string[], options: BertTokenizerOptions = {}) {
    if (tokens.length === 0) throw new Error('WordPiece vocabulary is empty');
    this.variant = options.variant ?? 'bert';
    this.doLowerCase = options.doLowerCase ?? true;
    this.tokenizeChineseChars = options.tokenizeChineseChars ?? true;
    this.maxInputCharsPerWord = options.maxInputCharsPerWord ?? 100;
    this.idsToTokens = [...tokens];
    // A repeated line keeps its last id, as HF's load_vocab (a dict filled in file order) does.
    tokens.forEach((token, id) => this.vocab.set(token, id));
    this.vocabSize = tokens.length;
    const unk = this.vocab.get('[UNK]');
    if (unk === undefined) {
      throw new Error(`WordPiece vocabulary (${tokens.length} tokens) has no [UNK] token; unknown words need one`);
    }
    this.unkTokenId = unk;
    this.padTokenId = this.vocab.get('[PAD]');
    this.clsTokenId = this.vocab.get('[CLS]');
    this.sepTokenId = this.vocab.get('[SEP]');
    this.maskTokenId = this.vocab.get('[MASK]');
    this.specialIds = new Set(BERT_SPECIAL_TOKENS.map((t) => this.vocab.get(t)).filter((id) => id !== undefined));
  }

  static fromVocabText(text: string, options: BertTokenizerOptions = {}): BertTokenizer {
    return new BertTokenizer(parseVocabText(text), options);
  }

  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const piece of splitOnSpecialTokens(text)) {
      if (isSpecialToken(piece)) {
        out.push(piece);
        continue;
      }
      const words = basicTokenize(piece, {
        doLowerCase: this.doLowerCase,
        tokenizeChineseChars: this.tokenizeChineseChars,
        splitDigits: this.variant === 'gpt2-chinese',
      });
      for (const word of words) out.push(...this.wordpiece(word));
    }
    return out;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.tokenize(text).map((t) => this.vocab.get(t) ?? this.unkTokenId);
    if (!(options.addSpecialTokens ?? this.variant === 'bert')) return ids;
    if (this.clsTokenId === undefined || this.sepTokenId === undefined) {
      throw new Error('addSpecialTokens needs [CLS] and [SEP] in the vocabulary');
    }
    return [this.clsTokenId, ...ids, this.sepTokenId];
  }

  /**
   * 'bert': HF's decode (tokens joined by spaces, " ##" glued back, clean_up_tokenization_spaces), so
   * Chinese comes back as "深 度 学 习". 'gpt2-chinese': postprocessGpt2Chinese(tokens, 'generate'),
   * which joins CJK without spaces and turns [CLS]/[SEP] back into newlines.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const kept = options.skipSpecialTokens ? ids.filter((id) => !this.specialIds.has(id)) : ids;
    const tokens = kept.map((id) => {
      const token = this.idToToken(id);
      if (token === undefined) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      return token;
    });
    if (this.variant === 'gpt2-chinese') return postprocessGpt2Chinese(tokens, 'generate');
    return cleanUpTokenization(tokens.join(' ').replaceAll(' ##', '').trim());
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) ? this.idsToTokens[id] : undefined;
  }

  /** Greedy longest-match-first WordPiece: "unaffable" -> un ##aff ##able; any unmatchable rest -> the word is [UNK]. */
  private wordpiece(word: string): string[] {
    // The whole word is the first candidate; most words (every CJK character) end here.
    if (word.length <= this.maxInputCharsPerWord && this.vocab.has(word)) return [word];
    const offsets: number[] = []; // UTF-16 offset of each code point, and the end
    for (let i = 0; i < word.length; i += word.codePointAt(i)! > 0xffff ? 2 : 1) offsets.push(i);
    const n = offsets.length;
    offsets.push(word.length);
    if (n > this.maxInputCharsPerWord) return ['[UNK]'];
    const pieces: string[] = [];
    for (let start = 0; start < n; ) {
      let end = n;
      let piece: string | undefined;
      for (; end > start; end--) {
        const candidate = (start > 0 ? '##' : '') + word.slice(offsets[start], offsets[end]);
        if (this.vocab.has(candidate)) {
          piece = candidate;
          break;
        }
      }
      if (piece === undefined) return ['[UNK]'];
      pieces.push(piece);
      start = end;
    }
    return pieces;
  }
}

/** `generate.py` maps [CLS] to a blank line; `generate_texts.py` maps both [CLS] and [SEP] to one newline. */
export type Gpt2ChinesePostprocessStyle = 'generate' | 'generate_texts';

/**
 * GPT2-Chinese's text post-processing of sampled tokens, step for step as its scripts do it: a space after
 * a token when it and the next one are both pure [a-z]+ (so English words do not run together); [MASK]
 * (article start) -> ''; [CLS] (article end) -> '\n\n' ('\n' in generate_texts); [SEP] (paragraph) -> '\n';
 * join; remove every "##"; trim. The "##" removal is a plain string replace, so a "##" that was really in
 * the text ("C##" -> c # #) disappears too; that is what GPT2-Chinese prints.
 */
export function postprocessGpt2Chinese(tokens: readonly string[], style: Gpt2ChinesePostprocessStyle = 'generate'): string {
  const isWord = (t: string | undefined): boolean => t !== undefined && /^[a-z]+$/.test(t);
  const cls = style === 'generate' ? '\n\n' : '\n';
  const text = tokens
    .map((token, i) => {
      if (token === '[MASK]') return '';
      if (token === '[CLS]') return cls;
      if (token === '[SEP]') return '\n';
      return isWord(token) && isWord(tokens[i + 1]) ? `${token} ` : token;
    })
    .join('');
  return text.replaceAll('##', '').trim();
}

// ---- basic tokenization (HF BasicTokenizer); vocab.ts reuses splitOnSpecialTokens and basicTokenize ----

const SPECIAL_SET: ReadonlySet<string> = new Set(BERT_SPECIAL_TOKENS);
const SPECIAL_SPLIT = new RegExp(`(${BERT_SPECIAL_TOKENS.map((t) => t.replace(/[[\]]/g, '\\$&')).join('|')})`);

export function isSpecialToken(piece: string): boolean {
  return SPECIAL_SET.has(piece);
}

/**
 * Cuts [PAD] [UNK] [CLS] [SEP] [MASK] (case-sensitive) out of the text before anything else, so they stay
 * atomic even inside words ("ab[SEP]cd"); GPT2-Chinese relies on this for the " [SEP] " it writes for
 * newlines. Unlike transformers 2.1.1 (which turned a whitespace-only text into ['[UNK]'], fixed later),
 * whitespace-only text gives no tokens.
 */
export function splitOnSpecialTokens(text: string): string[] {
  return text.split(SPECIAL_SPLIT).filter((piece) => piece !== '');
}

export interface BasicTokenizeOptions {
  doLowerCase: boolean;
  tokenizeChineseChars: boolean;
  /** GPT2-Chinese: every character with Python's str.isdigit() becomes its own word. */
  splitDigits: boolean;
}

/** HF BasicTokenizer.tokenize: clean, space out CJK (and digits), whitespace-split, lower-case + strip accents, split punctuation. */
export function basicTokenize(text: string, options: BasicTokenizeOptions): string[] {
  const out: string[] = [];
  const alone = (options.tokenizeChineseChars ? CHINESE : 0) | (options.splitDigits ? DIGIT : 0);
  let word = '';
  const endWord = (): void => {
    if (word === '') return;
    const normalized = !options.doLowerCase ? word : /^[\x00-\x7f]*$/.test(word) ? word.toLowerCase() : stripAccents(word.toLowerCase());
    splitOnPunctuation(normalized, out);
    word = '';
  };
  for (const ch of text) {
    const cls = charClass(ch.codePointAt(0)!);
    if (cls & DROP) continue;
    if (cls & SPACE) endWord();
    else if (cls & alone) {
      endWord();
      word = ch;
      endWord();
    } else word += ch;
  }
  endWord();
  return out;
}

/** NFD, then drop nonspacing marks: "café" -> "cafe". Full-width letters stay (NFD is not NFKD). */
function stripAccents(word: string): string {
  return word.normalize('NFD').replace(/\p{Mn}/gu, '');
}

/** "it's" -> it ' s: each punctuation character is a word of its own. Appends to `out`. */
function splitOnPunctuation(word: string, out: string[]): void {
  let current = '';
  for (const ch of word) {
    if (charClass(ch.codePointAt(0)!) & PUNCT) {
      if (current !== '') out.push(current);
      out.push(ch);
      current = '';
    } else current += ch;
  }
  if (current !== '') out.push(current);
}

// Character classes, as bit flags. Unicode property regexes are the slow part of tokenizing, so each BMP
// code point is classified once and remembered (bit 0x80 marks "done"); astral ones are rare and recomputed.
const DROP = 1; // removed by _clean_text: NUL, U+FFFD, control/format (category C*) except \t \n \r
const SPACE = 2; // separates words
const CHINESE = 4;
const DIGIT = 8;
const PUNCT = 16;
const bmpClasses = new Uint8Array(0x10000);

function charClass(cp: number): number {
  if (cp >= 0x10000) return classify(cp);
  if (bmpClasses[cp] === 0) bmpClasses[cp] = classify(cp) | 0x80;
  return bmpClasses[cp];
}

function classify(cp: number): number {
  const ch = String.fromCodePoint(cp);
  const control = ch !== '\t' && ch !== '\n' && ch !== '\r' && /^\p{C}$/u.test(ch);
  if (cp === 0 || cp === 0xfffd || control) return DROP;
  // _clean_text turns \t \n \r and Zs into ' ', then whitespace_tokenize splits with Python's str.split(),
  // which also splits on U+2028/U+2029 (Zl/Zp, kept by cleaning). JS \s is that set once C* is dropped
  // (the two disagree only on U+001C-U+001F, U+0085 and U+FEFF, all control/format characters).
  if (/^\s$/u.test(ch)) return SPACE;
  return (isChineseChar(cp) ? CHINESE : 0) | (isPythonDigit(ch) ? DIGIT : 0) | (isPunctuation(cp, ch) ? PUNCT : 0);
}

/** Unicode P* plus every non-alphanumeric ASCII character ("$", "^", "`" are symbols in Unicode, punctuation to BERT). */
function isPunctuation(cp: number, ch: string): boolean {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return /^\p{P}$/u.test(ch);
}

/** BERT's "Chinese character": the CJK Unified Ideographs blocks (not kana, not hangul). */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/**
 * Python's str.isdigit(): Numeric_Type Decimal (JS \p{Nd}) or Digit. JS regexes cannot see Numeric_Type,
 * so the Digit-but-not-Decimal code points are listed: superscripts/subscripts, circled and parenthesised
 * digits, dingbat digits, Ethiopic, New Tai Lue, Kharoshthi, Rumi, Brahmi numbers, digits with full stop/comma
 * (from Python 3.11, Unicode 14).
 */
const DIGIT_NOT_DECIMAL: readonly (readonly [number, number])[] = [
  [0xb2, 0xb3], [0xb9, 0xb9], [0x1369, 0x1371], [0x19da, 0x19da], [0x2070, 0x2070], [0x2074, 0x2079],
  [0x2080, 0x2089], [0x2460, 0x2468], [0x2474, 0x247c], [0x2488, 0x2490], [0x24ea, 0x24ea], [0x24f5, 0x24fd],
  [0x24ff, 0x24ff], [0x2776, 0x277e], [0x2780, 0x2788], [0x278a, 0x2792], [0x10a40, 0x10a43], [0x10e60, 0x10e68],
  [0x11052, 0x1105a], [0x1f100, 0x1f10a],
];

export function isPythonDigit(ch: string): boolean {
  if (/^\p{Nd}$/u.test(ch)) return true;
  const cp = ch.codePointAt(0)!;
  return DIGIT_NOT_DECIMAL.some(([lo, hi]) => cp >= lo && cp <= hi);
}

/** HF clean_up_tokenization: glue English punctuation and contractions back ("it ' s" -> "it's"). */
function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
