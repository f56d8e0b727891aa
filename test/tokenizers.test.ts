// Tokenizers: reference ids (../shared/data/tokenizer-reference), GPT2-Chinese specifics, round trips, loading, make_vocab.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from './helpers.js';
import {
  BertTokenizer,
  GPT2Tokenizer,
  bytesToUnicode,
  formatVocabFile,
  gpt2PreTokenize,
  makeVocab,
  parseMerges,
  parseVocabText,
  postprocessGpt2Chinese,
} from '../tokenizers/index.js';
import { bundledDataDir, bundledVocabPath, loadTokenizer, type BundledVocab } from '../tokenizers/node.js';

const SHARED = fileURLToPath(new URL('../../shared/data/', import.meta.url));
const REFERENCE = JSON.parse(readFileSync(join(SHARED, 'tokenizer-reference/reference.json'), 'utf8')) as {
  about: string;
  gpt2_r50k: Record<string, number[]>;
  'bert-base-chinese': Record<string, { ids: number[]; tokens: string[] }>;
};

/** Vocab lines read independently of the tokenizer under test: split on "\n" only, id = line number. */
function vocabLines(file: string): string[] {
  return readFileSync(join(SHARED, 'vocab', file), 'utf8').split('\n');
}
const SMALL = vocabLines('gpt2-chinese-vocab_small.txt');
const idInSmall = (token: string): number => {
  const id = SMALL.indexOf(token);
  if (id < 0) throw new Error(`test setup: ${token} is not in vocab_small`);
  return id;
};

/** Random well-formed text mixing scripts, emoji, ZWJ, combining marks, whitespace of every kind and control characters. */
function randomText(next: () => number, maxLength: number): string {
  const pools: (readonly [number, number])[] = [
    [0x20, 0x7e], [0x00, 0x1f], [0x7f, 0xff], [0x300, 0x36f], [0x400, 0x4ff], [0x3040, 0x30ff], [0x4e00, 0x9fff],
    [0xff01, 0xff5e], [0x1f300, 0x1faff], [0x200d, 0x200d], [0x2028, 0x2029], [0xfeff, 0xfeff], [0x85, 0x85],
    [0x10000, 0x10ffff], [0xe000, 0xfffd],
  ];
  const whitespace = [' ', ' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u3000', "'s", "'ll"];
  let text = '';
  const length = Math.floor(next() * maxLength);
  for (let i = 0; i < length; i++) {
    if (next() < 0.2) {
      text += whitespace[Math.floor(next() * whitespace.length)];
      continue;
    }
    const [lo, hi] = pools[Math.floor(next() * pools.length)]!;
    text += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
  }
  return text;
}

describe('bundled data files', () => {
  it('are byte-identical copies of the shared vocabularies', () => {
    for (const [bundled, shared] of [
      ['bert-base-chinese-vocab.txt', 'vocab/bert-base-chinese-vocab.txt'],
      ['gpt2-chinese-vocab_small.txt', 'vocab/gpt2-chinese-vocab_small.txt'],
    ]) {
      expect(readFileSync(join(bundledDataDir(), bundled!)).equals(readFileSync(join(SHARED, shared!)))).toBe(true);
    }
  });

  it('parseVocabText keeps U+2028 as a token (bert-base-chinese id 343) and ignores the final newline', () => {
    const tokens = parseVocabText(readFileSync(bundledVocabPath('bert-base-chinese'), 'utf8'));
    expect(tokens.length).toBe(21128);
    expect(tokens[343]).toBe('\u2028');
    expect([tokens[0], tokens[100], tokens[101], tokens[102], tokens[103]]).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    // vocab_small.txt has no final newline; its last line is still a token.
    expect(parseVocabText(readFileSync(bundledVocabPath('gpt2-chinese-small'), 'utf8')).length).toBe(13317);
    expect(parseVocabText('a\r\nb\r\n')).toEqual(['a', 'b']);
  });
});

describe('GPT-2 byte-level BPE', () => {
  const gpt2 = loadTokenizer(bundledVocabPath('gpt2')) as GPT2Tokenizer;

  it('reads OpenAI\'s files: 50257 tokens, eos 50256, no other special ids', () => {
    expect(gpt2).toBeInstanceOf(GPT2Tokenizer);
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosTokenId).toBe(50256);
    expect(gpt2.idToToken(50256)).toBe('<|endoftext|>');
    expect([gpt2.padTokenId, gpt2.unkTokenId, gpt2.clsTokenId, gpt2.sepTokenId, gpt2.maskTokenId]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it.each(Object.entries(REFERENCE.gpt2_r50k))('encodes %j to the reference ids and decodes back', (text, ids) => {
    expect(gpt2.encode(text)).toEqual(ids);
    expect(gpt2.decode(ids)).toBe(text);
    expect(gpt2.tokenize(text).map((t) => gpt2.tokenToId(t))).toEqual(ids);
  });

  it('encodes <|endoftext|> as text by default (as the reference does) and as id 50256 when asked', () => {
    expect(gpt2.encode('<|endoftext|>')).toEqual(REFERENCE.gpt2_r50k['<|endoftext|>']);
    expect(gpt2.encode('<|endoftext|>', { parseSpecialTokens: true })).toEqual([50256]);
    expect(gpt2.encode('<|endoftext|> inside text', { parseSpecialTokens: true })).toEqual([50256, 2641, 2420]);
    const hf = loadTokenizer(bundledVocabPath('gpt2'), { parseSpecialTokens: true });
    expect(hf.encode('a<|endoftext|>a')).toEqual([64, 50256, 64]);
    expect(hf.tokenize('a<|endoftext|>')).toEqual(['a', '<|endoftext|>']);
    expect(gpt2.encode('hi', { addSpecialTokens: true })).toEqual(gpt2.encode('hi'));
  });

  it('decode keeps or skips the eos token', () => {
    const ids = [15496, 50256, 995];
    expect(gpt2.decode(ids)).toBe('Hello<|endoftext|> world');
    expect(gpt2.decode(ids, { skipSpecialTokens: true })).toBe('Hello world');
    expect(() => gpt2.decode([50257])).toThrow(/outside the vocabulary/);
  });

  it('bytesToUnicode maps printable bytes to themselves and the other 68 to U+0100…', () => {
    const map = bytesToUnicode();
    expect(new Set(map).size).toBe(256);
    expect([map[0x21], map[0x7e], map[0xa1], map[0xff]]).toEqual(['!', '~', '¡', 'ÿ']);
    expect([map[0x00], map[0x20], map[0x0a], map[0xad]]).toEqual(['Ā', 'Ġ', 'Ċ', 'Ń']);
  });

  it('pre-tokenizes whitespace as Python\'s regex module does (U+0085 is \\s, U+FEFF is not)', () => {
    // Expected pieces from regex.findall(OpenAI's pattern, text) with the Python `regex` module 2026.5.9.
    expect(gpt2PreTokenize('x \x85\x85y')).toEqual(['x', ' \x85', '\x85', 'y']);
    expect(gpt2PreTokenize('a\ufeff\ufeff  b')).toEqual(['a', '\ufeff\ufeff', ' ', ' b']);
    expect(gpt2PreTokenize('a  \u2028 b')).toEqual(['a', '  \u2028', ' b']);
    expect(gpt2PreTokenize("I'LL we'd")).toEqual(['I', "'", 'LL', ' we', "'d"]);
  });

  it('round-trips random unicode exactly and matches encoder.py\'s merge loop', () => {
    const encoder = JSON.parse(readFileSync(join(bundledVocabPath('gpt2'), 'encoder.json'), 'utf8')) as Record<string, number>;
    const ranks = new Map(parseMerges(readFileSync(join(bundledVocabPath('gpt2'), 'vocab.bpe'), 'utf8')).map(([a, b], r) => [`${a} ${b}`, r]));
    const byteChars = bytesToUnicode();
    // encoder.py's bpe(): merge the lowest-ranked adjacent pair everywhere, rescan, repeat.
    const textbook = (text: string): number[] =>
      gpt2PreTokenize(text).flatMap((piece) => {
        let word = Array.from(new TextEncoder().encode(piece), (b) => byteChars[b]!);
        for (;;) {
          let best: string | undefined;
          let bestRank = Infinity;
          for (let i = 0; i + 1 < word.length; i++) {
            const rank = ranks.get(`${word[i]} ${word[i + 1]}`);
            if (rank !== undefined && rank < bestRank) [best, bestRank] = [`${word[i]} ${word[i + 1]}`, rank];
          }
          if (best === undefined) break;
          const merged: string[] = [];
          for (let i = 0; i < word.length; i++) {
            if (i + 1 < word.length && `${word[i]} ${word[i + 1]}` === best) merged.push(word[i]! + word[++i]!);
            else merged.push(word[i]!);
          }
          word = merged;
        }
        return word.map((symbol) => encoder[symbol]!);
      });
    const next = mulberry32(1234);
    const texts = ['', '\r\n', '\u2028', '\ufeffBOM first', '\x00\x01\x7f', 'aaaaaaaaaaaaaaaaaaaaaaaa'];
    for (let i = 0; i < 300; i++) texts.push(randomText(next, 80));
    // One pre-token can be a long run of letters (Chinese without punctuation).
    texts.push(Array.from({ length: 1000 }, () => String.fromCodePoint(0x4e00 + Math.floor(next() * 0x5200))).join(''));
    for (const text of texts) {
      const ids = gpt2.encode(text);
      expect(gpt2.decode(ids)).toBe(text);
      expect(ids).toEqual(textbook(text));
    }
  });

  it('decodeBytes streams: multi-token characters come out whole through a streaming TextDecoder', () => {
    const text = '深度学习 🤗 👨‍👩‍👧‍👦';
    const ids = gpt2.encode(text);
    const decoder = new TextDecoder();
    let streamed = '';
    for (const id of ids) streamed += decoder.decode(gpt2.decodeBytes([id]), { stream: true });
    streamed += decoder.decode();
    expect(streamed).toBe(text);
    expect(gpt2.decode(ids.slice(0, 1))).toBe('\ufffd'); // the first byte of 深 alone
  });

  it('rejects malformed files', () => {
    expect(() => GPT2Tokenizer.fromFiles('{not json', 'a b')).toThrow(/not valid JSON/);
    expect(() => GPT2Tokenizer.fromFiles('[1, 2]', 'a b')).toThrow(/JSON object/);
    expect(() => GPT2Tokenizer.fromFiles('{}', 'a b')).toThrow(/empty/);
    expect(() => GPT2Tokenizer.fromFiles('{"a": 0}', '#version: 0.2\na b c\n')).toThrow(/line 2/);
    expect(() => GPT2Tokenizer.fromFiles('{"a": -1}', 'a b')).toThrow(/non-negative integer/);
  });
});

describe('BERT WordPiece (bert-base-chinese)', () => {
  const bert = loadTokenizer(bundledVocabPath('bert-base-chinese')) as BertTokenizer;

  it('has the special-token ids of bert-base-chinese', () => {
    expect(bert).toBeInstanceOf(BertTokenizer);
    expect(bert.vocabSize).toBe(21128);
    expect([bert.padTokenId, bert.unkTokenId, bert.clsTokenId, bert.sepTokenId, bert.maskTokenId, bert.eosTokenId]).toEqual([0, 100, 101, 102, 103, undefined]);
  });

  it.each(Object.entries(REFERENCE['bert-base-chinese']))('encodes %j to the reference ids and tokens', (text, ref) => {
    expect(bert.encode(text)).toEqual(ref.ids);
    expect(bert.tokenize(text)).toEqual(ref.tokens.slice(1, -1));
    expect(bert.encode(text, { addSpecialTokens: false })).toEqual(ref.ids.slice(1, -1));
  });

  it('decodes the way HF decode does (spaces between tokens, ## glued, punctuation cleaned up)', () => {
    const ids = bert.encode("Hello world! It's 2026.");
    expect(bert.decode(ids)).toBe("[CLS] hello world! it's 2026. [SEP]");
    expect(bert.decode(ids, { skipSpecialTokens: true })).toBe("hello world! it's 2026.");
    expect(bert.decode(bert.encode('深度学习很有趣。'), { skipSpecialTokens: true })).toBe('深 度 学 习 很 有 趣 。');
    expect(() => bert.decode([21128])).toThrow(/outside the vocabulary/);
  });

  it('keeps special tokens atomic, case-sensitively, and cleans control characters and odd whitespace', () => {
    expect(bert.tokenize('你[MASK]好[SEP]')).toEqual(['你', '[MASK]', '好', '[SEP]']);
    expect(bert.tokenize('[sep]')).toEqual(['[', 'sep', ']']);
    expect(bert.tokenize('a\u0000b\u200bc\u2028d\ufffd')).toEqual(['abc', 'd'].flatMap((w) => bert.tokenize(w)));
    expect(bert.tokenize(' \t\n ')).toEqual([]);
  });
});

describe('GPT2-Chinese variant (vocab_small.txt)', () => {
  const tok = loadTokenizer(bundledVocabPath('gpt2-chinese-small'), { variant: 'gpt2-chinese' });
  const bert = loadTokenizer(bundledVocabPath('gpt2-chinese-small'));

  it('splits every digit, with str.isdigit() semantics (², ① and full-width digits too)', () => {
    expect(tok.tokenize('2026')).toEqual(['2', '0', '2', '6']);
    expect(tok.encode('2026')).toEqual(['2', '0', '2', '6'].map(idInSmall));
    expect(bert.tokenize('2026')).toEqual(['202', '##6']); // stock BERT keeps the number whole
    expect(tok.encode('x²①')).toEqual(['x', '²', '①'].map(idInSmall));
    expect(bert.tokenize('x²')).toEqual(['x', '##²']);
    expect(tok.encode('１２')).toEqual(['１', '２'].map(idInSmall));
  });

  it('keeps [SEP] atomic inside text and adds no [CLS]/[SEP] unless asked', () => {
    expect(tok.tokenize('第一段[SEP]第二段')).toEqual(['第', '一', '段', '[SEP]', '第', '二', '段']);
    expect(tok.encode('ab[SEP]cd')).toEqual(['ab', '[SEP]', 'cd'].map(idInSmall));
    expect(idInSmall('[SEP]')).toBe(102);
    expect(tok.encode('今天', { addSpecialTokens: true })).toEqual([idInSmall('[CLS]'), idInSmall('今'), idInSmall('天'), idInSmall('[SEP]')]);
  });

  it('lower-cases and strips accents, and makes a word over 100 characters [UNK]', () => {
    expect(tok.encode('HELLO Wörld')).toEqual(['hello', 'world'].map(idInSmall));
    expect(tok.encode('a'.repeat(101))).toEqual([idInSmall('[UNK]')]);
    expect(tok.encode('a'.repeat(100))).not.toContain(idInSmall('[UNK]'));
  });

  it('decodes with GPT2-Chinese\'s post-processing', () => {
    expect(tok.decode(tok.encode('[MASK]今天 hello world[SEP]明天2026[CLS]'))).toBe('今天hello world\n明天2026');
    expect(tok.decode(tok.encode('[CLS]今天[SEP]'), { skipSpecialTokens: true })).toBe('今天');
  });

  it('postprocessGpt2Chinese follows generate.py and generate_texts.py', () => {
    const tokens = ['[MASK]', 'hello', 'world', '##s', 'are', '2', '0', '[SEP]', '好', '[CLS]', 'end'];
    expect(postprocessGpt2Chinese(tokens)).toBe('hello worldsare20\n好\n\nend');
    expect(postprocessGpt2Chinese(tokens, 'generate_texts')).toBe('hello worldsare20\n好\nend');
    expect(postprocessGpt2Chinese(['c', '#', '#', '[CLS]'])).toBe('c');
  });
});

describe('loadTokenizer', () => {
  const dirs: string[] = [];
  const tempDir = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenizers-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('picks the tokenizer by file name, for files and folders', () => {
    const gpt2Dir = bundledVocabPath('gpt2');
    expect(loadTokenizer(join(gpt2Dir, 'encoder.json'))).toBeInstanceOf(GPT2Tokenizer);
    expect(loadTokenizer(join(gpt2Dir, 'vocab.bpe'))).toBeInstanceOf(GPT2Tokenizer);
    const hfDir = tempDir({});
    copyFileSync(join(gpt2Dir, 'encoder.json'), join(hfDir, 'vocab.json'));
    copyFileSync(join(gpt2Dir, 'vocab.bpe'), join(hfDir, 'merges.txt'));
    for (const path of [hfDir, join(hfDir, 'merges.txt'), join(hfDir, 'vocab.json')]) {
      const t = loadTokenizer(path);
      expect(t).toBeInstanceOf(GPT2Tokenizer);
      expect(t.encode('Hello world')).toEqual([15496, 995]);
    }
    const wpDir = tempDir({ 'vocab.txt': '[PAD]\n[UNK]\nhello\n' });
    expect(loadTokenizer(wpDir).encode('hello bye', { addSpecialTokens: false })).toEqual([2, 1]);
  });

  it('says what it looked for when a folder holds nothing it knows', () => {
    const dir = tempDir({ 'notes.md': 'hi' });
    expect(() => loadTokenizer(dir)).toThrow(/no tokenizer files in .*looked for vocab\.txt.*encoder\.json \+ vocab\.bpe.*vocab\.json \+ merges\.txt/);
    expect(() => loadTokenizer(join(dir, 'notes.md'))).toThrow(/unrecognised tokenizer file/);
    expect(() => loadTokenizer(join(dir, 'missing.txt'))).toThrow(/does not exist/);
    expect(() => loadTokenizer(tempDir({ 'encoder.json': '{}' }))).toThrow(/vocab\.bpe is missing/);
    expect(() => bundledVocabPath('gpt3' as BundledVocab)).toThrow(/unknown bundled vocabulary "gpt3"/);
  });

  it('rejects an empty vocabulary and one without [UNK]', () => {
    expect(() => loadTokenizer(join(tempDir({ 'vocab.txt': '' }), 'vocab.txt'))).toThrow(/empty/);
    expect(() => BertTokenizer.fromVocabText('\n')).toThrow(/no \[UNK\]/);
    expect(() => loadTokenizer(tempDir({ 'vocab.txt': '[PAD]\nhello\n' }))).toThrow(/no \[UNK\]/);
    expect(() => new BertTokenizer([])).toThrow(/empty/);
    const noCls = new BertTokenizer(['[UNK]', 'a']);
    expect(() => noCls.encode('a', { addSpecialTokens: true })).toThrow(/\[CLS\] and \[SEP\]/);
  });
});

describe('makeVocab', () => {
  const corpus = ['今天天气好。', '今天 Hello 2026!', '天气[SEP]好'];
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

  it('orders special tokens, then tokens by descending count, ties by first appearance', () => {
    // Counts by hand: 天4 今2 气2 好2 2:2, then 。 hello 0 6 ! once each; [SEP] in the text is not counted.
    expect(makeVocab(corpus)).toEqual([...specials, '天', '今', '气', '好', '2', '。', 'hello', '0', '6', '!']);
    expect(makeVocab(corpus, { minFrequency: 2 })).toEqual([...specials, '天', '今', '气', '好', '2']);
    expect(makeVocab(corpus, { maxSize: 7 })).toEqual([...specials, '天', '今']);
    const makeVocabPy = ['[SEP]', '[CLS]', '[MASK]', '[PAD]', '[UNK]'];
    expect(makeVocab(corpus, { specialTokens: makeVocabPy, maxSize: 6 })).toEqual([...makeVocabPy, '天']);
  });

  it('round-trips through vocab.txt and the GPT2-Chinese WordPiece tokenizer', () => {
    const vocab = makeVocab(corpus);
    const text = formatVocabFile(vocab);
    expect(text.endsWith('好\n2\n。\nhello\n0\n6\n!\n')).toBe(true);
    const tok = BertTokenizer.fromVocabText(text, { variant: 'gpt2-chinese' });
    expect(tok.vocabSize).toBe(vocab.length);
    for (const line of corpus) expect(tok.encode(line)).not.toContain(tok.unkTokenId);
    expect(tok.decode(tok.encode('今天天气好。'))).toBe('今天天气好。');
    expect(tok.decode(tok.encode('今天 Hello 2026!'))).toBe('今天hello2026!');
    expect(tok.decode(tok.encode('天气[SEP]好'))).toBe('天气\n好');
  });

  it('rejects options that cannot make a usable vocabulary', () => {
    expect(() => makeVocab(corpus, { specialTokens: ['[PAD]'] })).toThrow(/\[UNK\]/);
    expect(() => makeVocab(corpus, { maxSize: 3 })).toThrow(/maxSize/);
    expect(() => makeVocab(corpus, { minFrequency: 0 })).toThrow(/minFrequency/);
    expect(() => formatVocabFile(['a\nb'])).toThrow(/newline/);
  });
});
