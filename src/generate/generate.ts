// Autoregressive generation for GPT-2: KV-cache decoding, sampling on the GPU, only the chosen ids read back. Browser-clean.
//
// Each step feeds the new token with the cached keys/values (gpt2.md §4). Past n_positions the window slides
// as in GPT2-Chinese's sample_sequence: the last n_positions - 1 tokens are recomputed with positions from 0
// (every step, since sliding by one token changes every position). The sampler gets the whole history for
// the repetition penalty; ids are drawn with a counter-based RNG keyed by (seed, step), so a run repeats.

import { noGrad } from '../autograd.js';
import { reshape } from '../ops/shape.js';
import { tensor, tidy } from '../tensor.js';
import type { GPT2LMHeadModel, LayerPast } from '../models/gpt2.js';
import { sampleNext, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends Omit<SamplingOptions, 'history' | 'step'> {
  /** Tokens to add to each row. */
  maxNewTokens: number;
  /** Feed only the new token with cached keys/values (default true); false recomputes the whole window each step. */
  useCache?: boolean;
  /** Called with each step's new ids (one per row), for streaming. */
  onToken?: (ids: number[], step: number) => void;
  /** Stops after the step in flight when aborted; the tokens drawn so far are returned. */
  signal?: AbortSignal;
}

function freePast(past: LayerPast[] | null): void {
  for (const p of past ?? []) {
    p.key.dispose();
    p.value.dispose();
  }
}

/**
 * Continues each row of `prompts` (equal lengths, >= 1 token) by maxNewTokens sampled tokens.
 * Returns the new tokens of each row (the prompt not included), fewer than maxNewTokens if `signal` aborted.
 */
export async function generate(model: GPT2LMHeadModel, prompts: readonly (readonly number[])[], options: GenerateOptions): Promise<number[][]> {
  const B = prompts.length;
  const T0 = prompts[0]?.length ?? 0;
  if (B === 0 || T0 === 0) throw new Error('generate: give at least one prompt of at least one token');
  if (prompts.some((p) => p.length !== T0)) throw new Error('generate: prompts in one batch must have the same length');
  const { vocab_size: V, n_positions: nCtx } = model.config;
  const bad = prompts.flat().find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new Error(`generate: prompt token ${bad} is outside the vocabulary [0, ${V})`);
  const rows = prompts.map((p) => [...p]);
  const useCache = options.useCache ?? true;
  const wasTraining = model.training;
  model.eval();
  let past: LayerPast[] | null = null;
  try {
    for (let step = 0; step < options.maxNewTokens && !options.signal?.aborted; step++) {
      const len = rows[0]!.length;
      // Feed the new token against the cache, or (no cache yet / window full / cache off) the last window.
      const incremental = useCache && past !== null && len <= nCtx;
      const window = incremental ? 1 : Math.min(len, nCtx - 1);
      const input = Int32Array.from(rows.flatMap((r) => r.slice(len - window)));
      const historyData = Int32Array.from(rows.flat());
      const ids = noGrad(() =>
        tidy(() => {
          const inputIds = tensor(input, [B, window], { dtype: 'i32' });
          const out = model.forward({ inputIds, ...(incremental ? { pastKeyValues: past! } : {}), useCache, logitsToKeep: 1 });
          const last = reshape(out.logits, [B, V]); // [B, V]
          const history = tensor(historyData, [B, len], { dtype: 'i32' });
          const next = sampleNext(last, { ...options, history, step });
          const oldPast = past;
          past = useCache && len < nCtx ? out.pastKeyValues! : null;
          if (past) for (const p of past) [p.key, p.value].forEach((t) => t.untrack());
          freePast(oldPast === past ? null : oldPast);
          return next;
        }),
      );
      const chosen = Array.from(await ids.toArray()); // the only read-back: B ids
      ids.dispose();
      chosen.forEach((id, b) => rows[b]!.push(id));
      options.onToken?.(chosen, step);
    }
  } finally {
    freePast(past);
    model.train(wasTraining);
  }
  return rows.map((r) => r.slice(T0));
}

