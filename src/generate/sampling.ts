// sampleNext: the next token of each row from its logits, on the GPU (penalty, temperature, bans, top-k, top-p, seeded draw).
//
// Legend: B batch, V vocab, L history length. Not an autograd op: nothing here has a gradient.
// Up to three kernel launches (kernels/sampling.ts, which also writes the math out) recorded into the current
// command encoder; the only read-back is the caller's `await ids.toArray()` of B int32s.

import { SAMPLE_DRAW_WGSL, SAMPLE_PREPARE_WGSL, SAMPLE_TOP_P_WGSL } from '../../kernels/sampling.js';
import { Kernel } from '../gpu/kernel.js';
import { empty, tensor, type Tensor } from '../tensor.js';
import { dispatch, expectDtype, fmt, grid1d } from '../ops/util.js';

const prepareKernel = new Kernel('sample_prepare', SAMPLE_PREPARE_WGSL);
const topPKernel = new Kernel('sample_top_p', SAMPLE_TOP_P_WGSL);
const drawKernel = new Kernel('sample_draw', SAMPLE_DRAW_WGSL);
/** u32s in the kernels' RowState. */
const ROW_STATE = 5;

export interface SamplingOptions {
  /** Divides the scores (default 1); 0 = greedy: the lowest id among the largest processed scores. */
  temperature?: number;
  /** Keep the k largest scores and every tie of the k-th (0 = off, the default; k >= V keeps all). */
  topK?: number;
  /** Keep the smallest top set whose mass reaches p. Off at 1 (hf, default) or 0 (gpt2-chinese, default); hf with 0 is greedy. */
  topP?: number;
  /** Penalises every distinct id of `history` once (1 = off). hf: x < 0 ? x r : x / r; gpt2-chinese: x / r. */
  repetitionPenalty?: number;
  /** i32 [B, L]: ids already in each row (prompt + generated); -1 (or any id outside [0, V)) is an empty slot. */
  history?: Tensor;
  /** Ids whose score becomes -inf before filtering (GPT2-Chinese bans [UNK]). */
  banIds?: readonly number[];
  /** Processor order and edge rules: 'hf' = docs/gpt2.md §8.3 (default), 'gpt2-chinese' = §8.1. */
  mode?: 'hf' | 'gpt2-chinese';
  /**
   * With `step`, fixes the draw: u = hash(seed, step, row), so the same inputs give the same token on any GPU
   * (up to f32 rounding: WGSL's exp differs by a few ulps between GPUs, which matters only when u falls within
   * ~1e-6 of a boundary between two tokens' cumulative probabilities).
   */
  seed: number;
  /** The generation step (a u32), so a resumed run continues the same sequence of draws. */
  step: number;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 2 ** 32;
}

/**
 * logits: [B, V] f32 on the GPU -> ids: [B] i32 on the GPU (read with toArray()). Greedy when temperature === 0.
 *
 * Semantics are those of Hugging Face's generate(do_sample=True) ('hf') or GPT2-Chinese's sample_sequence
 * ('gpt2-chinese'), exactly, with one choice of our own where neither is defined: tied scores are ordered by
 * id (lower first) wherever order matters (greedy, top-p), as a stable descending sort would order them.
 * The draw walks the kept tokens in id order, so the token is a pure function of (logits, options).
 */
export function sampleNext(logits: Tensor, options: SamplingOptions): Tensor {
  const op = 'sampleNext';
  const mode = options.mode ?? 'hf';
  if (mode !== 'hf' && mode !== 'gpt2-chinese') throw new RangeError(`${op}: mode must be 'hf' or 'gpt2-chinese', got ${String(mode)}`);
  const hf = mode === 'hf';
  const { temperature = 1, topK = 0, topP = hf ? 1 : 0, repetitionPenalty = 1, history, banIds = [], seed, step } = options;

  expectDtype(op, 'f32', { logits });
  if (logits.ndim !== 2 || logits.size === 0) throw new RangeError(`${op}: logits must be [B, V] with B, V >= 1, got ${fmt(logits)}`);
  const [B, V] = logits.shape as [number, number];
  if (!(temperature >= 0 && Number.isFinite(temperature))) throw new RangeError(`${op}: temperature must be a finite number >= 0 (0 = greedy), got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new RangeError(`${op}: topK must be an integer >= 0 (0 = off), got ${topK}`);
  if (!(topP >= 0 && topP <= 1)) throw new RangeError(`${op}: topP must be in [0, 1], got ${topP}`);
  if (!(repetitionPenalty > 0 && Number.isFinite(repetitionPenalty))) {
    throw new RangeError(`${op}: repetitionPenalty must be a finite number > 0 (1 = off), got ${repetitionPenalty}`);
  }
  if (history) {
    expectDtype(op, 'i32', { history });
    if (history.ndim !== 2 || history.shape[0] !== B) throw new RangeError(`${op}: history must be [B, L] = [${B}, L] to match logits ${fmt(logits)}, got ${fmt(history)}`);
  }
  for (const id of banIds) {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new RangeError(`${op}: banIds must be ids in [0, ${V}), got ${id}`);
  }
  if (new Set(banIds).size === V) throw new RangeError(`${op}: banIds bans all ${V} ids; at least one must stay possible`);
  if (!isU32(seed)) throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
  if (!isU32(step)) throw new RangeError(`${op}: step must be an integer in [0, 2^32), got ${step}`);

  // HF's top-p with p = 0 removes everything but its min_tokens_to_keep = 1 top token: greedy after temperature.
  const greedy = temperature === 0 || (hf && topP === 0);
  // Off switches resolved here so the kernel skips their passes: k >= V keeps every token; gpt2-chinese's
  // p >= 1 removes nothing (mass before a token never exceeds the total), and p <= 0 is its "off".
  const k = topK >= V ? 0 : topK;
  const pOn = !greedy && topP > 0 && topP < 1;
  const L = history && repetitionPenalty !== 1 ? history.shape[1]! : 0;

  const ids = empty([B], 'i32', op);
  const z = empty([B, V], 'f32', `${op} scores`);
  const state = empty([B, ROW_STATE], 'i32', `${op} state`);
  const ban = banIds.length > 0 ? tensor(Int32Array.from(banIds), [banIds.length], { dtype: 'i32' }) : null;
  const params = {
    rows: B,
    V,
    L,
    n_ban: banIds.length,
    seed,
    step,
    top_k: greedy ? 0 : k,
    greedy: greedy ? 1 : 0,
    // Greedy with temperature 0 skips the division (x / 1 is exact); hf's p = 0 keeps its temperature.
    temperature: temperature === 0 ? 1 : temperature,
    penalty: repetitionPenalty,
    top_p: topP,
    p_on: pOn ? 1 : 0,
    hf: hf ? 1 : 0,
    one: 1,
  };
  const grid = grid1d(B, 1);
  const label = `logits${fmt(logits)} ${mode} t=${temperature} k=${topK} p=${topP} r=${repetitionPenalty}${history ? ` history${fmt(history)}` : ''}`;
  // An unused binding (L = 0, no bans) still needs a buffer: the logits, bound read-only once more, cost nothing.
  const historyRange = L > 0 ? history!.range : logits.range;
  dispatch(prepareKernel, {
    buffers: [logits.range, historyRange, ban ? ban.range : logits.range, z.range, state.range, ids.range],
    params,
    grid,
    label: `sample_prepare ${label}`,
  });
  if (pOn) dispatch(topPKernel, { buffers: [z.range, state.range], params, grid, label: `sample_top_p ${label}` });
  if (!greedy) dispatch(drawKernel, { buffers: [z.range, state.range, ids.range], params, grid, label: `sample_draw ${label}` });
  // Freed now, reused only by work recorded later: the queue runs these launches first.
  z.dispose();
  state.dispose();
  ban?.dispose();
  return ids;
}
