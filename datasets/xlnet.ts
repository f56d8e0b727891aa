// XLNet pretraining data, browser-clean: corpus -> sentence-flagged id stream -> B fixed rows -> permutation-LM batches (the original data_utils.py), and HF's permutation-LM collator.
//
// The original pipeline (xlnet.md §8.1), step by step:
//   1. Corpus -> one id stream. Each line is a sentence; a flag (`sentIds`) flips after every line, so a
//      change of flag between neighbouring tokens is a sentence boundary. A document end becomes one <eod>.
//   2. batchify: the stream is cut into B equal rows (the remainder dropped). With biData, B/2 forward rows
//      and the same rows time-reversed: rows 0..B/2-1 forward, B/2..B-1 backward.
//   3. Step s of an epoch reads every row at i = s·reuseLen: the first half of the example is the next
//      reuseLen tokens of the row, the second half is `a <sep> b <sep> <cls>` (a continues the row, b is
//      either what follows a or a random stretch of the row), and numPredict positions are chosen by span
//      masking, half in each half.
//   4. Each half gets a random factorisation order (_local_perm); the perm mask lets each predicted token
//      see the context and the predicted tokens before it in that order, and the first half never sees the
//      second. Only the first reuseLen positions are cached as memory (xlnet.md §5), and step s+1's first
//      half immediately follows step s's first half in the same row, so the memory lines up.
//
// Where this differs from the released code, on purpose:
//   - data_utils.py fixes the masks and the a/b split when it writes the records and draws the permutation
//     each time a record is read; here every draw of a step comes from one generator seeded by
//     (seed, epoch, step), so a batch is a pure function of those and a resumed run replays it exactly.
//   - the released code also builds next-token targets and stops the pass when the last step's b would need
//     the token after the row's end for them; those targets are never used by the permutation LM (each
//     prediction is the token at its own position), so every step with i + seqLen ≤ row length is made.
//   - the released span sampler counts a span in pieces where it meant words (zihangdai/xlnet#220); both
//     are offered (`spanUnit`), pieces by default (see SpanUnit).
//
// plmCollate is the other recipe, Hugging Face's DataCollatorForPermutationLanguageModeling (xlnet.md §8.2):
// <mask> in the inputs, identity target mapping, one permutation for both halves of a batch of id rows.

import { Generator } from '../src/random.js';
import type { Tokenizer } from '../tokenizers/index.js';

// ---- corpus -> one id stream with sentence flags ----

/** A corpus as one token stream. */
export interface SentenceStream {
  /** [N] token ids. */
  ids: Int32Array;
  /** [N] 0/1 sentence flag per token; it flips after every line, so a change marks a sentence boundary. */
  sentIds: Uint8Array;
}

export interface SentenceStreamOptions {
  /** Write one <eod> at each document end (data_utils' use_eod, default true); false skips document ends. */
  useEod?: boolean;
}

/** Appends sentences and document ends to a stream the way data_utils.py's _create_data does. */
class StreamWriter {
  private readonly ids: number[] = [];
  private readonly flags: number[] = [];
  private flag = 1;
  private readonly eod: number | undefined;

  constructor(
    private readonly tokenizer: Tokenizer,
    useEod: boolean,
  ) {
    this.eod = useEod ? tokenizer.tokenToId('<eod>') : undefined;
    if (useEod && this.eod === undefined) throw new Error('the vocabulary has no <eod> piece for document ends; pass useEod: false to drop them');
  }

  /** One line: its ids (no <sep>/<cls> added) under the current flag, then the flag flips. */
  sentence(line: string): void {
    for (const id of this.tokenizer.encode(line, { addSpecialTokens: false })) {
      this.ids.push(id);
      this.flags.push(this.flag);
    }
    this.flag ^= 1;
  }

  /**
   * A document end. The released code flips the flag before writing <eod> and again after, so <eod> carries
   * the flag of the sentence before it: it is glued to that sentence, and no cut point separates them.
   */
  documentEnd(): void {
    if (this.eod === undefined) return;
    this.flag ^= 1;
    this.ids.push(this.eod);
    this.flags.push(this.flag);
    this.flag ^= 1;
  }

  stream(): SentenceStream {
    return { ids: Int32Array.from(this.ids), sentIds: Uint8Array.from(this.flags) };
  }
}

/**
 * XLNet's raw-text format: one sentence per line, a blank (or whitespace-only) line ends a document. Lines
 * are trimmed and encoded without special tokens; lower-casing and other preprocessing are the tokenizer's
 * (SentencePieceTokenizer in 'xlnet' mode does HF's). A final newline does not make an extra empty line.
 */
export function sentenceStreamFromText(text: string, tokenizer: Tokenizer, options: SentenceStreamOptions = {}): SentenceStream {
  const writer = new StreamWriter(tokenizer, options.useEod ?? true);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    if (line.trim() === '') writer.documentEnd();
    else writer.sentence(line.trim());
  }
  return writer.stream();
}

/**
 * The articles format (what parseCorpus gives: one string per article, "title\nline\nline…"): each non-blank
 * line of an article is a sentence, and every article ends with a document end. Blank lines inside an
 * article are skipped, so an article is always exactly one document.
 */
export function sentenceStreamFromArticles(articles: readonly string[], tokenizer: Tokenizer, options: SentenceStreamOptions = {}): SentenceStream {
  const writer = new StreamWriter(tokenizer, options.useEod ?? true);
  for (const article of articles) {
    for (const line of article.split('\n')) if (line.trim() !== '') writer.sentence(line.trim());
    writer.documentEnd();
  }
  return writer.stream();
}

// ---- batchify: B fixed rows ----

/** The stream cut into B rows; row b is read left to right, step after step, for the whole epoch. */
export interface XLNetRows {
  batchSize: number;
  /** L, tokens per row. */
  length: number;
  biData: boolean;
  /** [B, L] row-major. With biData, row B/2 + r is row r reversed. */
  ids: Int32Array;
  /** [B, L] the sentence flags, laid out like ids. */
  sentIds: Uint8Array;
}

/**
 * batchify: B/2 forward rows plus their reversals with biData (the second half of the batch reads the same
 * text backwards, which is why the model flips relative distances for it), else B forward rows. Each forward
 * row r is the stream's r-th consecutive stretch of L = floor(N / rows) tokens; the remainder is dropped.
 */
export function batchifyStream(stream: SentenceStream, batchSize: number, biData: boolean): XLNetRows {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  if (biData && batchSize % 2 !== 0) {
    throw new RangeError(`biData needs an even batch size (rows 0..B/2-1 read forward, B/2..B-1 the same rows backward), got ${batchSize}`);
  }
  if (stream.ids.length !== stream.sentIds.length) throw new Error(`the stream has ${stream.ids.length} ids but ${stream.sentIds.length} sentence flags`);
  const forward = biData ? batchSize / 2 : batchSize;
  const length = Math.floor(stream.ids.length / forward);
  const ids = new Int32Array(batchSize * length);
  const sentIds = new Uint8Array(batchSize * length);
  for (let r = 0; r < forward; r++) {
    ids.set(stream.ids.subarray(r * length, (r + 1) * length), r * length);
    sentIds.set(stream.sentIds.subarray(r * length, (r + 1) * length), r * length);
    if (biData) {
      ids.set(stream.ids.subarray(r * length, (r + 1) * length).slice().reverse(), (forward + r) * length);
      sentIds.set(stream.sentIds.subarray(r * length, (r + 1) * length).slice().reverse(), (forward + r) * length);
    }
  }
  return { batchSize, length, biData, ids, sentIds };
}

// ---- randomness ----

/** Uniform integer in [0, n). */
function randInt(g: Generator, n: number): number {
  return Math.floor(g.next() * n);
}

/** Fisher-Yates: a uniformly random permutation of 0..n-1. */
function randomPermutation(g: Generator, n: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(g, i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** A step or epoch number used as a seed part: a whole number below 2^32. */
function checkSeedPart(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** 32) throw new RangeError(`${name} must be an integer in [0, 2^32), got ${value}`);
}

/**
 * The generator of one batch: (seed, …parts) folded through fresh generators, each part xor-ed into a 32-bit
 * draw of the previous one. Neighbouring steps get unrelated streams, and batch k can be made without
 * drawing the numbers of batches 0..k-1, which is what lets a resumed run start at any step.
 */
function batchGenerator(seed: number, ...parts: number[]): Generator {
  let g = new Generator(seed);
  for (const part of parts) g = new Generator((g.nextU32() ^ part) >>> 0);
  return g;
}

// ---- split_a_and_b ----

/** The two segments of an example's second half, as [start, end) ranges of the row. */
export interface SegmentSplit {
  aStart: number;
  aEnd: number;
  bStart: number;
  bEnd: number;
  /** 1 when b is the text that follows a, 0 when it is a random stretch. Unused by the permutation LM (no NSP). */
  label: 0 | 1;
}

/**
 * split_a_and_b on one row's sentence flags: a starts at `begin`; candidate cuts are the sentence
 * boundaries after `begin` at which a would still be shorter than totLen (the scan stops at the first
 * boundary at or past totLen, or at the row's end). With probability 1/2, or when there is no cut, b is a
 * random stretch of the row (label 0); otherwise b is the text after a's cut, up to the scan's end (label 1).
 * Then the longer of the two (b on a tie) loses tokens from its right end until len(a) + len(b) = totLen.
 */
export function splitAAndB(sentIds: ArrayLike<number>, begin: number, totLen: number, g: Generator): SegmentSplit {
  const n = sentIds.length;
  if (!Number.isInteger(begin) || !Number.isInteger(totLen) || begin < 0 || totLen < 1 || begin + totLen >= n) {
    throw new RangeError(`splitAAndB: begin ${begin} + totLen ${totLen} must be inside the row of ${n} tokens`);
  }
  const cuts: number[] = [];
  let end = begin + 1;
  for (; end < n; end++) {
    if (sentIds[end] === sentIds[end - 1]) continue;
    if (end - begin >= totLen) break;
    cuts.push(end);
  }
  let aEnd: number;
  let bStart: number;
  let bEnd: number;
  let label: 0 | 1;
  if (cuts.length === 0 || g.next() < 0.5) {
    label = 0;
    aEnd = cuts.length === 0 ? end : cuts[randInt(g, cuts.length)]!;
    // b: the length a leaves over (at least 1) anywhere in the row, widened to whole sentences. Its start is
    // drawn from [0, n - 1 - bLen] and it never reaches the row's last token (the released code keeps that
    // token for b's next-token target).
    const bLen = Math.max(1, totLen - (aEnd - begin));
    bStart = randInt(g, n - bLen);
    bEnd = bStart + bLen;
    while (bStart > 0 && sentIds[bStart - 1] === sentIds[bStart]) bStart--;
    while (bEnd < n - 1 && sentIds[bEnd - 1] === sentIds[bEnd]) bEnd++;
  } else {
    label = 1;
    aEnd = cuts[randInt(g, cuts.length)]!;
    bStart = aEnd;
    bEnd = end;
  }
  while (aEnd - begin + (bEnd - bStart) > totLen) {
    if (aEnd - begin > bEnd - bStart) aEnd--;
    else bEnd--;
  }
  return { aStart: begin, aEnd, bStart, bEnd, label };
}

// ---- _sample_mask: span masking ----

/**
 * What one span of `n` covers. 'pieces' is the released code: its end scan tests the span's first piece
 * (always a start piece) instead of the piece at the scan, so a span is exactly n pieces (zihangdai/xlnet#220).
 * 'words' is what the code meant: n words, a word being a start piece and the pieces up to the next start
 * piece. The default is 'pieces': it is what XLNet was trained with, and for text without spaces (Chinese)
 * a "word" runs from one ASCII punctuation mark to the next, so word spans would be whole clauses.
 */
export type SpanUnit = 'pieces' | 'words';

/**
 * The punctuation pieces that start a span in the released code: ASCII punctuation except ' = > (its list has
 * a second " where ' was meant and leaves out <=>; a piece starting with "<" counts anyway).
 */
const START_PUNCTUATION = new Set('!"#$%&()*+,-./:;?@[\\]^_`{|}~');

/** data_utils' _is_start_piece: the piece begins a word ("▁…"), is a special piece ("<…>") or one punctuation mark. */
export function isXLNetStartPiece(piece: string): boolean {
  return piece.startsWith('\u2581') || piece.startsWith('<') || START_PUNCTUATION.has(piece);
}

export interface SpanMaskOptions {
  /** How many positions to mask (exactly; the tail is filled with random single positions). */
  goal: number;
  /** A span of n is drawn in a context of n·maskAlpha/maskBeta positions (defaults 6 and 1: about 1 in 6 masked). */
  maskAlpha?: number;
  maskBeta?: number;
  /** Sample on the segment read backwards and flip the mask back (for the backward rows of biData). */
  reverse?: boolean;
  spanUnit?: SpanUnit;
}

/** Span lengths 1..MAX_GRAM with p(n) ∝ 1/n. */
const MAX_GRAM = 5;
const HARMONIC = Array.from({ length: MAX_GRAM }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b, 0);

function sampleGram(g: Generator): number {
  let u = g.next() * HARMONIC;
  for (let n = 1; n < MAX_GRAM; n++) {
    u -= 1 / n;
    if (u < 0) return n;
  }
  return MAX_GRAM;
}

function checkAlphaBeta(alpha: number, beta: number): void {
  if (!Number.isInteger(alpha) || !Number.isInteger(beta) || beta < 1 || alpha < beta) {
    throw new RangeError(`maskAlpha and maskBeta must be integers with maskAlpha ≥ maskBeta ≥ 1 (a span needs a context of at least one position), got ${alpha} and ${beta}`);
  }
}

/**
 * _sample_mask on a segment given by its start-piece flags ([len], 1 = start piece): exactly `goal` positions.
 *
 * Walk the segment: draw a span length n (p ∝ 1/n, at most what the goal still needs), a context of
 * ctx = n·alpha/beta positions and a left offset l in [0, ctx); the span starts at the first start piece at
 * or after cur + l and covers n units (see SpanUnit); the walk resumes ctx - l positions after the span, so
 * spans never touch. A span that would reach the segment's end stops the walk. Whatever the goal still
 * lacks is then filled with random single positions. In 'words' mode a span is cut at the goal (a word can
 * be longer than what is left); in 'pieces' mode it never exceeds it.
 */
export function sampleSpanMask(startPieces: ArrayLike<number>, options: SpanMaskOptions, g: Generator): Uint8Array {
  const { goal, maskAlpha = 6, maskBeta = 1, reverse = false, spanUnit = 'pieces' } = options;
  const len = startPieces.length;
  if (!Number.isInteger(goal) || goal < 0 || goal > len) throw new RangeError(`sampleSpanMask: goal ${goal} must be an integer in [0, ${len}]`);
  checkAlphaBeta(maskAlpha, maskBeta);
  const start = Uint8Array.from(startPieces);
  if (reverse) start.reverse();
  const mask = new Uint8Array(len);
  let num = 0;
  let cur = 0;
  while (cur < len && num < goal) {
    const n = Math.min(sampleGram(g), goal - num);
    const ctx = Math.floor((n * maskAlpha) / maskBeta);
    const left = randInt(g, ctx);
    let beg = cur + left;
    while (beg < len && start[beg] === 0) beg++;
    if (beg >= len) break;
    // Scan to the start of the (n+1)-th unit after beg.
    let end = beg + 1;
    let units = 1;
    while (end < len) {
      if (spanUnit === 'pieces' || start[end] === 1) {
        units++;
        if (units > n) break;
      }
      end++;
    }
    if (end >= len) break;
    end = Math.min(end, beg + goal - num);
    mask.fill(1, beg, end);
    num += end - beg;
    cur = end + (ctx - left);
  }
  while (num < goal) {
    const k = randInt(g, len);
    if (mask[k] === 0) {
      mask[k] = 1;
      num++;
    }
  }
  if (reverse) mask.reverse();
  return mask;
}

// ---- _local_perm: the factorisation order and the perm mask of one half ----

/** One half's permutation: [len, len] perm mask (1 = i may not see j), ranks, and which positions are targets. */
export interface LocalPermutation {
  /** [len, len] 0/1, row-major. */
  permMask: Uint8Array;
  /** [len] position in the factorisation order (before context tokens are moved to the front). */
  rank: Int32Array;
  /** [len] 1 = masked and not <sep>/<cls>: predicted, with a loss. */
  target: Uint8Array;
}

/**
 * _local_perm. The order: positions are grouped in consecutive blocks of permSize, blocks keep their order,
 * and one random permutation π of 0..permSize-1 orders the positions inside every block:
 * rank[a·permSize + c] = a·permSize + π[c] (permSize = len: one uniformly random order of the half).
 *
 * Then, with func = <sep>/<cls>, context = not masked and not func, target = masked and not func:
 *   rev[j]     = -1 for context (context comes first in the order and sees only context, so it leaks nothing),
 *                rank[j] otherwise;
 *   selfRev[i] = rev[i] for a target, rev[i] + 1 otherwise (a target must not see itself, anything else may);
 *   mask[i][j] = selfRev[i] ≤ rev[j] and j is not context.
 * So context is visible to everybody, a target sees the masked/func positions before it in the order, and
 * <sep>/<cls> (and masked func positions) sit in the order like targets but see themselves and carry no loss.
 */
export function localPermutation(tokens: ArrayLike<number>, isMasked: ArrayLike<number>, permSize: number, functional: ReadonlySet<number>, g: Generator): LocalPermutation {
  const len = tokens.length;
  if (isMasked.length !== len) throw new Error(`localPermutation: ${len} tokens but ${isMasked.length} mask flags`);
  if (!Number.isInteger(permSize) || permSize < 1 || len % permSize !== 0) {
    throw new RangeError(`permSize must be a positive integer dividing the half length ${len}, got ${permSize}`);
  }
  const pi = randomPermutation(g, permSize);
  const rank = Int32Array.from({ length: len }, (_, p) => p - (p % permSize) + pi[p % permSize]!);
  const target = new Uint8Array(len);
  const context = new Uint8Array(len);
  const rev = new Int32Array(len);
  for (let j = 0; j < len; j++) {
    const func = functional.has(tokens[j]!);
    context[j] = !isMasked[j] && !func ? 1 : 0;
    target[j] = isMasked[j] && !func ? 1 : 0;
    rev[j] = context[j] ? -1 : rank[j]!;
  }
  const permMask = new Uint8Array(len * len);
  for (let i = 0; i < len; i++) {
    const selfRev = target[i] ? rev[i]! : rev[i]! + 1;
    for (let j = 0; j < len; j++) permMask[i * len + j] = selfRev <= rev[j]! && !context[j] ? 1 : 0;
  }
  return { permMask, rank, target };
}

// ---- the batch ----

/** One batch, ready for XLNetLMHeadModel.forward (wrap inputIds and labels as i32 tensors). */
export interface XLNetBatch {
  batchSize: number;
  /** T */
  seqLen: number;
  /** P, the predict slots per row (forward's numPredict). */
  numPredict: number;
  /** [B, T] real tokens: the content stream sees them, the perm mask hides what must not be seen. */
  inputIds: Int32Array;
  /** [B, T] 0 = first half, a and its <sep>; 1 = b and its <sep>; 2 = <cls>. Absent from the HF collator's batches. */
  tokenTypeIds?: Int32Array;
  /** [B, T, T] 1 = query i may not see token j. */
  permMask: Float32Array;
  /** [B, P, T] slot k of a row is one-hot on its k-th target position (in position order); unused slots are zero rows. */
  targetMapping: Float32Array;
  /** [B, P] the token at each slot's position; -100 for unused slots, so the mean over the rest is Σ ce·mask / Σ mask. */
  labels: Int32Array;
  /** [B, T] the sampled mask (row sums are numPredict); masked <sep>/<cls> positions are in it but are not targets. */
  isMasked: Uint8Array;
}

export interface XLNetPretrainOptions {
  /** B, rows per batch; even with biData. */
  batchSize: number;
  /** T, tokens per example; even, at least 8. */
  seqLen: number;
  /** Tokens of the first half, the part cached as memory. Must be seqLen/2 (data_utils.py asserts it); default that. */
  reuseLen?: number;
  /** Block size of the factorisation order; divides reuseLen; default reuseLen (one random order per half, as XLNet-Large). */
  permSize?: number;
  /** P, positions predicted per row, split ceil/floor between the halves; default round(seqLen/6) (85 for 512). */
  numPredict?: number;
  /** Forward and backward rows (default true, as data_utils.py). */
  biData?: boolean;
  /** Span masking context (defaults 6 and 1). */
  maskAlpha?: number;
  maskBeta?: number;
  /** Default 'pieces', the released behaviour (see SpanUnit). */
  spanUnit?: SpanUnit;
  /** Which pieces may start a span; default isXLNetStartPiece (data_utils' rule). */
  isStartPiece?: (piece: string) => boolean;
  /** Every random draw of a batch derives from (seed, epoch, step). Default 0. */
  seed?: number;
}

/**
 * The original XLNet pretraining pipeline over one stream: fixed rows, and for each (epoch, step) the batch
 * data_utils.py + the TF parser would feed the model (with numPredict set). An epoch reads each row once,
 * stepsPerEpoch steps of reuseLen tokens; later epochs read the same rows with new masks and orders.
 */
export class XLNetPretrainingData {
  readonly rows: XLNetRows;
  readonly stepsPerEpoch: number;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly reuseLen: number;
  readonly permSize: number;
  readonly numPredict: number;
  readonly maskAlpha: number;
  readonly maskBeta: number;
  readonly spanUnit: SpanUnit;
  readonly seed: number;
  private readonly sep: number;
  private readonly cls: number;
  /** [V] 1 where the piece may start a span. */
  private readonly startPiece: Uint8Array;

  constructor(stream: SentenceStream, tokenizer: Tokenizer, options: XLNetPretrainOptions) {
    const { batchSize, seqLen, biData = true, maskAlpha = 6, maskBeta = 1, spanUnit = 'pieces', seed = 0 } = options;
    if (!Number.isInteger(seqLen) || seqLen < 8 || seqLen % 2 !== 0) {
      throw new RangeError(`seqLen must be an even integer of at least 8 (two halves, the second with room for a, <sep>, b, <sep>, <cls>), got ${seqLen}`);
    }
    const reuseLen = options.reuseLen ?? seqLen / 2;
    if (reuseLen > seqLen) throw new RangeError(`reuseLen ${reuseLen} is larger than seqLen ${seqLen}`);
    if (reuseLen !== seqLen / 2) {
      throw new RangeError(`reuseLen must be seqLen/2 = ${seqLen / 2} (data_utils.py asserts it: each half gets its own mask and order), got ${reuseLen}`);
    }
    const permSize = options.permSize ?? reuseLen;
    if (!Number.isInteger(permSize) || permSize < 1 || reuseLen % permSize !== 0) {
      throw new RangeError(`permSize must be a positive integer dividing reuseLen ${reuseLen}, got ${permSize}`);
    }
    const numPredict = options.numPredict ?? Math.round(seqLen / 6);
    if (!Number.isInteger(numPredict) || numPredict < 1 || numPredict > seqLen) {
      throw new RangeError(`numPredict must be an integer in [1, seqLen = ${seqLen}], got ${numPredict}`);
    }
    checkAlphaBeta(maskAlpha, maskBeta);
    if (spanUnit !== 'pieces' && spanUnit !== 'words') throw new RangeError(`spanUnit must be 'pieces' or 'words', got ${String(spanUnit)}`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    if (tokenizer.sepTokenId === undefined || tokenizer.clsTokenId === undefined) throw new Error('XLNet examples need <sep> and <cls> in the vocabulary');
    const bad = stream.ids.findIndex((id) => id < 0 || id >= tokenizer.vocabSize);
    if (bad >= 0) throw new RangeError(`token id ${stream.ids[bad]} at stream position ${bad} is outside the vocabulary [0, ${tokenizer.vocabSize})`);

    this.rows = batchifyStream(stream, batchSize, biData);
    if (this.rows.length < seqLen) {
      throw new RangeError(
        `the corpus is too short for one step: ${stream.ids.length} tokens make ${batchSize} rows of ${this.rows.length} tokens, and a step needs seqLen = ${seqLen}`,
      );
    }
    this.stepsPerEpoch = Math.floor((this.rows.length - seqLen) / reuseLen) + 1;
    this.batchSize = batchSize;
    this.seqLen = seqLen;
    this.reuseLen = reuseLen;
    this.permSize = permSize;
    this.numPredict = numPredict;
    this.maskAlpha = maskAlpha;
    this.maskBeta = maskBeta;
    this.spanUnit = spanUnit;
    this.seed = seed;
    this.sep = tokenizer.sepTokenId;
    this.cls = tokenizer.clsTokenId;
    const isStart = options.isStartPiece ?? isXLNetStartPiece;
    this.startPiece = Uint8Array.from({ length: tokenizer.vocabSize }, (_, id) => (isStart(tokenizer.idToToken(id) ?? '') ? 1 : 0));
  }

  /** Where step `step` starts reading every row: its first half is row[start, start + reuseLen). */
  stepStart(step: number): number {
    return step * this.reuseLen;
  }

  /** The batch of (epoch, step); a pure function of them and the seed. */
  batch(epoch: number, step: number): XLNetBatch {
    checkSeedPart('epoch', epoch);
    checkSeedPart('step', step);
    if (step >= this.stepsPerEpoch) throw new RangeError(`step ${step} is past the epoch's ${this.stepsPerEpoch} steps`);
    const { batchSize: B, seqLen: T, reuseLen: R, numPredict: P, rows } = this;
    const L = rows.length;
    const g = batchGenerator(this.seed, epoch, step);
    const batch: XLNetBatch = {
      batchSize: B,
      seqLen: T,
      numPredict: P,
      inputIds: new Int32Array(B * T),
      tokenTypeIds: new Int32Array(B * T),
      permMask: new Float32Array(B * T * T),
      targetMapping: new Float32Array(B * P * T),
      labels: new Int32Array(B * P).fill(-100),
      isMasked: new Uint8Array(B * T),
    };
    const functional = new Set([this.sep, this.cls]);
    const i = this.stepStart(step);
    for (let b = 0; b < B; b++) {
      const row = rows.ids.subarray(b * L, (b + 1) * L);
      const split = splitAAndB(rows.sentIds.subarray(b * L, (b + 1) * L), i + R, T - R - 3, g);
      // [T] = first half ++ a ++ <sep> ++ b ++ <sep> ++ <cls>; types 0 up to a's <sep>, 1 up to b's, 2 for <cls>.
      const tokens = batch.inputIds.subarray(b * T, (b + 1) * T);
      const aLen = split.aEnd - split.aStart;
      tokens.set(row.subarray(i, i + R), 0);
      tokens.set(row.subarray(split.aStart, split.aEnd), R);
      tokens[R + aLen] = this.sep;
      tokens.set(row.subarray(split.bStart, split.bEnd), R + aLen + 1);
      tokens[T - 2] = this.sep;
      tokens[T - 1] = this.cls;
      batch.tokenTypeIds!.fill(1, b * T + R + aLen + 1, b * T + T - 1);
      batch.tokenTypeIds![b * T + T - 1] = 2;

      // The backward rows hold reversed text: their spans are sampled on it read forwards again.
      const reverse = rows.biData && b >= B / 2;
      const spanOptions = { maskAlpha: this.maskAlpha, maskBeta: this.maskBeta, reverse, spanUnit: this.spanUnit };
      const starts = Uint8Array.from(tokens, (id) => this.startPiece[id]!);
      const mask0 = sampleSpanMask(starts.subarray(0, R), { ...spanOptions, goal: P - Math.floor(P / 2) }, g);
      const mask1 = sampleSpanMask(starts.subarray(R), { ...spanOptions, goal: Math.floor(P / 2) }, g);
      batch.isMasked.set(mask0, b * T);
      batch.isMasked.set(mask1, b * T + R);
      const half0 = localPermutation(tokens.subarray(0, R), mask0, this.permSize, functional, g);
      const half1 = localPermutation(tokens.subarray(R), mask1, this.permSize, functional, g);

      // [T, T] = [[pm0, 1], [0, pm1]]: the first half (the memory of the next step) sees none of the second,
      // the second sees all of the first.
      const pm = batch.permMask.subarray(b * T * T, (b + 1) * T * T);
      const H = T - R;
      for (let q = 0; q < R; q++) {
        for (let k = 0; k < R; k++) pm[q * T + k] = half0.permMask[q * R + k]!;
        pm.fill(1, q * T + R, (q + 1) * T);
      }
      for (let q = 0; q < H; q++) for (let k = 0; k < H; k++) pm[(R + q) * T + R + k] = half1.permMask[q * H + k]!;

      // Targets in position order fill the first slots; masked <sep>/<cls> take none, so a row may use fewer than P.
      let slot = 0;
      for (let t = 0; t < T; t++) {
        if (!(t < R ? half0.target[t] : half1.target[t - R])) continue;
        batch.targetMapping[(b * P + slot) * T + t] = 1;
        batch.labels[b * P + slot] = tokens[t]!;
        slot++;
      }
    }
    return batch;
  }
}

// ---- Hugging Face's DataCollatorForPermutationLanguageModeling ----

/** A tokenizer with XLNet's other special ids where it has them (SentencePieceTokenizer does: <s>, <eop>, <eod>). */
export type TokenizerWithSpecials = Tokenizer & { bosTokenId?: number | undefined; eopTokenId?: number | undefined; eodTokenId?: number | undefined };

export interface PlmCollatorOptions {
  /** Masked fraction: a span of length s sits in a context of floor(s / plmProbability) tokens (default 1/6). */
  plmProbability?: number;
  /** Span lengths are uniform in [1, maxSpanLength] (default 5). */
  maxSpanLength?: number;
  /** The batch's draws derive from (seed, step). Defaults 0 and 0. */
  seed?: number;
  step?: number;
}

/**
 * HF's DataCollatorForPermutationLanguageModeling (xlnet.md §8.2) on rows of equal, even length T. Its
 * semantics differ from the original pipeline (pitfall 11): masked positions carry <mask> in inputIds,
 * special tokens and padding are never masked and are visible to everybody, one permutation of T/2 orders
 * both halves the same way (every second-half position comes after every first-half one) and the first half
 * may see the second half's unmasked tokens, target_mapping is the identity (P = T, labels -100 off the
 * masked positions), span lengths are uniform and spans ignore word boundaries.
 * "Special" is HF's all_special_ids: <unk>, <s>, </s>, <pad>, <cls>, <sep>, <mask>, <eop>, <eod> where present.
 */
export function plmCollate(rows: readonly ArrayLike<number>[], tokenizer: TokenizerWithSpecials, options: PlmCollatorOptions = {}): XLNetBatch {
  const { plmProbability = 1 / 6, maxSpanLength = 5, seed = 0, step = 0 } = options;
  const B = rows.length;
  if (B === 0) throw new RangeError('plmCollate: the batch has no rows');
  const T = rows[0]!.length;
  const ragged = rows.findIndex((r) => r.length !== T);
  if (ragged >= 0) throw new RangeError(`plmCollate: row ${ragged} has ${rows[ragged]!.length} tokens, row 0 has ${T}; pad the rows to one length first`);
  if (T === 0 || T % 2 !== 0) {
    throw new RangeError(`plmCollate needs an even sequence length (the order is a permutation of T/2 applied to both halves), got ${T}`);
  }
  const { maskTokenId: maskId, padTokenId: padId } = tokenizer;
  if (maskId === undefined) throw new Error('plmCollate needs a <mask> token in the vocabulary (masked positions carry it)');
  if (padId === undefined) throw new Error('plmCollate needs a <pad> token in the vocabulary (padding is never masked)');
  if (!(plmProbability > 0 && plmProbability <= 1)) throw new RangeError(`plmProbability must be in (0, 1], got ${plmProbability}`);
  if (!Number.isInteger(maxSpanLength) || maxSpanLength < 1) throw new RangeError(`maxSpanLength must be a positive integer, got ${maxSpanLength}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  checkSeedPart('step', step);
  const special = new Set(
    [tokenizer.unkTokenId, tokenizer.bosTokenId, tokenizer.eosTokenId, padId, tokenizer.clsTokenId, tokenizer.sepTokenId, maskId, tokenizer.eopTokenId, tokenizer.eodTokenId]
      .filter((id): id is number => id !== undefined),
  );
  const g = batchGenerator(seed, step);
  const batch: XLNetBatch = {
    batchSize: B,
    seqLen: T,
    numPredict: T,
    inputIds: new Int32Array(B * T),
    permMask: new Float32Array(B * T * T),
    targetMapping: new Float32Array(B * T * T),
    labels: new Int32Array(B * T).fill(-100),
    isMasked: new Uint8Array(B * T),
  };
  // Spans: each window of ctx = floor(s / p) tokens masks s consecutive tokens at a random offset in it.
  for (let b = 0; b < B; b++) {
    const masked = batch.isMasked.subarray(b * T, (b + 1) * T);
    for (let cur = 0; cur < T; ) {
      const span = 1 + randInt(g, maxSpanLength);
      const ctx = Math.floor(span / plmProbability);
      const start = cur + randInt(g, ctx - span + 1);
      masked.fill(1, Math.min(start, T), Math.min(start + span, T));
      cur += ctx;
    }
  }
  const half = T / 2;
  for (let b = 0; b < B; b++) {
    const row = rows[b]!;
    const masked = batch.isMasked.subarray(b * T, (b + 1) * T);
    for (let t = 0; t < T; t++) {
      const id = row[t]!;
      if (special.has(id)) masked[t] = 0;
      batch.inputIds[b * T + t] = masked[t] ? maskId : id;
      if (masked[t]) batch.labels[b * T + t] = id;
      batch.targetMapping[(b * T + t) * T + t] = 1;
    }
    // rank[a·T/2 + c] = a·T/2 + π[c]; ordinary unmasked tokens go first (-1); specials keep their rank.
    const pi = randomPermutation(g, half);
    const rank = Int32Array.from({ length: T }, (_, t) => (!masked[t] && !special.has(row[t]!) ? -1 : t - (t % half) + pi[t % half]!));
    const pm = batch.permMask.subarray(b * T * T, (b + 1) * T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) pm[i * T + j] = masked[j] && rank[i]! <= rank[j]! ? 1 : 0;
  }
  return batch;
}
