// GPT2-Chinese's data pipeline: pieces with [MASK]/[CLS]/[SEP], windows, epochs, train_single, and corpus files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { batchTokens, buildPieces, buildSinglePieces, epochBatches, estimatedTotalSteps, windowStarts } from '../datasets/gpt2_chinese.js';
import { bundledCorpusPath, readCorpus } from '../datasets/corpus.js';
import type { Tokenizer } from '../tokenizers/index.js';

/** A character-level stand-in tokenizer: [SEP]-style tokens stay whole, every other non-space char is a token. */
function charTokenizer(vocab: string[]): Tokenizer {
  const ids = new Map(vocab.map((t, i) => [t, i]));
  const tokenize = (text: string): string[] => text.match(/\[[A-Z]+\]|\S/gu) ?? [];
  return {
    vocabSize: vocab.length,
    padTokenId: ids.get('[PAD]'),
    unkTokenId: ids.get('[UNK]'),
    clsTokenId: ids.get('[CLS]'),
    sepTokenId: ids.get('[SEP]'),
    maskTokenId: ids.get('[MASK]'),
    eosTokenId: undefined,
    tokenize,
    encode: (text) => tokenize(text).map((t) => ids.get(t) ?? ids.get('[UNK]')!),
    decode: (list) => list.map((i) => vocab[i]).join(''),
    tokenToId: (t) => ids.get(t),
    idToToken: (i) => vocab[i],
  };
}

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '春', '花', '秋', '月', '何', '时', '了'];
const tok = charTokenizer(VOCAB);

describe('windows', () => {
  it('every stride, plus one window aligned to the end; none for a piece shorter than n_ctx', () => {
    // Worked by hand from the loop in gpt2.md §6.
    expect(windowStarts(10, 4, 3)).toEqual([0, 3, 6]);
    expect(windowStarts(9, 4, 4)).toEqual([0, 4, 5]);
    expect(windowStarts(4, 4, 2)).toEqual([0]);
    expect(windowStarts(3, 4, 2)).toEqual([]);
    expect(() => windowStarts(10, 4, 0)).toThrow(/stride must be a positive integer/);
  });
});

describe('pieces', () => {
  it('wraps each kept article as [MASK] … [CLS], turns newlines into [SEP], drops short articles, splits into pieces', () => {
    // 7 articles into 3 pieces: chunks of 2, 2 and 3 (the last takes the remainder).
    const articles = ['春花', '秋月\n何时', '了', '春花秋月', '何时了', '花', '月月'];
    const pieces = buildPieces(articles, tok, { numPieces: 3, minLength: 1 });
    const [M, C, S] = [4, 2, 3];
    expect(pieces.map((p) => Array.from(p))).toEqual([
      [M, 5, 6, C, M, 7, 8, S, 9, 10, C], // '秋月 [SEP] 何时' has > 1 chars
      [M, 5, 6, 7, 8, C], // '了' (1 char) is dropped
      [M, 9, 10, 11, C, M, 8, 8, C], // '花' dropped
    ]);
    // Unknown characters become [UNK]; a piece left with no article disappears.
    expect(Array.from(buildPieces(['春X花', '了'], tok, { numPieces: 2, minLength: 2 })[0]!)).toEqual([M, 5, 1, 6, C]);
    expect(buildPieces(['春X花', '了'], tok, { numPieces: 2, minLength: 2 })).toHaveLength(1);
  });

  it('train_single: one text cut into equal character spans, no article markers', () => {
    const pieces = buildSinglePieces(['春花秋', '月何时了'], tok, { numPieces: 2 });
    expect(pieces.map((p) => Array.from(p))).toEqual([[5, 6, 7], [8, 9, 10, 11]]);
  });

  it('a vocabulary without the markers is refused', () => {
    const bad = charTokenizer(['[PAD]', '[UNK]', '春']);
    expect(() => buildPieces(['春春'], bad, { minLength: 0 })).toThrow(/no \[MASK\] token/);
  });
});

describe('epochs', () => {
  const lengths = [50, 7, 33, 3];
  const opts = { nCtx: 8, stride: 5, batchSize: 3, seed: 42, epoch: 0 };

  it('uses each window at most once, drops each piece\'s last partial batch, and is a pure function of (seed, epoch)', () => {
    const batches = epochBatches(lengths, opts);
    const expected = lengths.reduce((n, len) => n + Math.floor(windowStarts(len, 8, 5).length / 3), 0);
    expect(batches).toHaveLength(expected);
    const seen = new Set<string>();
    for (const b of batches) {
      expect(b.windows).toHaveLength(3);
      for (const [p, s] of b.windows) {
        expect(windowStarts(lengths[p]!, 8, 5)).toContain(s);
        expect(seen.has(`${p}:${s}`)).toBe(false);
        seen.add(`${p}:${s}`);
      }
    }
    expect(epochBatches(lengths, opts)).toEqual(batches);
    expect(epochBatches(lengths, { ...opts, epoch: 1 })).not.toEqual(batches);
  });

  it('batchTokens lays the windows out as [batch, n_ctx]', () => {
    const pieces = [Int32Array.from({ length: 12 }, (_, i) => i), Int32Array.from({ length: 9 }, (_, i) => 100 + i)];
    const tokens = batchTokens(pieces, { windows: [[1, 1], [0, 4]] }, 3);
    expect(Array.from(tokens)).toEqual([101, 102, 103, 4, 5, 6]);
  });

  it('estimates total steps as GPT2-Chinese does', () => {
    // int(full_len / stride * epochs / batch_size / gradient_accumulation)
    expect(estimatedTotalSteps(100_000, { stride: 768, epochs: 5, batchSize: 8, gradientAccumulation: 2 })).toBe(40);
  });
});

describe('corpus files', () => {
  it('reads json, jsonl, txt and gz; reports malformed JSON with line and column', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-corpus-'));
    try {
      const f = (name: string, data: string | Uint8Array): string => {
        writeFileSync(path.join(tmp, name), data);
        return path.join(tmp, name);
      };
      expect(await readCorpus(f('a.json', '["春花", "秋月\\n何时"]'))).toEqual(['春花', '秋月\n何时']);
      expect(await readCorpus(f('b.jsonl', '"春花"\n\n"秋月"\n'))).toEqual(['春花', '秋月']);
      expect(await readCorpus(f('c.txt', '春花\n秋月\n\n何时了\n'))).toEqual(['春花\n秋月', '何时了']);
      expect(await readCorpus(f('d.json.gz', gzipSync(new TextEncoder().encode('["了"]'))))).toEqual(['了']);
      await expect(readCorpus(f('e.json', '[\n  "春花",\n  "秋月"\n  "何时"\n]'))).rejects.toThrow(/e\.json: malformed JSON at line 4, column 3/);
      await expect(readCorpus(f('e2.json', '["ok",\n  oops]'))).rejects.toThrow(/e2\.json: malformed JSON at line 2, column 3/);
      await expect(readCorpus(f('e3.json', '["unterminated'))).rejects.toThrow(/e3\.json: malformed JSON at line 1, column 15/);
      await expect(readCorpus(f('f.json', '{"a": 1}'))).rejects.toThrow(/expected a JSON array of article strings/);
      await expect(readCorpus(f('g.json', '["a", 3]'))).rejects.toThrow(/article 1 is a number/);
      await expect(readCorpus(f('h.json', '[]'))).rejects.toThrow(/the corpus is empty/);
      await expect(readCorpus(path.join(tmp, 'missing.json'))).rejects.toThrow(/cannot read corpus/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('the bundled Song-ci corpus has its 21,050 poems', async () => {
    const poems = await readCorpus(bundledCorpusPath());
    expect(poems).toHaveLength(21050);
    expect(poems[0]!.startsWith('导引\n')).toBe(true);
  });
});
