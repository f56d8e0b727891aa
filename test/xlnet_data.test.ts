// XLNet pretraining data (datasets/xlnet.ts): corpus streams, rows, a/b split, span masks, permutation masks, batches, HF's PLM collator.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { Generator } from '../src/random.js';
import { XLNetLMHeadModel } from '../src/models/xlnet.js';
import { SentencePieceTokenizer } from '../tokenizers/sentencepiece.js';
import type { Tokenizer } from '../tokenizers/index.js';
import {
  XLNetPretrainingData,
  batchifyStream,
  isXLNetStartPiece,
  localPermutation,
  plmCollate,
  sampleSpanMask,
  sentenceStreamFromArticles,
  sentenceStreamFromText,
  splitAAndB,
  type SentenceStream,
  type XLNetBatch,
  type XLNetPretrainOptions,
} from '../datasets/xlnet.js';
import { useGpu } from './helpers.js';

useGpu();

const sp = SentencePieceTokenizer.fromModelBytes(new Uint8Array(readFileSync(new URL('../tokenizers/data/songci_unigram_8k.model', import.meta.url))), { mode: 'xlnet' });
const ARTICLES = JSON.parse(new TextDecoder().decode(gunzipSync(new Uint8Array(readFileSync(new URL('../datasets/data/songci.json.gz', import.meta.url)))))) as string[];
const [SEP, CLS, MASK, EOD] = [4, 3, 6, 7];
/** About 27k tokens of Song ci: enough rows for several steps of every shape below. */
const SONGCI = sentenceStreamFromArticles(ARTICLES.slice(0, 300), sp);

/** A word-level stand-in: each whitespace-separated word is its characters, the first one spelt "▁c". */
function charTokenizer(vocab: readonly string[]): Tokenizer {
  const ids = new Map(vocab.map((t, i) => [t, i]));
  const tokenize = (text: string): string[] => text.split(/\s+/).filter((word) => word !== '').flatMap((word) => [...word].map((c, k) => (k === 0 ? `\u2581${c}` : c)));
  return {
    vocabSize: vocab.length,
    padTokenId: ids.get('<pad>'),
    unkTokenId: ids.get('<unk>'),
    clsTokenId: ids.get('<cls>'),
    sepTokenId: ids.get('<sep>'),
    maskTokenId: ids.get('<mask>'),
    eosTokenId: ids.get('</s>'),
    tokenize,
    encode: (text) => tokenize(text).map((t) => ids.get(t) ?? 0),
    decode: (list) => list.map((i) => vocab[i]).join(''),
    tokenToId: (t) => ids.get(t),
    idToToken: (i) => vocab[i],
  };
}

const SPECIALS = ['<unk>', '<s>', '</s>', '<cls>', '<sep>', '<pad>', '<mask>', '<eod>', '<eop>'];
const LETTERS = [...'abcdefgh'].flatMap((c) => [`\u2581${c}`, c]);
const chars = charTokenizer([...SPECIALS, ...LETTERS]);
/** Id of "▁c" (word start) or "c" in the char vocabulary. */
const cid = (piece: string): number => chars.tokenToId(piece)!;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const sum = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]!;
  return s;
};

/**
 * The order in which every node sees exactly the nodes before it (not counting itself), from a visibility
 * relation; throws when no such order exists. Sorting by how many others a node sees gives the only candidate.
 */
function consistentOrder(nodes: readonly number[], sees: (i: number, j: number) => boolean): number[] {
  const visible = new Map(nodes.map((i) => [i, nodes.filter((j) => j !== i && sees(i, j))]));
  const order = [...nodes].sort((p, q) => visible.get(p)!.length - visible.get(q)!.length);
  order.forEach((node, k) => {
    const before = new Set(order.slice(0, k));
    const got = visible.get(node)!;
    if (got.length !== k || !got.every((j) => before.has(j))) {
      throw new Error(`no consistent order: position ${node} sees [${got}] but would need exactly [${order.slice(0, k)}]`);
    }
  });
  return order;
}

describe('corpus to one id stream', () => {
  const [a, b, c, d] = ['\u2581a', 'b', '\u2581c', 'd'].map(cid);
  it('one sentence per line with a flag flipping per line; a blank line is one <eod> glued to the sentence before it', () => {
    // Flags by hand from _create_data: line 1 → 1, line 2 → 0, blank: flip to 1, flip back: <eod> gets 0; next line 1.
    const s = sentenceStreamFromText('ab cd\nc\n\nab\n', chars);
    expect(Array.from(s.ids)).toEqual([a, b, c, d, c, EOD, a, b]);
    expect(Array.from(s.sentIds)).toEqual([1, 1, 1, 1, 0, 0, 1, 1]);
    // Two blank lines give two <eod>s; \r\n line ends and surrounding spaces are stripped.
    const two = sentenceStreamFromText('ab\r\n  \r\n\n cd \n', chars);
    expect(Array.from(two.ids)).toEqual([a, b, EOD, EOD, c, d]);
    expect(Array.from(two.sentIds)).toEqual([1, 1, 1, 1, 0, 0]);
    // useEod false: blank lines vanish and do not flip the flag.
    const noEod = sentenceStreamFromText('ab cd\nc\n\nab', chars, { useEod: false });
    expect(Array.from(noEod.ids)).toEqual([a, b, c, d, c, a, b]);
    expect(Array.from(noEod.sentIds)).toEqual([1, 1, 1, 1, 0, 1, 1]);
  });

  it('articles: each non-blank line is a sentence and each article one document, as the same text with blank lines between', () => {
    const articles = ['ab\ncd\n\nc', 'd', 'ab cd'];
    const fromArticles = sentenceStreamFromArticles(articles, chars);
    const fromText = sentenceStreamFromText('ab\ncd\nc\n\nd\n\nab cd\n\n', chars);
    expect(Array.from(fromArticles.ids)).toEqual(Array.from(fromText.ids));
    expect(Array.from(fromArticles.sentIds)).toEqual(Array.from(fromText.sentIds));
    expect(Array.from(fromArticles.ids).filter((id) => id === EOD)).toHaveLength(3);
  });

  it('Song ci with the bundled SentencePiece model: each article is its lines encoded without <sep>/<cls>, then <eod>', () => {
    const s = sentenceStreamFromArticles(ARTICLES.slice(0, 2), sp);
    const lines = ARTICLES[0]!.split('\n');
    const first = lines.flatMap((line) => sp.encode(line, { addSpecialTokens: false }));
    expect(Array.from(s.ids.subarray(0, first.length + 1))).toEqual([...first, EOD]);
    expect(first).not.toContain(SEP);
    expect(first).not.toContain(CLS);
    // The flag changes exactly at line starts (plus nowhere else), and <eod> shares the last line's flag.
    const boundaries = range(first.length).filter((t) => t > 0 && s.sentIds[t] !== s.sentIds[t - 1]);
    let at = 0;
    const lineStarts = lines.slice(0, -1).map((line) => (at += sp.encode(line, { addSpecialTokens: false }).length));
    expect(boundaries).toEqual(lineStarts);
    expect(s.sentIds[first.length]).toBe(s.sentIds[first.length - 1]);
    expect(s.ids.length).toBe(s.sentIds.length);
  });

  it('refuses a vocabulary without <eod> unless useEod is false', () => {
    const noEod = charTokenizer(['<unk>', '<cls>', '<sep>', ...LETTERS]);
    expect(() => sentenceStreamFromText('ab', noEod)).toThrow(/no <eod> piece.*useEod: false/);
    expect(Array.from(sentenceStreamFromText('ab\n\nab', noEod, { useEod: false }).ids)).toHaveLength(4);
  });
});

describe('batchify', () => {
  const stream: SentenceStream = { ids: Int32Array.from(range(23), (i) => 100 + i), sentIds: Uint8Array.from(range(23), (i) => (i >> 2) & 1) };
  it('B forward rows of consecutive stretches, the remainder dropped', () => {
    const rows = batchifyStream(stream, 3, false);
    expect(rows.length).toBe(7);
    expect(range(3).map((r) => Array.from(rows.ids.subarray(r * 7, r * 7 + 7)))).toEqual(range(3).map((r) => range(7).map((k) => 100 + r * 7 + k)));
    expect(Array.from(rows.sentIds)).toEqual(Array.from(stream.sentIds.subarray(0, 21)));
  });

  it('biData: rows B/2..B-1 are rows 0..B/2-1 reversed, ids and flags', () => {
    const rows = batchifyStream(stream, 4, true);
    expect(rows.length).toBe(11);
    for (let r = 0; r < 2; r++) {
      const fwd = Array.from(stream.ids.subarray(r * 11, r * 11 + 11));
      expect(Array.from(rows.ids.subarray(r * 11, (r + 1) * 11))).toEqual(fwd);
      expect(Array.from(rows.ids.subarray((2 + r) * 11, (3 + r) * 11))).toEqual([...fwd].reverse());
      expect(Array.from(rows.sentIds.subarray((2 + r) * 11, (3 + r) * 11))).toEqual(Array.from(stream.sentIds.subarray(r * 11, r * 11 + 11)).reverse());
    }
  });

  it('refuses an odd batch with biData', () => {
    expect(() => batchifyStream(stream, 3, true)).toThrow(/biData needs an even batch size.*got 3/);
    expect(() => batchifyStream(stream, 0, false)).toThrow(/batchSize must be a positive integer/);
  });
});

describe('split_a_and_b', () => {
  // Sentences of lengths 3, 2, 4, 3, 1, 5, 2, 4: boundaries at 3, 5, 9, 12, 13, 18, 20.
  const lengths = [3, 2, 4, 3, 1, 5, 2, 4];
  const sentIds = Uint8Array.from(lengths.flatMap((n, k) => new Array<number>(n).fill(k % 2)));
  const boundaries = new Set(range(sentIds.length).filter((t) => t > 0 && sentIds[t] !== sentIds[t - 1]));

  it('worked by hand: begin 0, totLen 5 has one cut (3); label 1 gives a = [0,3), b = [3,5)', () => {
    let seen1 = false;
    for (let seed = 0; seed < 20; seed++) {
      const s = splitAAndB(sentIds, 0, 5, new Generator(seed));
      if (s.label === 1) {
        expect(s).toEqual({ aStart: 0, aEnd: 3, bStart: 3, bEnd: 5, label: 1 });
        seen1 = true;
      } else {
        // Label 0: a runs to the only cut; b is 2 tokens somewhere, widened to whole sentences, trimmed back to 2.
        expect([s.aStart, s.aEnd]).toEqual([0, 3]);
        expect(s.bEnd - s.bStart).toBe(2);
        expect(s.bStart === 0 || boundaries.has(s.bStart)).toBe(true);
      }
    }
    expect(seen1).toBe(true);
  });

  it('over many seeds and begins: a starts at begin, len(a) + len(b) = totLen, cuts at sentence boundaries, label 1 about half the time', () => {
    let label1 = 0;
    let withCuts = 0;
    for (let seed = 0; seed < 400; seed++) {
      const g = new Generator(seed);
      const begin = seed % 8;
      const totLen = 4 + (seed % 7);
      const hasCut = range(sentIds.length).some((t) => t > begin && t - begin < totLen && boundaries.has(t));
      const s = splitAAndB(sentIds, begin, totLen, g);
      expect(s.aStart).toBe(begin);
      expect(s.aEnd - s.aStart + (s.bEnd - s.bStart)).toBe(totLen);
      expect(s.bEnd).toBeLessThanOrEqual(sentIds.length);
      if (s.label === 1) {
        // b starts at a's cut: a sentence boundary inside the first totLen tokens; a may have been trimmed since.
        expect(boundaries.has(s.bStart)).toBe(true);
        expect(s.bStart - begin).toBeLessThan(totLen);
        expect(s.aEnd).toBeLessThanOrEqual(s.bStart);
        label1++;
      } else {
        // b is widened to start at a sentence start and never reaches the row's last token.
        expect(s.bStart === 0 || boundaries.has(s.bStart)).toBe(true);
        expect(s.bEnd).toBeLessThan(sentIds.length);
      }
      if (hasCut) withCuts++;
      else expect(s.label).toBe(0);
    }
    expect(label1 / withCuts).toBeGreaterThan(0.4);
    expect(label1 / withCuts).toBeLessThan(0.6);
  });

  it('refuses a begin + totLen that leaves the row', () => {
    expect(() => splitAAndB(sentIds, 20, 4, new Generator(0))).toThrow(/must be inside the row of 24 tokens/);
  });
});

describe('span masking (_sample_mask)', () => {
  /** Maximal runs of 1s as [start, length]. */
  const runs = (mask: Uint8Array): [number, number][] => {
    const out: [number, number][] = [];
    for (let t = 0; t < mask.length; t++) if (mask[t] && !mask[t - 1]) out.push([t, 1]);
    else if (mask[t]) out[out.length - 1]![1]++;
    return out;
  };

  it('masks exactly the goal, for both units, forwards and backwards, whatever the length', () => {
    for (let seed = 0; seed < 60; seed++) {
      const len = 5 + ((seed * 7) % 90);
      const goal = seed % (len + 1);
      const starts = Uint8Array.from(range(len), (t) => (t * 13 + seed) % 3 === 0 ? 1 : 0);
      for (const spanUnit of ['pieces', 'words'] as const) {
        for (const reverse of [false, true]) expect(sum(sampleSpanMask(starts, { goal, spanUnit, reverse }, new Generator(seed)))).toBe(goal);
      }
    }
  });

  it("span lengths follow p(n) ∝ 1/n for n = 1..5 ('pieces', every piece a start piece)", () => {
    const counts = [0, 0, 0, 0, 0];
    for (let seed = 0; seed < 20; seed++) {
      // The walk needs about 6·goal positions, well inside 3000, so no random single positions are added.
      const mask = sampleSpanMask(new Uint8Array(3000).fill(1), { goal: 300 }, new Generator(seed));
      for (const [, n] of runs(mask)) counts[n - 1]!++;
    }
    const total = sum(counts);
    const harmonic = 1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5;
    counts.forEach((c, k) => expect(Math.abs(c / total - 1 / (k + 1) / harmonic)).toBeLessThan(0.04));
  });

  it("spans start at start pieces; 'pieces' spans are at most 5 pieces, 'words' spans whole words (cut only at the goal)", () => {
    // A start piece every 4 positions (words of 4 pieces); the goal is reached long before the end.
    const starts = Uint8Array.from(range(400), (t) => (t % 4 === 0 ? 1 : 0));
    for (let seed = 0; seed < 30; seed++) {
      const pieces = runs(sampleSpanMask(starts, { goal: 20 }, new Generator(seed)));
      for (const [start, n] of pieces) {
        expect(start % 4).toBe(0);
        expect(n).toBeLessThanOrEqual(5);
      }
      const words = runs(sampleSpanMask(starts, { goal: 20, spanUnit: 'words' }, new Generator(seed)));
      words.forEach(([start, n], k) => {
        expect(start % 4).toBe(0);
        if (k < words.length - 1) expect(n % 4).toBe(0);
      });
    }
  });

  it('reverse samples on the flipped segment and flips the mask back', () => {
    const starts = Uint8Array.from(range(57), (t) => (t % 3 === 1 || t === 56 ? 1 : 0));
    for (let seed = 0; seed < 20; seed++) {
      const backward = sampleSpanMask(starts, { goal: 12, reverse: true }, new Generator(seed));
      const flipped = sampleSpanMask(starts.slice().reverse(), { goal: 12 }, new Generator(seed));
      expect(Array.from(backward)).toEqual(Array.from(flipped).reverse());
    }
  });

  it("start pieces: '▁…', '<…>' and single ASCII punctuation, less the released list's ' = >", () => {
    expect(['\u2581春', '\u2581', '<eod>', '<sep>', '<', ',', '.', '?', '~', '"', '\\', '`', '_'].every(isXLNetStartPiece)).toBe(true);
    expect(['春', '何时', '。', 'a', ',,', '1', "'", '=', '>'].some(isXLNetStartPiece)).toBe(false);
  });

  it('refuses a goal longer than the segment and a context shorter than a span', () => {
    expect(() => sampleSpanMask(new Uint8Array(4), { goal: 5 }, new Generator(0))).toThrow(/goal 5 must be an integer in \[0, 4\]/);
    expect(() => sampleSpanMask(new Uint8Array(4), { goal: 1, maskAlpha: 1, maskBeta: 2 }, new Generator(0))).toThrow(/maskAlpha ≥ maskBeta/);
  });
});

describe('_local_perm', () => {
  it('every position masked: blocks of permSize in order, one permutation inside every block, each sees exactly what comes before it', () => {
    for (const [len, permSize] of [[12, 4], [12, 12], [16, 2], [9, 3]] as const) {
      for (let seed = 0; seed < 10; seed++) {
        const tokens = Int32Array.from(range(len), (t) => 20 + t);
        const { rank, permMask, target } = localPermutation(tokens, new Uint8Array(len).fill(1), permSize, new Set([SEP, CLS]), new Generator(seed));
        for (let p = 0; p < len; p++) {
          expect(rank[p]! - (p - (p % permSize))).toBe(rank[p % permSize]);
          expect(Math.floor(rank[p]! / permSize)).toBe(Math.floor(p / permSize));
        }
        expect(new Set(rank).size).toBe(len);
        expect(Array.from(target)).toEqual(new Array<number>(len).fill(1));
        for (let i = 0; i < len; i++) for (let j = 0; j < len; j++) expect(permMask[i * len + j]).toBe(rank[j]! < rank[i]! ? 0 : 1);
      }
    }
  });

  it('context sees only context; a target sees context and the masked/func positions before it, not itself; <sep>/<cls> see themselves', () => {
    const len = 10;
    const tokens = Int32Array.from([20, 21, SEP, 22, 23, 24, SEP, 25, 26, CLS]);
    for (let seed = 0; seed < 30; seed++) {
      const g = new Generator(1000 + seed);
      const masked = Uint8Array.from(range(len), () => (g.next() < 0.4 ? 1 : 0));
      const { rank, permMask, target } = localPermutation(tokens, masked, 5, new Set([SEP, CLS]), new Generator(seed));
      const func = (t: number): boolean => tokens[t] === SEP || tokens[t] === CLS;
      const context = (t: number): boolean => !masked[t] && !func(t);
      for (let i = 0; i < len; i++) {
        expect(target[i]).toBe(masked[i] && !func(i) ? 1 : 0);
        for (let j = 0; j < len; j++) {
          const seen = context(j) || (!context(i) && (rank[j]! < rank[i]! || (i === j && func(i))));
          expect(permMask[i * len + j]).toBe(seen ? 0 : 1);
        }
      }
    }
  });

  it('refuses a permSize that does not divide the half', () => {
    expect(() => localPermutation(new Int32Array(10), new Uint8Array(10), 4, new Set(), new Generator(0))).toThrow(/permSize must be a positive integer dividing the half length 10/);
  });
});

/** Every property a pretraining batch promises, row by row; throws with the first violation. */
function checkBatch(data: XLNetPretrainingData, batch: XLNetBatch, step: number): void {
  const { batchSize: B, seqLen: T, numPredict: P } = batch;
  const R = T / 2;
  const L = data.rows.length;
  expect([B, T, P]).toEqual([data.batchSize, data.seqLen, data.numPredict]);
  expect([batch.inputIds.length, batch.tokenTypeIds!.length, batch.permMask.length, batch.targetMapping.length, batch.labels.length]).toEqual([B * T, B * T, B * T * T, B * P * T, B * P]);
  for (let b = 0; b < B; b++) {
    const tokens = batch.inputIds.subarray(b * T, (b + 1) * T);
    const types = batch.tokenTypeIds!.subarray(b * T, (b + 1) * T);
    const masked = batch.isMasked.subarray(b * T, (b + 1) * T);
    const row = data.rows.ids.subarray(b * L, (b + 1) * L);
    const start = step * R;

    // Layout: the row's next R tokens ++ a ++ <sep> ++ b ++ <sep> ++ <cls>, a continuing the row.
    expect(Array.from(tokens.subarray(0, R))).toEqual(Array.from(row.subarray(start, start + R)));
    const seps = range(T).filter((t) => tokens[t] === SEP);
    expect(range(T).filter((t) => tokens[t] === CLS)).toEqual([T - 1]);
    expect(seps).toHaveLength(2);
    const [sep1, sep2] = seps as [number, number];
    expect(sep1).toBeGreaterThanOrEqual(R);
    expect(sep2).toBe(T - 2);
    expect(Array.from(tokens.subarray(R, sep1))).toEqual(Array.from(row.subarray(start + R, start + sep1)));
    const bSeg = Array.from(tokens.subarray(sep1 + 1, T - 2));
    const found = range(L - bSeg.length + 1).some((k) => bSeg.every((id, m) => row[k + m] === id));
    expect(found).toBe(true);
    expect(Array.from(types)).toEqual(range(T).map((t) => (t <= sep1 ? 0 : t < T - 1 ? 1 : 2)));

    // The mask: ceil(P/2) in the first half, floor(P/2) in the second; targets are the masked non-func positions.
    expect(sum(masked.subarray(0, R))).toBe(P - Math.floor(P / 2));
    expect(sum(masked.subarray(R))).toBe(Math.floor(P / 2));
    const func = (t: number): boolean => tokens[t] === SEP || tokens[t] === CLS;
    const targets = range(T).filter((t) => masked[t] && !func(t));
    expect(targets.length).toBe(P - range(T).filter((t) => masked[t] && func(t)).length);
    for (let k = 0; k < P; k++) {
      const mapRow = Array.from(batch.targetMapping.subarray((b * P + k) * T, (b * P + k + 1) * T));
      expect(mapRow).toEqual(range(T).map((t) => (t === targets[k] ? 1 : 0)));
      expect(batch.labels[b * P + k]).toBe(k < targets.length ? tokens[targets[k]!] : -100);
    }

    // Visibility. pm(i, j) = 1 means query i may not see token j.
    const pm = (i: number, j: number): boolean => batch.permMask[(b * T + i) * T + j] === 1;
    const context = (t: number): boolean => !masked[t] && !func(t);
    const wrong: string[] = [];
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        let want: boolean | undefined;
        if (i < R && j >= R) want = true; // the memory half never sees the second half
        else if (i >= R && j < R) want = false; // the second half sees all of the first
        else if (context(j)) want = false; // context is visible to its half
        else if (context(i)) want = true; // context sees no masked or func token
        else if (i === j) want = !func(i); // no target sees itself; <sep>/<cls> do
        if (want !== undefined && pm(i, j) !== want) wrong.push(`(${i},${j})`);
      }
    }
    expect(wrong).toEqual([]);
    // Among masked/func positions, one order per half in which each sees exactly those before it; with
    // permSize < R its blocks come in position order and one permutation orders every block.
    for (const [lo, hi] of [[0, R], [R, T]] as const) {
      const nodes = range(hi - lo).map((t) => lo + t).filter((t) => !context(t));
      const order = consistentOrder(nodes, (i, j) => !pm(i, j));
      const at = new Map(order.map((t, k) => [t, k]));
      const relation = new Map<string, boolean>();
      for (const p of nodes) {
        for (const q of nodes) {
          const [bp, bq] = [Math.floor((p - lo) / data.permSize), Math.floor((q - lo) / data.permSize)];
          if (bp < bq) expect(at.get(p)!).toBeLessThan(at.get(q)!);
          if (bp === bq && p !== q) {
            const key = `${(p - lo) % data.permSize},${(q - lo) % data.permSize}`;
            const before = at.get(p)! < at.get(q)!;
            expect(relation.get(key) ?? before).toBe(before);
            relation.set(key, before);
          }
        }
      }
    }
  }
}

/** Pretraining options over the shapes the property tests cover. */
const SHAPES: (Omit<XLNetPretrainOptions, 'seed'> & { seeds: number[] })[] = [
  { batchSize: 4, seqLen: 64, numPredict: 10, permSize: 32, seeds: [0, 1, 2] },
  { batchSize: 2, seqLen: 32, numPredict: 6, permSize: 8, spanUnit: 'words', seeds: [3, 4] },
  { batchSize: 3, seqLen: 48, numPredict: 9, permSize: 24, biData: false, seeds: [5, 6] },
  { batchSize: 2, seqLen: 8, numPredict: 2, permSize: 2, seeds: [7, 8] },
  { batchSize: 6, seqLen: 128, seeds: [9] },
  { batchSize: 1, seqLen: 16, numPredict: 16, permSize: 4, biData: false, seeds: [10] },
  { batchSize: 2, seqLen: 40, numPredict: 7, permSize: 5, maskAlpha: 4, maskBeta: 2, isStartPiece: () => true, seeds: [11] },
];

describe('pretraining batches (data_utils.py + the TF parser)', () => {
  it('masks, layout, targets and labels hold for every row over many seeds, shapes and steps', () => {
    for (const { seeds, ...options } of SHAPES) {
      for (const seed of seeds) {
        const data = new XLNetPretrainingData(SONGCI, sp, { ...options, seed });
        for (const step of new Set([0, 1, data.stepsPerEpoch - 1])) {
          for (const epoch of [0, 3]) checkBatch(data, data.batch(epoch, step), step);
        }
      }
    }
  });

  it('numPredict = seqLen masks everything: every position but <sep>, <sep>, <cls> is a target', () => {
    const data = new XLNetPretrainingData(SONGCI, sp, { batchSize: 1, seqLen: 16, numPredict: 16, permSize: 4, biData: false });
    const batch = data.batch(0, 2);
    expect(Array.from(batch.isMasked)).toEqual(new Array<number>(16).fill(1));
    expect(Array.from(batch.labels.subarray(0, 13))).toEqual(Array.from(batch.inputIds).filter((id) => id !== SEP && id !== CLS));
    expect(Array.from(batch.labels.subarray(13))).toEqual([-100, -100, -100]);
  });

  it('defaults: reuseLen = seqLen/2, permSize = reuseLen, numPredict = round(seqLen/6), biData, pieces', () => {
    const data = new XLNetPretrainingData(SONGCI, sp, { batchSize: 2, seqLen: 512 });
    expect([data.reuseLen, data.permSize, data.numPredict, data.rows.biData, data.spanUnit, data.maskAlpha, data.maskBeta]).toEqual([256, 256, 85, true, 'pieces', 6, 1]);
  });

  it("consecutive steps: each row's first halves tile its stream, so step s's memory immediately precedes step s+1", () => {
    const data = new XLNetPretrainingData(SONGCI, sp, { batchSize: 4, seqLen: 32, numPredict: 5, seed: 1 });
    const { length: L } = data.rows;
    const R = 16;
    expect(data.stepsPerEpoch).toBe(Math.floor((L - 32) / R) + 1);
    expect((data.stepsPerEpoch - 1) * R + 32).toBeLessThanOrEqual(L);
    expect(data.stepsPerEpoch * R + 32).toBeGreaterThan(L);
    const firstHalves: number[][] = range(4).map(() => []);
    for (let s = 0; s < data.stepsPerEpoch; s++) {
      const batch = data.batch(0, s);
      for (let b = 0; b < 4; b++) {
        firstHalves[b]!.push(...batch.inputIds.subarray(b * 32, b * 32 + R));
        // The second half's a starts where the next step's memory half starts.
        const sep1 = batch.inputIds.indexOf(SEP, b * 32 + R) - b * 32;
        expect(Array.from(batch.inputIds.subarray(b * 32 + R, b * 32 + sep1))).toEqual(Array.from(data.rows.ids.subarray(b * L + (s + 1) * R, b * L + (s + 1) * R + sep1 - R)));
      }
    }
    for (let b = 0; b < 4; b++) expect(firstHalves[b]).toEqual(Array.from(data.rows.ids.subarray(b * L, b * L + data.stepsPerEpoch * R)));
  });

  it('biData: the second half of the rows reads the first half\'s text backwards', () => {
    const data = new XLNetPretrainingData(SONGCI, sp, { batchSize: 4, seqLen: 32, numPredict: 5 });
    const L = data.rows.length;
    expect(L).toBe(Math.floor(SONGCI.ids.length / 2));
    const batch = data.batch(0, 1);
    for (let r = 0; r < 2; r++) {
      // Backward row 2 + r at step 1 holds forward stream positions (r+1)L-17 down to (r+1)L-32.
      const want = range(16).map((k) => SONGCI.ids[(r + 1) * L - 1 - 16 - k]);
      expect(Array.from(batch.inputIds.subarray((2 + r) * 32, (2 + r) * 32 + 16))).toEqual(want);
      expect(Array.from(batch.inputIds.subarray(r * 32, r * 32 + 16))).toEqual(Array.from(SONGCI.ids.subarray(r * L + 16, r * L + 32)));
    }
  });

  it('backward rows sample their spans on the text read forwards (alpha = beta = 1, every piece a start: spans pack the walk\'s first 2·goal positions)', () => {
    const data = new XLNetPretrainingData(SONGCI, sp, { batchSize: 4, seqLen: 64, numPredict: 8, maskAlpha: 1, maskBeta: 1, isStartPiece: () => true });
    for (const step of [0, 5]) {
      const batch = data.batch(0, step);
      for (let b = 0; b < 4; b++) {
        const masked = range(64).filter((t) => batch.isMasked[b * 64 + t]);
        // Each half's goal is 4; forward rows walk from the half's left end, backward rows from its right end.
        const want = b < 2 ? [...range(8), ...range(8).map((t) => 32 + t)] : [...range(8).map((t) => 24 + t), ...range(8).map((t) => 56 + t)];
        expect(masked).toHaveLength(8);
        expect(masked.every((t) => want.includes(t))).toBe(true);
      }
    }
  });

  it('another step draws anew even where the text repeats (a stream with period reuseLen)', () => {
    const period = { ids: SONGCI.ids.subarray(0, 16), sentIds: SONGCI.sentIds.subarray(0, 16) };
    const stream = { ids: Int32Array.from({ length: 16 * 40 }, (_, k) => period.ids[k % 16]!), sentIds: Uint8Array.from({ length: 16 * 40 }, (_, k) => period.sentIds[k % 16]!) };
    const data = new XLNetPretrainingData(stream, sp, { batchSize: 2, seqLen: 32, numPredict: 6, biData: false });
    expect(Array.from(data.batch(0, 1).inputIds.subarray(0, 16))).toEqual(Array.from(data.batch(0, 2).inputIds.subarray(0, 16)));
    const firstHalfMasks = range(data.stepsPerEpoch).map((s) => Array.from(data.batch(0, s).isMasked.subarray(0, 16)).join(''));
    expect(new Set(firstHalfMasks).size).toBeGreaterThan(firstHalfMasks.length / 2);
  });

  it('determinism: the same (seed, epoch, step) gives identical batches in any order; another seed, epoch or step does not', () => {
    const options = { batchSize: 4, seqLen: 32, numPredict: 6, permSize: 8 };
    const a = new XLNetPretrainingData(SONGCI, sp, { ...options, seed: 42 });
    const b = new XLNetPretrainingData(SONGCI, sp, { ...options, seed: 42 });
    const resumed = b.batch(2, 5); // a resumed run asks for (2, 5) first
    for (let s = 0; s <= 5; s++) a.batch(2, s);
    expect(a.batch(2, 5)).toEqual(resumed);
    const differs = (x: XLNetBatch, y: XLNetBatch): boolean =>
      x.permMask.some((v, k) => v !== y.permMask[k]) && x.isMasked.some((v, k) => v !== y.isMasked[k]);
    expect(differs(new XLNetPretrainingData(SONGCI, sp, { ...options, seed: 43 }).batch(2, 5), resumed)).toBe(true);
    expect(differs(a.batch(3, 5), resumed)).toBe(true);
    expect(differs(a.batch(2, 4), resumed)).toBe(true);
  });

  it('refuses bad options and a corpus too short for one step, with clear errors', () => {
    const make = (o: Partial<XLNetPretrainOptions>, stream = SONGCI, tok: Tokenizer = sp): XLNetPretrainingData =>
      new XLNetPretrainingData(stream, tok, { batchSize: 2, seqLen: 32, ...o });
    expect(() => make({ batchSize: 3 })).toThrow(/biData needs an even batch size/);
    expect(make({ batchSize: 3, biData: false }).rows.batchSize).toBe(3);
    expect(() => make({ reuseLen: 40 })).toThrow(/reuseLen 40 is larger than seqLen 32/);
    expect(() => make({ reuseLen: 8 })).toThrow(/reuseLen must be seqLen\/2 = 16/);
    expect(() => make({ seqLen: 33 })).toThrow(/seqLen must be an even integer of at least 8/);
    expect(() => make({ seqLen: 6 })).toThrow(/seqLen must be an even integer of at least 8/);
    expect(() => make({ permSize: 5 })).toThrow(/permSize must be a positive integer dividing reuseLen 16/);
    expect(() => make({ numPredict: 0 })).toThrow(/numPredict must be an integer in \[1, seqLen = 32\]/);
    expect(() => make({ numPredict: 33 })).toThrow(/numPredict must be an integer in \[1, seqLen = 32\]/);
    expect(() => make({ maskAlpha: 0 })).toThrow(/maskAlpha ≥ maskBeta ≥ 1/);
    const short = { ids: SONGCI.ids.subarray(0, 63), sentIds: SONGCI.sentIds.subarray(0, 63) };
    expect(() => make({ biData: false }, short)).toThrow(/too short for one step: 63 tokens make 2 rows of 31 tokens, and a step needs seqLen = 32/);
    expect(make({ biData: false }, { ids: SONGCI.ids.subarray(0, 64), sentIds: SONGCI.sentIds.subarray(0, 64) }).stepsPerEpoch).toBe(1);
    expect(() => make({}, SONGCI, charTokenizer(['<unk>', ...LETTERS]))).toThrow(/need <sep> and <cls>/);
    expect(() => make({}, SONGCI, chars)).toThrow(/token id \d+ at stream position \d+ is outside the vocabulary \[0, 25\)/);
    const data = make({});
    expect(() => data.batch(0, data.stepsPerEpoch)).toThrow(new RegExp(`step ${data.stepsPerEpoch} is past the epoch's ${data.stepsPerEpoch} steps`));
    expect(() => data.batch(-1, 0)).toThrow(/epoch must be an integer in \[0, 2\^32\)/);
  });
});

describe("Hugging Face's DataCollatorForPermutationLanguageModeling", () => {
  const T = 32;
  const SPECIAL = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  // XLNet model inputs: single texts and pairs, left-padded, ending in <sep> <cls>; plus raw stream windows.
  // Lines of at most 13 pieces, so that a pair with its <sep> <sep> <cls> fits in T.
  const lines = ARTICLES.slice(0, 40).flatMap((a) => a.split('\n')).filter((line) => sp.encode(line, { addSpecialTokens: false }).length <= 13);
  const rows = [
    ...range(6).map((k) => sp.encodeXLNet(lines[k]!, undefined, { padToLength: T }).inputIds),
    ...range(4).map((k) => sp.encodeXLNet(lines[10 + k]!, lines[20 + k], { padToLength: T }).inputIds),
    ...range(6).map((k) => Array.from(SONGCI.ids.subarray(1000 + k * T, 1000 + (k + 1) * T))),
  ];

  function checkCollated(batch: XLNetBatch, source: readonly ArrayLike<number>[]): void {
    const B = source.length;
    const n = batch.seqLen;
    expect([batch.batchSize, batch.numPredict, batch.tokenTypeIds]).toEqual([B, n, undefined]);
    for (let b = 0; b < B; b++) {
      const masked = batch.isMasked.subarray(b * n, (b + 1) * n);
      const original = source[b]!;
      for (let t = 0; t < n; t++) {
        expect(batch.inputIds[b * n + t]).toBe(masked[t] ? MASK : original[t]);
        expect(batch.labels[b * n + t]).toBe(masked[t] ? original[t] : -100);
        if (SPECIAL.has(original[t]!)) expect(masked[t]).toBe(0);
        for (let u = 0; u < n; u++) expect(batch.targetMapping[(b * n + t) * n + u]).toBe(t === u ? 1 : 0);
      }
      const pm = (i: number, j: number): boolean => batch.permMask[(b * n + i) * n + j] === 1;
      const maskedPos = range(n).filter((t) => masked[t]);
      const wrong: string[] = [];
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (!masked[j] && pm(i, j)) wrong.push(`unmasked (${i},${j}) hidden`); // unmasked tokens are visible to all
          if (masked[j] && !masked[i] && !SPECIAL.has(original[i]!) && !pm(i, j)) wrong.push(`context (${i},${j}) sees a masked token`);
        }
      }
      expect(wrong).toEqual([]);
      // Masked tokens: a consistent order, never themselves, the whole first half before the second half.
      maskedPos.forEach((t) => expect(pm(t, t)).toBe(true));
      const order = consistentOrder(maskedPos, (i, j) => !pm(i, j));
      const firstHalf = order.filter((t) => t < n / 2);
      expect(order.slice(0, firstHalf.length)).toEqual(firstHalf);
      // Special tokens keep their rank: each sees a prefix of that order, in the second half at least every
      // masked token of the first half (all of whose ranks are smaller), in the first half none of the second.
      for (let i = 0; i < n; i++) {
        if (!SPECIAL.has(original[i]!)) continue;
        const seen = maskedPos.filter((j) => !pm(i, j));
        expect(new Set(order.slice(0, seen.length))).toEqual(new Set(seen));
        if (i >= n / 2) expect(seen).toEqual(expect.arrayContaining(firstHalf));
        else expect(seen.every((j) => j < n / 2)).toBe(true);
      }
    }
  }

  it('masks spans off the special tokens with <mask> in the inputs; identity target mapping; labels -100 elsewhere; a consistent order', () => {
    for (let step = 0; step < 8; step++) {
      const batch = plmCollate(rows, sp, { seed: 5, step });
      checkCollated(batch, rows);
      expect(sum(batch.isMasked)).toBeGreaterThan(0);
    }
  });

  it('one permutation of T/2 orders both halves alike (every position masked: plmProbability 1, spans of 1)', () => {
    const plain = range(5).map((k) => Array.from(SONGCI.ids.subarray(3000 + k * 20, 3000 + (k + 1) * 20)).map((id) => (SPECIAL.has(id) ? 100 : id)));
    for (let step = 0; step < 10; step++) {
      const batch = plmCollate(plain, sp, { plmProbability: 1, maxSpanLength: 1, step });
      checkCollated(batch, plain);
      for (let b = 0; b < 5; b++) {
        expect(sum(batch.isMasked.subarray(b * 20, (b + 1) * 20))).toBe(20);
        const order = consistentOrder(range(20), (i, j) => batch.permMask[(b * 20 + i) * 20 + j] === 0);
        expect(order.slice(10).map((t) => t - 10)).toEqual(order.slice(0, 10));
      }
    }
  });

  it('span windows: with spans of 1 in contexts of 6, a row of 60 plain tokens has exactly 10 masked; about 1/6 masked by default', () => {
    const plain = range(4).map((k) => Array.from(SONGCI.ids.subarray(5000 + k * 60, 5000 + (k + 1) * 60)).map((id) => (SPECIAL.has(id) ? 100 : id)));
    const ones = plmCollate(plain, sp, { maxSpanLength: 1, seed: 9 });
    for (let b = 0; b < 4; b++) expect(sum(ones.isMasked.subarray(b * 60, (b + 1) * 60))).toBe(10);
    let masked = 0;
    for (let step = 0; step < 40; step++) masked += sum(plmCollate(plain, sp, { seed: 9, step }).isMasked);
    const fraction = masked / (40 * 4 * 60);
    expect(fraction).toBeGreaterThan(0.13);
    expect(fraction).toBeLessThan(0.2);
  });

  it('determinism: the same (seed, step) gives the same batch, another step another', () => {
    expect(plmCollate(rows, sp, { seed: 3, step: 7 })).toEqual(plmCollate(rows, sp, { seed: 3, step: 7 }));
    expect(plmCollate(rows, sp, { seed: 3, step: 8 }).isMasked).not.toEqual(plmCollate(rows, sp, { seed: 3, step: 7 }).isMasked);
  });

  it('refuses odd lengths, ragged or empty batches, and a vocabulary without <mask> or <pad>', () => {
    expect(() => plmCollate([[10, 11, 12]], sp)).toThrow(/needs an even sequence length.*got 3/);
    expect(() => plmCollate([[10, 11], [10, 11, 12, 13]], sp)).toThrow(/row 1 has 4 tokens, row 0 has 2/);
    expect(() => plmCollate([], sp)).toThrow(/the batch has no rows/);
    expect(() => plmCollate([[10, 11]], charTokenizer(['<unk>', '<pad>', ...LETTERS]))).toThrow(/needs a <mask> token/);
    expect(() => plmCollate([[10, 11]], charTokenizer(['<unk>', '<mask>', ...LETTERS]))).toThrow(/needs a <pad> token/);
    expect(() => plmCollate([[10, 11]], sp, { plmProbability: 0 })).toThrow(/plmProbability must be in \(0, 1\]/);
  });
});

describe('a batch drives XLNetLMHeadModel', () => {
  it('two consecutive steps with mems: logits [B, P, V], loss = mean cross-entropy over the real slots', async () => {
    w.manualSeed(0);
    const data = new XLNetPretrainingData(SONGCI, sp, { batchSize: 2, seqLen: 16, numPredict: 4, seed: 2 });
    const R = 8;
    const model = new XLNetLMHeadModel({ vocab_size: sp.vocabSize, d_model: 16, n_layer: 2, n_head: 2, d_inner: 32, mem_len: 2 * R, reuse_len: R, bi_data: true }).eval();
    let mems: w.Tensor[] | undefined;
    for (const step of [0, 1]) {
      const batch = data.batch(0, step);
      const { batchSize: B, seqLen, numPredict: P } = batch;
      const out = w.tidy(() =>
        model.forward({
          inputIds: w.tensor(batch.inputIds, [B, seqLen], { dtype: 'i32' }),
          tokenTypeIds: batch.tokenTypeIds!,
          permMask: batch.permMask,
          targetMapping: batch.targetMapping,
          numPredict: P,
          labels: w.tensor(batch.labels, [B, P], { dtype: 'i32' }),
          ...(mems ? { mems } : {}),
        }),
      );
      expect(out.logits.shape).toEqual([B, P, sp.vocabSize]);
      expect(out.mems!.map((m) => m.shape)).toEqual([[R * (step + 1), B, 16], [R * (step + 1), B, 16]]);
      // Σ ce·mask / Σ mask, with the mask from the labels, in float64 from the returned logits.
      const logits = await out.logits.toArray();
      const V = sp.vocabSize;
      let total = 0;
      let count = 0;
      for (let m = 0; m < B * P; m++) {
        if (batch.labels[m] === -100) continue;
        const rowLogits = Float64Array.from(logits.subarray(m * V, (m + 1) * V));
        const max = Math.max(...rowLogits);
        const logSum = Math.log(rowLogits.reduce((s, x) => s + Math.exp(x - max), 0)) + max;
        total += logSum - rowLogits[batch.labels[m]!]!;
        count++;
      }
      expect(count).toBeGreaterThan(0);
      const loss = await out.loss!.item();
      expect(Math.abs(loss - total / count)).toBeLessThan(1e-4 * Math.max(1, total / count));
      mems?.forEach((m) => m.dispose());
      mems = out.mems;
      out.logits.dispose();
      out.loss!.dispose();
    }
    mems!.forEach((m) => m.dispose());
    model.dispose();
  });
});
