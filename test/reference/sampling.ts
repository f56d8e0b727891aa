// CPU reference for sampleNext: HF generate(do_sample=True) and GPT2-Chinese sample_sequence written literally (full sorts, cumsums), probabilities in float64.
//
// Legend: V vocab. Each processor rounds its result to f32 (Math.fround), because the scores are f32 tensors in
// PyTorch and on the GPU, and the option values are f32 uniforms on the GPU; softmax, cumulative sums and the
// draw are float64. The tie order of the sorts (torch.sort is not stable) is the one sampleNext defines:
// equal scores ordered by id, lower first, when sorting descending.

import { mix32 } from './hash.js';
export interface ReferenceOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  /** This row's history ids; -1 and other ids outside [0, V) are empty slots. */
  history?: ArrayLike<number>;
  banIds?: readonly number[];
  mode?: 'hf' | 'gpt2-chinese';
}

/** u = top 24 bits of hash(seed, step, row) / 2^24: the draw's uniform number in [0, 1). */
export function drawUniform(seed: number, step: number, row: number): number {
  return (mix32((mix32((mix32(seed) ^ step) >>> 0) ^ row) >>> 0) >>> 8) / 2 ** 24;
}

/** Ids sorted by (score desc, id asc). */
function descending(s: Float64Array): number[] {
  return Array.from(s.keys()).sort((a, b) => s[b]! - s[a]! || a - b);
}

/** softmax(s) in float64 (-inf -> 0). */
function softmax(s: Float64Array): Float64Array {
  const e = masses(s);
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/**
 * e_i = exp(s_i - max s): softmax before normalising. The top-p rules below compare cumulative sums of these
 * with p Z instead of cumulative probabilities with p (the same inequalities times Z), so a boundary that is
 * exact in real numbers stays exact: 1000 tied maxima, p = 0.5 gives 500 e's of 1 against 500, whereas 500
 * probabilities of 0.001 sum to 0.5000000000000003 in float64.
 */
function masses(s: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of s) m = Math.max(m, v);
  return s.map((v) => Math.exp(v - m));
}

/**
 * The processed scores of one row, -inf where removed: the logits processors and warpers of the mode, in its order.
 * Temperature 0 stops after the processors that precede temperature (greedy takes the argmax of these).
 */
export function filteredScores(logits: ArrayLike<number>, o: ReferenceOptions): Float64Array {
  const f = Math.fround;
  const V = logits.length;
  const hf = (o.mode ?? 'hf') === 'hf';
  const t = f(o.temperature ?? 1);
  const r = f(o.repetitionPenalty ?? 1);
  const p = f(o.topP ?? (hf ? 1 : 0));
  const s = Float64Array.from(logits, f);
  const distinct = new Set(Array.from(o.history ?? []).filter((id) => id >= 0 && id < V));
  const ban = () => {
    for (const id of o.banIds ?? []) s[id] = -Infinity;
  };
  if (r !== 1) {
    // hf (since transformers PR #2303): s < 0 ? s r : s / r. gpt2-chinese: s / r whatever the sign.
    for (const id of distinct) s[id] = f(hf && s[id]! < 0 ? s[id]! * r : s[id]! / r);
  }
  if (hf) ban(); // NoBadWordsLogitsProcessor runs with the processors, before the warpers
  if (t !== 0) for (let i = 0; i < V; i++) s[i] = f(s[i]! / t);
  if (!hf) ban(); // GPT2-Chinese: z[unk] = -inf after the temperature
  if (t === 0) return s;
  const k = hf ? (o.topK ? Math.min(Math.max(o.topK, 1), V) : 0) : Math.min(o.topK ?? 0, V);
  if (k > 0) {
    const kth = descending(s)[k - 1]!;
    const threshold = s[kth]!;
    for (let i = 0; i < V; i++) if (s[i]! < threshold) s[i] = -Infinity;
  }
  if (hf && p < 1) {
    // HF TopPLogitsWarper: ascending sort, cumsum of softmax, remove c <= 1 - p but never the last (top) entry.
    const asc = descending(s).reverse();
    const e = masses(Float64Array.from(asc, (i) => s[i]!));
    const Z = e.reduce((a, b) => a + b, 0);
    let c = 0;
    for (let j = 0; j < asc.length - 1; j++) {
      c += e[j]!;
      if (c <= (1 - p) * Z) s[asc[j]!] = -Infinity;
    }
  } else if (!hf && p > 0) {
    // GPT2-Chinese top_k_top_p_filtering: descending sort, cumsum c of softmax; remove position j when c[j - 1] > p.
    const desc = descending(s);
    const e = masses(Float64Array.from(desc, (i) => s[i]!));
    const Z = e.reduce((a, b) => a + b, 0);
    let before = 0;
    const removed: number[] = [];
    for (let j = 0; j < desc.length; j++) {
      if (j > 0 && before > p * Z) removed.push(desc[j]!);
      before += e[j]!;
    }
    for (const id of removed) s[id] = -Infinity;
  }
  return s;
}

/** The filtered softmax: the probability of each id under sampleNext's options (a one-hot for greedy). */
export function filteredProbs(logits: ArrayLike<number>, o: ReferenceOptions): Float64Array {
  const s = filteredScores(logits, o);
  if (isGreedy(o)) {
    const top = descending(s)[0]!;
    return Float64Array.from(s, (_, i) => (i === top ? 1 : 0));
  }
  return softmax(s);
}

function isGreedy(o: ReferenceOptions): boolean {
  return o.temperature === 0 || ((o.mode ?? 'hf') === 'hf' && o.topP === 0);
}

export interface ReferenceDraw {
  id: number;
  /**
   * Ids the GPU may also return, because u * total lies within `tolerance` (relative) of a cumulative boundary
   * of the draw, where f32 sums on the GPU and float64 sums here may round to different sides.
   */
  alternatives: number[];
}

/**
 * The token for the uniform number u: walk the ids with positive probability in increasing id order and take the
 * first whose cumulative probability exceeds u (the last such id if rounding leaves the total below u).
 */
export function drawFrom(probs: Float64Array, u: number, tolerance = 1e-5): ReferenceDraw {
  const kept = Array.from(probs.keys()).filter((i) => probs[i]! > 0);
  let c = 0;
  for (let j = 0; j < kept.length; j++) {
    const before = c;
    c += probs[kept[j]!]!;
    if (c > u || j === kept.length - 1) {
      const alternatives: number[] = [];
      if (j > 0 && u - before < tolerance) alternatives.push(kept[j - 1]!);
      if (j < kept.length - 1 && c - u < tolerance) alternatives.push(kept[j + 1]!);
      return { id: kept[j]!, alternatives };
    }
  }
  throw new Error('drawFrom: no token has positive probability');
}

/** The token sampleNext must return for row `row` of a batch: drawFrom(filteredProbs, drawUniform(seed, step, row)). */
export function sampleRow(logits: ArrayLike<number>, row: number, o: ReferenceOptions & { seed: number; step: number }): ReferenceDraw {
  return drawFrom(filteredProbs(logits, o), drawUniform(o.seed, o.step, row));
}
