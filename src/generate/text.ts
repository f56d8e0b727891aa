// Text in, text out: GPT2-Chinese's generation recipe (prefix ids, sampling rules, post-processing) shared by the CLI and the web page. Browser-clean.

import { postprocessGpt2Chinese, type Gpt2ChinesePostprocessStyle, type Tokenizer } from '../../tokenizers/index.js';
import type { GPT2LMHeadModel } from '../models/gpt2.js';
import { generate, type GenerateOptions } from './generate.js';

export interface TextSamplingOptions {
  /** Tokens to generate per sample (default: n_ctx). */
  length?: number;
  /** Divide the logits by this; 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 8 (GPT2-Chinese). */
  topK?: number;
  /** Nucleus threshold; 0 = off (GPT2-Chinese's convention). Default 0. */
  topP?: number;
  /** Penalise tokens already in the text; 1 = off. Default 1. */
  repetitionPenalty?: number;
  /** 'hf' (sign-aware penalty, the default) or 'gpt2-chinese' (generate.py's exact rules). */
  compat?: 'hf' | 'gpt2-chinese';
  /** Same seed, same text: sample s of a call draws with seed·7919 + seedOffset + s. Default 0. */
  seed?: number;
  seedOffset?: number;
  /** Samples generated together. Default 1. */
  batchSize?: number;
  /** KV cache (default true). */
  useCache?: boolean;
  /** Called after each step with the text so far of every row of the current batch, for streaming. */
  onText?: (texts: string[], firstSample: number) => void;
  /** Stops generating (after the step in flight); the texts so far are returned. */
  signal?: AbortSignal;
}

/** The prefix as token ids, refused when empty or not shorter than the context. */
export function prefixIds(tokenizer: Tokenizer, prefix: string, nCtx: number): number[] {
  const ids = tokenizer.encode(prefix);
  if (ids.length === 0) throw new Error('the prefix is empty after tokenization; give at least one token (e.g. "[CLS]")');
  if (ids.length >= nCtx) throw new Error(`the prefix is ${ids.length} tokens, not shorter than the model's context of ${nCtx}`);
  return ids;
}

/** Ids to text as GPT2-Chinese prints it (tokens joined, [CLS]/[SEP]/[MASK] turned into line breaks per `style`). */
export function idsToText(tokenizer: Tokenizer, ids: readonly number[], style: Gpt2ChinesePostprocessStyle = 'generate'): string {
  return postprocessGpt2Chinese(ids.map((id) => tokenizer.idToToken(id) ?? '[UNK]'), style);
}

/** `count` samples continuing `prefix`, post-processed; [UNK] is never drawn. */
export async function sampleTexts(
  model: GPT2LMHeadModel,
  tokenizer: Tokenizer,
  prefix: string,
  count: number,
  options: TextSamplingOptions = {},
  style: Gpt2ChinesePostprocessStyle = 'generate',
): Promise<string[]> {
  const nCtx = model.config.n_positions;
  const ids = prefixIds(tokenizer, prefix, nCtx);
  const unk = tokenizer.unkTokenId;
  return sampleInBatches(ids, count, options.length === undefined || options.length < 0 ? nCtx : options.length, options, unk === undefined ? [] : [unk],
    (rows, generateOptions) => generate(model, rows, generateOptions),
    (row) => idsToText(tokenizer, row, style));
}

/**
 * The batch loop of the text recipes (GPT-2's here, XLNet's in xlnet.ts): `count` samples continuing `ids` by
 * `length` tokens, batchSize rows at a time, drawn by `run` with the CLI's sampling rules (GPT2-Chinese's topp 0
 * is "off"; sample s draws with seed·7919 + seedOffset + s) and never drawing `banIds`; each turned into text by
 * `toText` (also while streaming, for onText).
 */
export async function sampleInBatches(
  ids: readonly number[],
  count: number,
  length: number,
  options: TextSamplingOptions,
  banIds: readonly number[],
  run: (rows: number[][], options: GenerateOptions) => Promise<number[][]>,
  toText: (ids: number[]) => string,
): Promise<string[]> {
  const batchSize = options.batchSize ?? 1;
  if (!(Number.isInteger(count) && count >= 1) || !(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new Error(`the number of samples and the batch size must be whole numbers >= 1, got ${count} and ${batchSize}`);
  }
  const compat = options.compat === 'gpt2-chinese';
  const topP = options.topP ?? 0;
  const texts: string[] = [];
  for (let done = 0; done < count && !options.signal?.aborted; done += batchSize) {
    const rows = Array.from({ length: Math.min(batchSize, count - done) }, () => [...ids]);
    const out = await run(rows, {
      maxNewTokens: length,
      temperature: options.temperature ?? 1,
      topK: options.topK ?? 8,
      // GPT2-Chinese's topp 0 means "off"; in HF's rules "off" is 1.
      topP: compat ? topP : topP <= 0 ? 1 : topP,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      banIds,
      mode: compat ? 'gpt2-chinese' : 'hf',
      seed: (options.seed ?? 0) * 7919 + (options.seedOffset ?? 0) + done,
      useCache: options.useCache ?? true,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onText
        ? {
            onToken: (chosen: number[]) => {
              chosen.forEach((id, b) => rows[b]!.push(id));
              options.onText!(rows.map(toText), done);
            },
          }
        : {}),
    });
    for (const row of out) texts.push(toText([...ids, ...row]));
  }
  return texts;
}
