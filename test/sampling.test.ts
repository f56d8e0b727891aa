// sampleNext against the float64 reference: hand-made edge cases of both modes, random GPT-2-size vocabularies, a chi-square test, read-backs, errors.
//
// Legend: B batch, V vocab, L history length. The GPU and the reference share the draw's hash, so every row must
// come out as exactly the reference's token (or, when u lands within f32 rounding of a cumulative boundary, its
// neighbour). Many draws of one distribution come from one call on B identical rows: the hash is keyed by row.
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { SORT_CAPACITY } from '../kernels/sampling.js';
import { drawFrom, drawUniform, filteredProbs, type ReferenceOptions } from './reference/sampling.js';
import { f32, rand, useGpu } from './helpers.js';

useGpu();

type Mode = 'hf' | 'gpt2-chinese';
const MODES: Mode[] = ['hf', 'gpt2-chinese'];

/** The options of one test, for both sides; `history` holds each row's ids (the GPU gets them -1-padded to [B, L]). */
interface Spec extends Omit<ReferenceOptions, 'history'> {
  history?: number[][];
}

/** A [B, V] batch of logits on the GPU (and its f32 values as float64), with its history tensor if the spec has one. */
class Batch {
  readonly logits: w.Tensor;
  readonly history: w.Tensor | undefined;
  constructor(
    readonly values: Float64Array,
    readonly B: number,
    readonly V: number,
    readonly spec: Spec,
  ) {
    this.logits = w.tensor(Float32Array.from(values), [B, V]);
    if (spec.history) {
      const L = Math.max(1, ...spec.history.map((h) => h.length));
      const ids = new Int32Array(B * L).fill(-1);
      spec.history.forEach((h, b) => ids.set(h, b * L));
      this.history = w.tensor(ids, [B, L], { dtype: 'i32' });
    }
  }

  row(b: number): Float64Array {
    return this.values.subarray(b * this.V, (b + 1) * this.V);
  }

  /** The reference's filtered softmax of each row. */
  probs(): Float64Array[] {
    return Array.from({ length: this.B }, (_, b) => filteredProbs(this.row(b), { ...this.spec, history: this.spec.history?.[b] }));
  }

  async sample(seed: number, step: number): Promise<Int32Array> {
    const { history: _, ...options } = this.spec;
    const ids = w.sampleNext(this.logits, { ...options, history: this.history, seed, step });
    expect(ids.shape).toEqual([this.B]);
    expect(ids.dtype).toBe('i32');
    const out = (await ids.toArray()) as Int32Array;
    ids.dispose();
    return out;
  }

  dispose(): void {
    this.logits.dispose();
    this.history?.dispose();
  }
}

/** B copies of one row. */
function repeatRow(row: readonly number[], B: number): Float64Array {
  const out = new Float64Array(B * row.length);
  for (let b = 0; b < B; b++) out.set(f32(row), b * row.length);
  return out;
}

/** Every id equals the reference draw of its row (or a neighbour at a rounding tie of the draw). */
function expectReference(ids: Int32Array, probs: Float64Array[], seed: number, step: number, what: string): void {
  for (let b = 0; b < ids.length; b++) {
    const ref = drawFrom(probs[b]!, drawUniform(seed, step, b));
    if (ids[b] !== ref.id && !ref.alternatives.includes(ids[b]!)) {
      expect.fail(`${what}: seed ${seed} step ${step} row ${b}: got id ${ids[b]}, the reference draws ${ref.id} (p = ${probs[b]![ref.id]})`);
    }
  }
}

/** Samples B identical rows at a few steps, checks each id against the reference, returns the distinct ids drawn. */
async function drawnIds(row: readonly number[], spec: Spec, B = 512, steps = 2): Promise<number[]> {
  const batch = new Batch(repeatRow(row, B), B, row.length, { ...spec, history: spec.history && Array.from({ length: B }, () => spec.history![0]!) });
  const probs = batch.probs();
  const seen = new Set<number>();
  for (let step = 0; step < steps; step++) {
    const ids = await batch.sample(2024, step);
    expectReference(ids, probs, 2024, step, JSON.stringify(spec));
    for (const id of ids) seen.add(id);
  }
  batch.dispose();
  return [...seen].sort((a, b) => a - b);
}

/** The token sampleNext picks for a one-row batch (the callers ask for greedy decoding). */
async function greedy(row: readonly number[], spec: Spec): Promise<number> {
  const batch = new Batch(f32(row), 1, row.length, spec);
  const [id] = await batch.sample(0, 0);
  batch.dispose();
  return id!;
}

describe('sampleNext: edge cases of docs/gpt2.md §8', () => {
  it('top-k keeps every tie of the k-th largest score; k >= V keeps everything', async () => {
    const row = [3, 1, 2, 2, 2, 0, 2.5, 2];
    for (const mode of MODES) {
      // The third largest is 2: all four 2s stay beside 3 and 2.5.
      expect(await drawnIds(row, { topK: 3, mode })).toEqual([0, 2, 3, 4, 6, 7]);
      expect(await drawnIds(row, { topK: 2, mode })).toEqual([0, 6]);
      expect(await drawnIds(row, { topK: 50, mode })).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    }
  });

  it('top-p exactly at a cumulative boundary: hf removes mass-before >= p, gpt2-chinese only > p (sorted and bisection paths)', async () => {
    // Four tied maxima (ids 0, 2, 4, 5) of probability exactly 1/4; exp(-1000) is 0 in f32 and float64 alike.
    const row = [0, -1000, 0, -1000, 0, 0, -1000, -1000];
    const cases: [number, number[], number[]][] = [
      // p     hf keeps         gpt2-chinese keeps   (ties in id order)
      [0.25, [0], [0, 2]],
      [0.5, [0, 2], [0, 2, 4]],
      [0.75, [0, 2, 4], [0, 2, 4, 5]],
    ];
    for (const [topP, hf, gpt2] of cases) {
      // topK 6 keeps all 8 (the 6th largest is -1000), K <= SORT_CAPACITY: the sorted path; topK 0: the bisection.
      for (const topK of [0, 6]) {
        // 128 draws miss a token of probability 1/4 with probability 1e-16.
        expect(await drawnIds(row, { topP, topK, mode: 'hf' }, 64), `hf p=${topP} k=${topK}`).toEqual(hf);
        expect(await drawnIds(row, { topP, topK, mode: 'gpt2-chinese' }, 64), `gpt2-chinese p=${topP} k=${topK}`).toEqual(gpt2);
      }
    }
  });

  it('top-p switches: hf is off at 1 and greedy at 0; gpt2-chinese is off at 0 and keeps everything at 1', async () => {
    const row = [0.5, 2, -1, 1, 1.5];
    const all = [0, 1, 2, 3, 4];
    expect(await drawnIds(row, { topP: 1, mode: 'hf' })).toEqual(all);
    expect(await drawnIds(row, { topP: 0, mode: 'hf', temperature: 0.7 })).toEqual([1]);
    expect(await drawnIds(row, { topP: 0, mode: 'gpt2-chinese' })).toEqual(all);
    expect(await drawnIds(row, { topP: 1, mode: 'gpt2-chinese' })).toEqual(all);
  });

  it('repetition penalty on negative logits: hf multiplies them (less likely), gpt2-chinese divides them (more likely)', async () => {
    const history = [[0, 0, 0, -1]];
    // z_0 = -1 becomes -2 (hf) or -0.5 (gpt2-chinese) against z_1 = -0.6.
    expect(await greedy([-1, -0.6, -3], { temperature: 0, repetitionPenalty: 2, history, mode: 'hf' })).toBe(1);
    expect(await greedy([-1, -0.6, -3], { temperature: 0, repetitionPenalty: 2, history, mode: 'gpt2-chinese' })).toBe(0);
    // Once per distinct id: id 0 listed three times is divided once (-0.5 < -0.3; three times would give -0.125).
    expect(await greedy([-1, -0.3, -3], { temperature: 0, repetitionPenalty: 2, history, mode: 'gpt2-chinese' })).toBe(1);
    for (const mode of MODES) {
      expect(await greedy([1, 0.3, -3], { temperature: 0, repetitionPenalty: 2, history, mode })).toBe(0);
    }
    // Sampled, with negative and positive history ids, per row.
    const row = [-0.5, 1.2, -2, 0.3, -1.1, 0.8, -0.2, 2];
    for (const mode of MODES) {
      const ids = await drawnIds(row, { repetitionPenalty: 1.7, history: [[0, 4, 7, 4, -1]], mode, temperature: 0.9 });
      expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    }
    const two = new Batch(f32([...row, ...row]), 2, row.length, { repetitionPenalty: 3, history: [[7, 1], [0, 4, 2]], mode: 'hf' });
    const probs = two.probs();
    for (let step = 0; step < 32; step++) expectReference(await two.sample(5, step), probs, 5, step, 'two rows, two histories');
    two.dispose();
  });

  it('banned ids are never drawn and lose greedy, even when the history also penalises them', async () => {
    for (const mode of MODES) {
      expect(await greedy([5, 1, 4, 3], { temperature: 0, banIds: [0], mode })).toBe(2);
      const flat = new Array<number>(16).fill(0);
      const ids = await drawnIds(flat, { banIds: [3, 7], history: [[3, 5]], repetitionPenalty: 1.01, mode });
      expect(ids).toEqual([0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15]);
    }
  });

  it('temperature 0 is greedy: the lowest id among equal maxima, whatever the seed', async () => {
    for (const mode of MODES) {
      expect(await greedy([1, 5, 2, 5, 5], { temperature: 0, mode })).toBe(1);
      // Ties 256 ids apart meet inside one invocation's strided loop, not only in the workgroup tree.
      const wide = new Array<number>(600).fill(0);
      for (const id of [556, 300, 44]) wide[id] = 5;
      expect(await greedy(wide, { temperature: 0, mode })).toBe(44);
      expect(await drawnIds([1, 5, 2, 5, 5], { temperature: 0, topK: 3, topP: 0.5, mode }, 64)).toEqual([1]);
    }
  });

  it('all-equal logits at V = 21128: top-k 8 keeps all V ties (past the sort capacity) and top-p halves them exactly', async () => {
    const V = 21128;
    const B = 3;
    for (const [spec, lastKept] of [
      [{ topK: 8, mode: 'gpt2-chinese' }, V - 1],
      [{ topK: 8, topP: 0.5, mode: 'hf' }, V / 2 - 1],
      [{ topK: 8, topP: 0.5, mode: 'gpt2-chinese' }, V / 2],
    ] as [Spec, number][]) {
      const batch = new Batch(new Float64Array(B * V), B, V, spec);
      const probs = batch.probs();
      expect(probs[0]!.lastIndexOf(probs[0]![0]!)).toBe(lastKept);
      for (let step = 0; step < 6; step++) expectReference(await batch.sample(11, step), probs, 11, step, JSON.stringify(spec));
      batch.dispose();
    }
  });
});

describe('sampleNext: random options on rows full of ties', () => {
  it('120 random cases (V up to 3000, across the sort capacity; a few score levels) draw exactly the reference token', async () => {
    for (let trial = 0; trial < 120; trial++) {
      const r = rand(16, 1000 + trial, 0, 1);
      const pick = (i: number, n: number): number => Math.floor(r[i]! * n);
      const V = 2 + pick(0, [40, 1100, 3000][trial % 3]!);
      const B = 1 + pick(1, 4);
      const levels = 1 + pick(2, 6);
      const values = f32(Array.from(rand(B * V, 77 + trial, 0, 1), (u) => Math.floor(u * levels) * 0.5 - 1));
      const mode: Mode = r[3]! < 0.5 ? 'hf' : 'gpt2-chinese';
      const spec: Spec = {
        mode,
        topK: r[4]! < 0.3 ? 0 : pick(5, V + 3),
        topP: r[6]! < 0.3 ? undefined : [0.25, 0.5, 0.75, r[7]!, 1, 0][pick(8, 6)],
        temperature: r[9]! < 0.1 ? 0 : 0.5 + r[10]!,
        repetitionPenalty: r[11]! < 0.5 ? 1 : 1 + 2 * r[12]!,
        history: Array.from({ length: B }, (_, b) => Array.from(rand(5, trial * 10 + b, 0, V), Math.floor)),
        banIds: r[13]! < 0.3 ? [pick(14, V)] : [],
      };
      const batch = new Batch(values, B, V, spec);
      const probs = batch.probs();
      for (const [seed, step] of [[trial, 0], [trial, 1], [5, trial]] as const) {
        expectReference(await batch.sample(seed, step), probs, seed, step, `case ${trial} V=${V} ${JSON.stringify(spec)}`);
      }
      batch.dispose();
    }
  });
});

describe('sampleNext: random logits at GPT-2 vocabulary sizes', () => {
  const SEED_STEPS: [number, number][] = [
    [0, 0],
    [0, 1],
    [1, 0],
    [7, 1000],
    [42, 17],
    [123456789, 5],
    [2 ** 31, 99],
    [2 ** 32 - 1, 2 ** 32 - 1],
  ];
  /** Per row: ids drawn from a small pool, so they repeat, then -1 padding. */
  const historyOf = (B: number, V: number): number[][] =>
    Array.from({ length: B }, (_, b) => [...Array.from(rand(30, 90 + b, 0, 12), (u) => Math.floor(u) * 1013 % V), -1, -1]);
  const configs = (B: number, V: number): [string, Spec][] => [
    ['hf, no filter', { mode: 'hf' }],
    ['hf, top-k 50 (its default)', { mode: 'hf', topK: 50 }],
    ['hf, top-k 50, top-p 0.9, t 0.7 (sorted top-p)', { mode: 'hf', topK: 50, topP: 0.9, temperature: 0.7 }],
    ['hf, top-p 0.95, penalty 1.3 (bisection top-p)', { mode: 'hf', topP: 0.95, repetitionPenalty: 1.3, history: historyOf(B, V) }],
    [`hf, top-k ${SORT_CAPACITY + 1} (past the sort capacity), top-p 0.8`, { mode: 'hf', topK: SORT_CAPACITY + 1, topP: 0.8 }],
    ['hf, greedy with penalty', { mode: 'hf', temperature: 0, repetitionPenalty: 1.2, history: historyOf(B, V) }],
    ['gpt2-chinese defaults: top-k 8, [UNK] banned', { mode: 'gpt2-chinese', topK: 8, banIds: [100] }],
    [
      'gpt2-chinese, top-k 40, top-p 0.5, penalty 1.5, t 1.2',
      { mode: 'gpt2-chinese', topK: 40, topP: 0.5, repetitionPenalty: 1.5, temperature: 1.2, banIds: [100], history: historyOf(B, V) },
    ],
    ['gpt2-chinese, top-p 0.9, t 0.8', { mode: 'gpt2-chinese', topP: 0.9, temperature: 0.8 }],
  ];

  for (const V of [21128, 50257]) {
    for (const B of [1, 3]) {
      it(`V = ${V}, B = ${B}: every (seed, step) draws exactly the reference token`, async () => {
        // Rows of different sharpness: logits uniform in +-4, +-8, +-12.
        const values = new Float64Array(B * V);
        for (let b = 0; b < B; b++) values.set(f32(rand(V, V + 10 * B + b, -4 * (b + 1), 4 * (b + 1))), b * V);
        for (const [name, spec] of configs(B, V)) {
          const batch = new Batch(values, B, V, spec);
          const probs = batch.probs();
          for (const [seed, step] of SEED_STEPS) expectReference(await batch.sample(seed, step), probs, seed, step, name);
          batch.dispose();
        }
      });
    }
  }
});

describe('sampleNext: statistics', () => {
  /** Upper 0.1 % point of chi-square with df degrees of freedom (Wilson-Hilferty; z = 3.09). */
  const chi2Critical = (df: number): number => df * (1 - 2 / (9 * df) + 3.09 * Math.sqrt(2 / (9 * df))) ** 3;

  for (const [mode, spec] of [
    ['gpt2-chinese', { mode: 'gpt2-chinese', topK: 8, topP: 0.9, temperature: 0.8, repetitionPenalty: 1.3, history: [[1, 6, 10]], banIds: [0] }],
    ['hf', { mode: 'hf', topK: 6, topP: 0.85, repetitionPenalty: 1.3, history: [[5, 1]] }],
  ] as [Mode, Spec][]) {
    it(`${mode}: the empirical distribution of 10240 draws matches the filtered softmax (chi-square, fixed seed)`, async () => {
      const row = [2, 1.5, 1.4, 1.4, 0.3, -0.5, 0.9, -2, 1.1, 0, -1, 0.7];
      const B = 2048;
      const steps = 5;
      const batch = new Batch(repeatRow(row, B), B, row.length, { ...spec, history: Array.from({ length: B }, () => spec.history![0]!) });
      const probs = batch.probs()[0]!;
      const counts = new Array<number>(row.length).fill(0);
      for (let step = 0; step < steps; step++) for (const id of await batch.sample(77, step)) counts[id]!++;
      batch.dispose();
      const n = B * steps;
      let chi2 = 0;
      let bins = 0;
      for (let i = 0; i < row.length; i++) {
        if (probs[i] === 0) {
          expect(counts[i], `id ${i} was filtered out but drawn`).toBe(0);
          continue;
        }
        chi2 += (counts[i]! - n * probs[i]!) ** 2 / (n * probs[i]!);
        bins++;
      }
      expect(bins).toBeGreaterThan(3);
      expect(chi2).toBeLessThan(chi2Critical(bins - 1));
    });
  }
});

describe('sampleNext: the engine', () => {
  it('reads back only the ids: one read-back per sampleNext + toArray, no buffers left behind, the same ids again', async () => {
    const V = 5000;
    const logits = w.tensor(Float32Array.from(f32(rand(2 * V, 3, -5, 5))), [2, V]);
    const history = w.tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], { dtype: 'i32' });
    const rt = w.runtime();
    for (const options of [
      { temperature: 0 },
      { topK: 8 },
      { topK: 8, topP: 0.9, history, repetitionPenalty: 1.2, banIds: [100] },
      { topP: 0.9, mode: 'gpt2-chinese' as const },
    ]) {
      await w.sync();
      const live = w.liveBuffers();
      const readbacks = rt.stats.readbacks;
      const ids = w.sampleNext(logits, { ...options, seed: 9, step: 3 });
      const first = Array.from(await ids.toArray());
      expect(rt.stats.readbacks - readbacks, JSON.stringify(Object.keys(options))).toBe(1);
      ids.dispose();
      expect(w.liveBuffers()).toBe(live);
      const again = w.sampleNext(logits, { ...options, seed: 9, step: 3 });
      expect(Array.from(await again.toArray())).toEqual(first);
      again.dispose();
    }
    logits.dispose();
    history.dispose();
  });

  it('rejects bad options with clear errors', () => {
    const logits = w.tensor(new Float32Array(6), [2, 3]);
    const wrongBatch = w.tensor(new Int32Array(3), [3, 1], { dtype: 'i32' });
    const f32History = w.tensor(new Float32Array(2), [2, 1]);
    const i32Logits = w.tensor(new Int32Array(6), [2, 3], { dtype: 'i32' });
    const flat = w.tensor(new Float32Array(3), [3]);
    const ok = { seed: 1, step: 0 };
    const bad: [string, () => unknown, RegExp][] = [
      ['negative temperature', () => w.sampleNext(logits, { ...ok, temperature: -1 }), /temperature must be a finite number >= 0/],
      ['NaN temperature', () => w.sampleNext(logits, { ...ok, temperature: NaN }), /temperature/],
      ['topP > 1', () => w.sampleNext(logits, { ...ok, topP: 1.5 }), /topP must be in \[0, 1\]/],
      ['topP < 0', () => w.sampleNext(logits, { ...ok, topP: -0.1 }), /topP must be in \[0, 1\]/],
      ['fractional topK', () => w.sampleNext(logits, { ...ok, topK: 2.5 }), /topK must be an integer >= 0/],
      ['zero penalty', () => w.sampleNext(logits, { ...ok, repetitionPenalty: 0 }), /repetitionPenalty must be a finite number > 0/],
      ['history with the wrong batch', () => w.sampleNext(logits, { ...ok, history: wrongBatch }), /history must be \[B, L\] = \[2, L\]/],
      ['f32 history', () => w.sampleNext(logits, { ...ok, history: f32History }), /expected i32 for history/],
      ['i32 logits', () => w.sampleNext(i32Logits, ok), /expected f32 for logits/],
      ['1-d logits', () => w.sampleNext(flat, ok), /logits must be \[B, V\]/],
      ['ban out of range', () => w.sampleNext(logits, { ...ok, banIds: [3] }), /banIds must be ids in \[0, 3\)/],
      ['every id banned', () => w.sampleNext(logits, { ...ok, banIds: [0, 1, 2] }), /bans all 3 ids/],
      ['negative seed', () => w.sampleNext(logits, { seed: -1, step: 0 }), /seed must be an integer in \[0, 2\^32\)/],
      ['fractional step', () => w.sampleNext(logits, { seed: 1, step: 0.5 }), /step must be an integer/],
      ['unknown mode', () => w.sampleNext(logits, { ...ok, mode: 'torch' as Mode }), /mode must be 'hf' or 'gpt2-chinese'/],
    ];
    for (const [what, call, message] of bad) expect(call, what).toThrow(message);
    for (const t of [logits, wrongBatch, f32History, i32Logits, flat]) t.dispose();
  });
});
