// GPT2-Chinese's data pipeline, browser-clean: articles -> token pieces ([MASK] … [CLS]) -> n_ctx windows every stride -> shuffled batches.
//
// Semantics follow GPT2-Chinese's train.py (gpt2.md §6), with its crashes fixed:
//   - build_files: "\n" -> " [SEP] "; articles split into numPieces contiguous chunks (the last takes the
//     remainder); an article is kept when it has more than minLength characters (Unicode code points, as
//     Python's len); each kept article becomes [MASK] ids(article) [CLS].
//   - windows: n_ctx tokens every stride, plus one window aligned to the piece's end. GPT2-Chinese emits a
//     short window for a piece shorter than n_ctx and then crashes on the ragged batch; we drop such windows.
//   - an epoch visits pieces in a random order, shuffles each piece's windows and drops the last partial batch.
//   - train_single: all articles joined into one text, cut into numPieces equal character spans, no markers.
// Randomness comes from a seeded generator, so an epoch's order is a pure function of (seed, epoch): resuming
// at (epoch, step) replays exactly the batches an uninterrupted run would have seen.

import { Generator } from '../src/random.js';
import type { Tokenizer } from '../tokenizers/index.js';

/** Python's len(): code points, not UTF-16 units (one CJK extension-B character is 2 units, 1 char). */
function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function requireToken(tokenizer: Tokenizer, token: string): number {
  const id = tokenizer.tokenToId(token);
  if (id === undefined) throw new Error(`the vocabulary has no ${token} token, which GPT2-Chinese's data format needs`);
  return id;
}

/** Token ids of a text: tokenize, then look up; unknown tokens become [UNK] (convert_tokens_to_ids). */
function idsOf(tokenizer: Tokenizer, text: string, unk: number): number[] {
  return tokenizer.tokenize(text).map((t) => tokenizer.tokenToId(t) ?? unk);
}

export interface PieceOptions {
  /** Chunks the corpus is split into (GPT2-Chinese default 100). */
  numPieces?: number;
  /** Articles with at most this many characters are dropped (default 128). */
  minLength?: number;
}

/** build_files: one Int32Array of token ids per piece ([MASK] article [CLS], article after article). Empty pieces are dropped. */
export function buildPieces(articles: readonly string[], tokenizer: Tokenizer, options: PieceOptions = {}): Int32Array[] {
  const { numPieces = 100, minLength = 128 } = options;
  if (!Number.isInteger(numPieces) || numPieces < 1) throw new RangeError(`numPieces must be a positive integer, got ${numPieces}`);
  const mask = requireToken(tokenizer, '[MASK]');
  const cls = requireToken(tokenizer, '[CLS]');
  const unk = requireToken(tokenizer, '[UNK]');
  requireToken(tokenizer, '[SEP]');
  const lines = articles.map((a) => a.replace(/\n/g, ' [SEP] '));
  const size = Math.floor(lines.length / numPieces);
  const pieces: Int32Array[] = [];
  for (let k = 0; k < numPieces; k++) {
    const chunk = lines.slice(size * k, k === numPieces - 1 ? lines.length : size * (k + 1));
    const ids: number[] = [];
    for (const line of chunk) {
      if (charLength(line) <= minLength) continue;
      ids.push(mask, ...idsOf(tokenizer, line, unk), cls);
    }
    if (ids.length > 0) pieces.push(Int32Array.from(ids));
  }
  return pieces;
}

/** train_single: the articles as one text cut into numPieces equal character spans, tokenized without markers. */
export function buildSinglePieces(articles: readonly string[], tokenizer: Tokenizer, options: { numPieces?: number } = {}): Int32Array[] {
  const { numPieces = 100 } = options;
  if (!Number.isInteger(numPieces) || numPieces < 1) throw new RangeError(`numPieces must be a positive integer, got ${numPieces}`);
  const unk = requireToken(tokenizer, '[UNK]');
  const chars = [...articles.map((a) => a.replace(/\n/g, ' [SEP] ')).join('')];
  const span = Math.floor(chars.length / numPieces);
  const pieces: Int32Array[] = [];
  for (let k = 0; k < numPieces; k++) {
    const text = chars.slice(span * k, k === numPieces - 1 ? chars.length : span * (k + 1)).join('');
    const ids = idsOf(tokenizer, text, unk);
    if (ids.length > 0) pieces.push(Int32Array.from(ids));
  }
  return pieces;
}

/** Start offsets of the n_ctx-token windows of a piece of `length` tokens: every stride, plus one end-aligned. */
export function windowStarts(length: number, nCtx: number, stride: number): number[] {
  if (!Number.isInteger(stride) || stride < 1) throw new RangeError(`stride must be a positive integer, got ${stride}`);
  const starts: number[] = [];
  let start = 0;
  while (start < length - nCtx) {
    starts.push(start);
    start += stride;
  }
  // The end-aligned window; a piece shorter than n_ctx has none (GPT2-Chinese would emit a short one and crash).
  if (start < length && length >= nCtx) starts.push(length - nCtx);
  return starts;
}

/** One batch: batchSize windows, each given as (piece, start). */
export interface Batch {
  windows: [piece: number, start: number][];
}

/** Fisher-Yates with our seeded generator. */
function shuffle<T>(items: T[], g: Generator): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(g.next() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

export interface EpochOptions {
  nCtx: number;
  stride: number;
  batchSize: number;
  seed: number;
  epoch: number;
}

/**
 * The batches of one epoch, in order: pieces in a random order; within a piece its windows shuffled and cut
 * into batches, the last partial batch dropped (as GPT2-Chinese does per piece). Pure in (pieces' lengths, options).
 */
export function epochBatches(pieceLengths: readonly number[], options: EpochOptions): Batch[] {
  const { nCtx, stride, batchSize, seed, epoch } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  // One generator per epoch, derived from the run's seed: epoch e's order does not depend on how many
  // random numbers earlier epochs drew, so a resumed run can start straight at epoch e.
  const g = new Generator(seed * 1000 + epoch);
  const order = shuffle([...pieceLengths.keys()], g);
  const batches: Batch[] = [];
  for (const piece of order) {
    const starts = shuffle(windowStarts(pieceLengths[piece]!, nCtx, stride), g);
    for (let i = 0; i + batchSize <= starts.length; i += batchSize) {
      batches.push({ windows: starts.slice(i, i + batchSize).map((s) => [piece, s]) });
    }
  }
  return batches;
}

/** The [batchSize, nCtx] token ids of a batch, row-major, ready for tensor(..., { dtype: 'i32' }). */
export function batchTokens(pieces: readonly Int32Array[], batch: Batch, nCtx: number): Int32Array {
  const out = new Int32Array(batch.windows.length * nCtx);
  batch.windows.forEach(([piece, start], row) => out.set(pieces[piece]!.subarray(start, start + nCtx), row * nCtx));
  return out;
}

/**
 * GPT2-Chinese's estimate of the optimizer steps of a run (for the LR schedule):
 * int(total tokens / stride · epochs / batch_size / gradient_accumulation).
 */
export function estimatedTotalSteps(totalTokens: number, o: { stride: number; epochs: number; batchSize: number; gradientAccumulation: number }): number {
  return Math.floor(((totalTokens / o.stride) * o.epochs) / o.batchSize / o.gradientAccumulation);
}
