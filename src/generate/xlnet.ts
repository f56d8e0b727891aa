// XLNet generation: HF's decoding recipe (a dummy token read by the query stream, mems with offset 2), text sampling with the padding-text trick, and fill-in-the-blank for <mask>s. Browser-clean.
//
// Legend: B batch, S ids so far, T positions of one call, M memory length, V vocab, d d_model.
//
// XLNet has no causal mask: a token is predicted by the query stream of a position whose content is hidden.
// Decoding (docs/xlnet.md §6, HF prepare_inputs_for_generation) appends a dummy id 0 that no query may see
// (perm_mask's last column is 1) and predicts it with a one-slot target mapping: logits = output[:, 0, :].
// With mems, a step feeds the last OFFSET = 2 ids ++ [dummy] against each layer's previous memory minus its
// last 2 positions (the previous dummy and the previous newest token, recomputed now that a newer one exists).
//
// The cache is not a shortcut to the same numbers, unlike GPT-2's. Attention is bidirectional, so a memory
// entry holds a token's layer input as it was when the token was recent: it has seen the next token (the offset
// recomputes it once) but not later ones, while recomputing the whole sequence (useCache: false) lets every
// token see every other. For a 1-layer or attn_type 'uni' model both give the same ids; for the usual
// 2+-layer 'bi' model they differ, as in HF (use_mems=True vs False).
//
// Long sequences: with config.mem_len each layer keeps its last mem_len positions (Transformer-XL recurrence:
// older context reaches the prediction only through the memory of the layers above); with mem_len null or 0
// the memory keeps everything and a step's cost grows with the length, as recomputation's does.

import { noGrad } from '../autograd.js';
import { reshape, slice } from '../ops/shape.js';
import { tensor, tidy, type Tensor } from '../tensor.js';
import { XLNetLMHeadModel, type XLNetMems } from '../models/xlnet.js';
import type { SentencePieceTokenizer } from '../../tokenizers/sentencepiece.js';
import type { GenerateOptions } from './generate.js';
import { sampleNext } from './sampling.js';
import { sampleInBatches, type TextSamplingOptions } from './text.js';

/** Cached positions recomputed each step (HF's offset: 1 would be purely autoregressive; 2 lets a token see its successor). */
const OFFSET = 2;
/** The id fed at the predicted position (HF uses 0); nobody sees it, so its value does not matter. */
const DUMMY_ID = 0;
/** Tokens per sample when the caller asks for -1: XLNet has no context size to fill (relative positions, memory). */
export const XLNET_DEFAULT_LENGTH = 100;
/** Longest fill input, <sep> <cls> included: XLNet's pretraining length. Each round attends over all of it. */
export const MAX_FILL_TOKENS = 512;

function freeMems(mems: XLNetMems | null): void {
  for (const m of mems ?? []) m.dispose();
}

/**
 * One decoding step, HF's prepare_inputs_for_generation + forward: the next-token logits [B, V] of each row of
 * `rows` (the ids so far, [B, S]) and, with useMems, the new mems (per layer [M, B, d], untracked: the caller frees
 * them). Without `mems` the call sees rows ++ [dummy] (T = S + 1); with the previous step's mems it sees the last 2
 * ids ++ [dummy] (T = 3) against those mems minus their last 2 positions. `mems` themselves are left alone.
 * Runs in the caller's scope (logits and the sliced mems belong to it).
 */
export function xlnetNextLogits(
  model: XLNetLMHeadModel,
  rows: readonly (readonly number[])[],
  mems: XLNetMems | null,
  useMems: boolean,
): { logits: Tensor; mems?: XLNetMems } {
  const B = rows.length;
  const S = rows[0]!.length;
  const fed = mems ? Math.min(OFFSET, S) : S;
  const T = fed + 1;
  const kept = mems ? mems[0]!.shape[0]! - OFFSET : 0; // memory positions still valid
  const inputIds = tensor(Int32Array.from(rows.flatMap((r) => [...r.slice(S - fed), DUMMY_ID])), [B, T], { dtype: 'i32' });
  const permMask = new Float32Array(B * T * T); // [B, T, T]: column T-1 (the dummy) hidden from every query
  for (let bi = 0; bi < B * T; bi++) permMask[bi * T + T - 1] = 1;
  const targetMapping = new Float32Array(B * T); // [B, 1, T]: one slot, at the dummy
  for (let b = 0; b < B; b++) targetMapping[b * T + T - 1] = 1;
  const out = model.forward({
    inputIds,
    permMask,
    targetMapping,
    numPredict: 1,
    // mem_len <= 2 leaves nothing once the recomputed positions are cut: the step then sees only its own 3 positions, as in HF.
    ...(mems && kept > 0 ? { mems: mems.map((m) => slice(m, 0, 0, kept)) } : {}),
    useMems,
  });
  return { logits: reshape(out.logits, [B, model.config.vocab_size]), ...(out.mems ? { mems: out.mems } : {}) };
}

/**
 * Continues each row of `prompts` (equal lengths, >= 1 token) by maxNewTokens sampled tokens, HF's XLNet recipe.
 * Returns the new tokens of each row (the prompt not included), fewer than maxNewTokens if `signal` aborted.
 * The sampler gets every id so far as history (repetition penalty); only the B chosen ids are read back per step.
 */
export async function generateXLNet(model: XLNetLMHeadModel, prompts: readonly (readonly number[])[], options: GenerateOptions): Promise<number[][]> {
  const B = prompts.length;
  const T0 = prompts[0]?.length ?? 0;
  if (B === 0 || T0 === 0) throw new Error('generateXLNet: give at least one prompt of at least one token');
  if (prompts.some((p) => p.length !== T0)) throw new Error('generateXLNet: prompts in one batch must have the same length');
  const { vocab_size: V, reuse_len } = model.config;
  const bad = prompts.flat().find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new Error(`generateXLNet: prompt token ${bad} is outside the vocabulary [0, ${V})`);
  const useCache = options.useCache ?? true;
  // reuse_len (a pretraining setting) keeps only a call's first positions in the memory, so the cut of the last 2 would hit the wrong ones.
  if (useCache && reuse_len && reuse_len > 0) {
    throw new Error(`generateXLNet: config.reuse_len is ${reuse_len}; decoding with mems needs every position in the memory (reuse_len only matters for pretraining: set it to null, or pass useCache: false)`);
  }
  const rows = prompts.map((p) => [...p]);
  const wasTraining = model.training;
  model.eval();
  let mems: XLNetMems | null = null;
  try {
    for (let step = 0; step < options.maxNewTokens && !options.signal?.aborted; step++) {
      const historyData = Int32Array.from(rows.flat());
      const ids = noGrad(() =>
        tidy(() => {
          const out = xlnetNextLogits(model, rows, mems, useCache);
          // The new mems are ours before anything else can throw; the old ones were only read by work already recorded.
          const old = mems;
          mems = out.mems ?? null;
          freeMems(old);
          const history = tensor(historyData, [B, rows[0]!.length], { dtype: 'i32' });
          return sampleNext(out.logits, { ...options, history, step });
        }),
      );
      let chosen: number[];
      try {
        chosen = Array.from(await ids.toArray()); // the only read-back: B ids
      } finally {
        ids.dispose();
      }
      chosen.forEach((id, b) => rows[b]!.push(id));
      options.onToken?.(chosen, step);
    }
  } finally {
    freeMems(mems);
    model.train(wasTraining);
  }
  return rows.map((r) => r.slice(T0));
}

/**
 * Ids never drawn when sampling text: <unk> (unreadable, and the dummy id 0; the GPT-2 path bans [UNK] too) and
 * <pad>, <mask>, <cls>, <sep>, <s>, </s>, which XLNet's pretraining never predicts (data_utils' targets are the
 * stream's pieces except <sep> and <cls>; the others are not in the stream). <eod> and <eop> stay possible: the
 * model learned where documents and paragraphs end.
 */
function textBanIds(tokenizer: SentencePieceTokenizer): number[] {
  const { unkTokenId, padTokenId, maskTokenId, clsTokenId, sepTokenId, bosTokenId, eosTokenId } = tokenizer;
  return [unkTokenId, padTokenId, maskTokenId, clsTokenId, sepTokenId, bosTokenId, eosTokenId].filter((id): id is number => id !== undefined);
}

export interface XLNetTextSamplingOptions extends Omit<TextSamplingOptions, 'length'> {
  /** Tokens to generate per sample; -1 or absent = XLNET_DEFAULT_LENGTH (100). */
  length?: number;
  /**
   * HF's trick for short prompts (transformers#774, #1531): this text and an <eod> go in front of the prefix, so
   * the model starts from a finished document rather than from nothing. The model sees it; the returned text does
   * not include it. It counts as history for the repetition penalty, as in HF. Default: none.
   */
  paddingText?: string;
}

/**
 * `count` samples continuing `prefix` (encoded without <sep> <cls>, as HF's run_generation does), each returned as
 * prefix + continuation decoded by tokenizer.decode. Sampling defaults are text.ts's (temperature 1, top-k 8).
 */
export async function sampleXLNetTexts(
  model: XLNetLMHeadModel,
  tokenizer: SentencePieceTokenizer,
  prefix: string,
  count: number,
  options: XLNetTextSamplingOptions = {},
): Promise<string[]> {
  const ids = tokenizer.encode(prefix, { addSpecialTokens: false });
  if (ids.length === 0) throw new Error('the prefix is empty after tokenization; give at least one token');
  let padding: number[] = [];
  if (options.paddingText) {
    const eod = tokenizer.eodTokenId;
    if (eod === undefined) throw new Error('--padding-text needs an <eod> piece in the vocabulary to end the padding document');
    padding = [...tokenizer.encode(options.paddingText, { addSpecialTokens: false }), eod];
  }
  const length = options.length === undefined || options.length < 0 ? XLNET_DEFAULT_LENGTH : options.length;
  return sampleInBatches(ids, count, length, options, textBanIds(tokenizer),
    (rows, generateOptions) => generateXLNet(model, rows.map((r) => [...padding, ...r]), generateOptions),
    (row) => tokenizer.decode(row));
}

// ---- fill-in-the-blank ----

export interface FillOptions {
  /** Divide the logits by this before drawing; 0 = greedy (the default). */
  temperature?: number;
  /** Draw among the k most likely pieces; 0 = all (the default). */
  topK?: number;
  /** Seed of the draws when temperature > 0; round r draws with (seed, r). Default 0. */
  seed?: number;
  /** Candidates listed per filled position. Default 5. */
  candidates?: number;
}

export interface FillCandidate {
  id: number;
  piece: string;
  /** softmax of the logits (temperature 1) over the whole vocabulary, in float64. */
  probability: number;
}

export interface FilledPosition {
  /** Index in the model input. */
  position: number;
  id: number;
  /** The most likely pieces, most likely first (ties: lower id first); special pieces are not listed. */
  candidates: FillCandidate[];
}

export interface FilledMask extends FilledPosition {
  piece: string;
  /** The filled piece's characters in FillResult.text: text.slice(start, end) (a word-start space left outside). */
  start: number;
  end: number;
}

export interface FillResult {
  /** The text with every <mask> replaced (tokenizer.decodePieces of `pieces`: XLNet's normalisation, unknown text kept). */
  text: string;
  /** The text's pieces after filling (no <sep> <cls>; a run of text the vocabulary lacks is one piece holding that text). */
  pieces: string[];
  /** One per <mask>, left to right (the order they were filled in). */
  masks: FilledMask[];
}

/** Every special id of the tokenizer: a fill must be text. */
function fillBanIds(tokenizer: SentencePieceTokenizer): number[] {
  return [...textBanIds(tokenizer), tokenizer.eodTokenId, tokenizer.eopTokenId].filter((id): id is number => id !== undefined);
}

/**
 * The text's pieces for filling: XLNet's tokenization (`<mask>` etc. cut out as special tokens), with one change.
 * The tokenizer encodes the text after a special token as a text of its own, so it gets its own dummy prefix "▁"
 * (HF does the same). In Chinese that is a lone "▁" piece in the middle of a line, which pretraining text never
 * has. When the text has no whitespace right after the <mask>, that lone "▁" is dropped; when only masks come
 * before it ("<mask>花秋月"), it moves to the front, where encoding the whole text puts the dummy prefix. A "▁"
 * merged into a word piece ("▁world") is left alone: it marks a word start that the text may well have.
 */
export function fillPieces(tokenizer: SentencePieceTokenizer, text: string): string[] {
  const MASK = '<mask>';
  const pieces = tokenizer.tokenize(text);
  const out: string[] = [];
  let maskEnd = 0; // where, in `text`, the last <mask> seen ends
  let textSeen = false;
  pieces.forEach((piece, i) => {
    if (piece === MASK) {
      maskEnd = text.indexOf(MASK, maskEnd) + MASK.length;
      out.push(piece);
      return;
    }
    const dummy = piece === '\u2581' && pieces[i - 1] === MASK && !/^\s/.test(text.slice(maskEnd));
    if (dummy && !textSeen) out.unshift(piece);
    if (!dummy) out.push(piece);
    textSeen = true;
  });
  return out;
}

/** The top `k` allowed ids of one row of logits with their softmax probabilities (float64). */
function topCandidates(logits: Float32Array, k: number, banned: ReadonlySet<number>, tokenizer: SentencePieceTokenizer): FillCandidate[] {
  if (k === 0) return [];
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  const top: number[] = []; // ids, best first; a new id goes after every id with a score >= its own (lower id first on ties)
  for (let id = 0; id < logits.length; id++) {
    if (banned.has(id) || (top.length === k && logits[id]! <= logits[top[k - 1]!]!)) continue;
    let at = top.length;
    while (at > 0 && logits[top[at - 1]!]! < logits[id]!) at--;
    top.splice(at, 0, id);
    if (top.length > k) top.pop();
  }
  return top.map((id) => ({ id, piece: tokenizer.idToToken(id)!, probability: Math.exp(logits[id]! - max) / sum }));
}

/**
 * Fills `positions` of one XLNet input (ids [T] and token types [T], XLNet's layout), left to right, whatever ids
 * sit there now. Round r: every position not yet filled is hidden from every query (perm_mask column = 1), so its
 * id cannot matter (its own content stream still sees itself, but no other position reads that stream), the query
 * stream predicts positions[r] from a one-slot target mapping, and the chosen id is written in and seen by the later
 * rounds. One row of V logits is read back per round, for the candidates; the choice itself is sampleNext's.
 */
export async function fillPositions(
  model: XLNetLMHeadModel,
  tokenizer: SentencePieceTokenizer,
  input: { inputIds: readonly number[]; tokenTypeIds: readonly number[] },
  positions: readonly number[],
  options: FillOptions = {},
): Promise<FilledPosition[]> {
  const ids = [...input.inputIds];
  const T = ids.length;
  const V = model.config.vocab_size;
  const order = [...positions].sort((a, b) => a - b);
  if (order.some((p, i) => !Number.isInteger(p) || p < 0 || p >= T || p === order[i - 1])) {
    throw new Error(`fill: positions must be distinct indices in [0, ${T}), got ${positions.join(', ')}`);
  }
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new Error(`fill: token ${bad} is outside the vocabulary [0, ${V})`);
  const k = options.candidates ?? 5;
  if (!(Number.isInteger(k) && k >= 0)) throw new Error(`fill: candidates must be a whole number >= 0, got ${k}`);
  const banIds = fillBanIds(tokenizer);
  const banned = new Set(banIds);
  const wasTraining = model.training;
  model.eval();
  const filled: FilledPosition[] = [];
  try {
    for (const [round, target] of order.entries()) {
      const permMask = new Float32Array(T * T); // [1, T, T]
      for (const hidden of order.slice(round)) for (let i = 0; i < T; i++) permMask[i * T + hidden] = 1;
      const targetMapping = new Float32Array(T); // [1, 1, T]
      targetMapping[target] = 1;
      const [chosenT, logitsT] = noGrad(() =>
        tidy(() => {
          const out = model.forward({
            inputIds: tensor(Int32Array.from(ids), [1, T], { dtype: 'i32' }),
            tokenTypeIds: input.tokenTypeIds,
            permMask,
            targetMapping,
            numPredict: 1,
            useMems: false,
          });
          const logits = reshape(out.logits, [1, V]); // [1, V]
          const next = sampleNext(logits, { temperature: options.temperature ?? 0, topK: options.topK ?? 0, banIds, seed: options.seed ?? 0, step: round });
          return [next, logits] as const;
        }),
      );
      let chosen: number;
      let row: Float32Array;
      try {
        chosen = (await chosenT.toArray())[0]!;
        row = (await logitsT.toArray()) as Float32Array;
      } finally {
        chosenT.dispose();
        logitsT.dispose();
      }
      ids[target] = chosen;
      filled.push({ position: target, id: chosen, candidates: topCandidates(row, k, banned, tokenizer) });
    }
  } finally {
    model.train(wasTraining);
  }
  return filled;
}

/**
 * Fill-in-the-blank: each <mask> in `text` is one piece to predict (write n <mask>s for a span of n pieces).
 * The input is the text's pieces (fillPieces) + <sep> <cls>, filled left to right by fillPositions; greedy unless
 * options.temperature > 0. Refuses a model that is not XLNet, a tokenizer without XLNet's <mask> <sep> <cls>
 * (or not in 'xlnet' mode, which is what cuts <mask> out of the text), a text without <mask>, and an input
 * longer than MAX_FILL_TOKENS.
 */
export async function fillMasks(model: XLNetLMHeadModel, tokenizer: SentencePieceTokenizer, text: string, options: FillOptions = {}): Promise<FillResult> {
  if (!(model instanceof XLNetLMHeadModel)) throw new Error('fill needs an XLNet model (model_type xlnet): it predicts with the query stream');
  const { maskTokenId, sepTokenId, clsTokenId } = tokenizer;
  if (tokenizer.mode !== 'xlnet' || maskTokenId === undefined || sepTokenId === undefined || clsTokenId === undefined) {
    throw new Error("fill needs a SentencePiece tokenizer in 'xlnet' mode with <mask>, <sep> and <cls> pieces (XLNet's spiece.model)");
  }
  if (tokenizer.vocabSize > model.config.vocab_size) {
    throw new Error(`the tokenizer has ${tokenizer.vocabSize} pieces but the model's vocab_size is ${model.config.vocab_size}`);
  }
  const pieces = fillPieces(tokenizer, text);
  const textIds = pieces.map((p) => tokenizer.tokenToId(p) ?? tokenizer.unkTokenId);
  const positions = textIds.flatMap((id, i) => (id === maskTokenId ? [i] : []));
  if (positions.length === 0) throw new Error('the text has no <mask>; write one <mask> per piece to predict, e.g. "春花秋<mask>何时了"');
  const input = tokenizer.xlnetInputs(textIds);
  if (input.inputIds.length > MAX_FILL_TOKENS) {
    throw new Error(`the text is ${input.inputIds.length} tokens with <sep> <cls>, more than the ${MAX_FILL_TOKENS} a fill takes`);
  }
  const filled = await fillPositions(model, tokenizer, input, positions, options);
  for (const f of filled) pieces[f.position] = tokenizer.idToToken(f.id)!;
  // decodePieces, not decode: text the vocabulary does not cover comes back as written rather than as <unk>'s " ⁇ ".
  const decoded = tokenizer.decodePieces(pieces);
  // A piece's span: decoding is prefix-stable, so the text of pieces[0..p] ends where piece p's characters end.
  const masks = filled.map((f) => {
    let start = tokenizer.decodePieces(pieces.slice(0, f.position)).length;
    const end = tokenizer.decodePieces(pieces.slice(0, f.position + 1)).length;
    while (start < end && decoded[start] === ' ') start++;
    return { ...f, piece: pieces[f.position]!, start, end };
  });
  return { text: decoded, pieces, masks };
}
