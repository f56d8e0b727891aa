// XLNet generation and fill-in-the-blank: decoding against HF's recipe built from plain forward calls, seeds, abort, mask leaks, and the CLI.
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { UsageError } from '../src/cli/args.js';
import { fill } from '../src/cli/fill.js';
import { generateCommand, generateTextsCommand } from '../src/cli/generate.js';
import { fillMasks, fillPieces, fillPositions, generateXLNet, sampleXLNetTexts, xlnetNextLogits } from '../src/generate/xlnet.js';
import { parseWeights } from '../src/io/weights.js';
import { XLNetLMHeadModel, xlnetFromStateDict, type XLNetConfig, type XLNetMems } from '../src/models/xlnet.js';
import type { SentencePieceTokenizer } from '../tokenizers/sentencepiece.js';
import { expectClose, hfFixture, sink, useGpu, values } from './helpers.js';

useGpu();

const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-xlnet-gen-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** xlnet_tiny's weights (V = 101, d = 64, 2 layers, mem_len 8) under a config with some fields replaced; `keep` filters tensors. */
function tiny(over: Partial<XLNetConfig> = {}, keep: (name: string) => boolean = () => true): XLNetLMHeadModel {
  const config = JSON.parse(readFileSync(path.join(hfFixture('xlnet_tiny'), 'config.json'), 'utf8'));
  const weights = parseWeights(new Uint8Array(readFileSync(path.join(hfFixture('xlnet_tiny'), 'model.safetensors'))));
  return xlnetFromStateDict({ ...config, ...over }, new Map([...weights].filter(([name]) => keep(name)))).eval();
}

/** The lowest id among the largest values (sampleNext's greedy rule). */
function argmax(row: ArrayLike<number>, banned: ReadonlySet<number> = new Set()): number {
  let best = -1;
  for (let v = 0; v < row.length; v++) if (!banned.has(v) && (best < 0 || row[v]! > row[best]!)) best = v;
  return best;
}

/** perm_mask [B, T, T] with the last column 1 and target_mapping [B, 1, T] one-hot on the last position (HF's docstring). */
function dummyMasks(B: number, T: number): { permMask: number[]; targetMapping: number[] } {
  const permMask = Array.from({ length: B * T * T }, (_, k) => (k % T === T - 1 ? 1 : 0));
  const targetMapping = Array.from({ length: B * T }, (_, k) => (k % T === T - 1 ? 1 : 0));
  return { permMask, targetMapping };
}

/**
 * Greedy decoding written out from plain forward calls: with `useMems`, HF's prepare_inputs_for_generation (the
 * whole prompt ++ [0] first, then the last two ids ++ [0] against each layer's mems minus their last two
 * positions); without, the whole sequence ++ [0] every step. Argmax on the CPU.
 */
async function recipeReference(model: XLNetLMHeadModel, prompts: number[][], steps: number, useMems: boolean): Promise<number[][]> {
  const rows = prompts.map((p) => [...p]);
  const B = rows.length;
  const V = model.config.vocab_size;
  let mems: XLNetMems | undefined;
  for (let s = 0; s < steps; s++) {
    const fed = rows.map((r) => [...(mems ? r.slice(-2) : r), 0]);
    const T = fed[0]!.length;
    const out = w.tidy(() =>
      model.forward({
        inputIds: w.tensor(Int32Array.from(fed.flat()), [B, T], { dtype: 'i32' }),
        ...dummyMasks(B, T),
        numPredict: 1,
        ...(mems ? { mems: mems.map((m) => w.slice(m, 0, 0, m.shape[0]! - 2)) } : {}),
        useMems,
      }),
    );
    mems?.forEach((m) => m.dispose());
    mems = out.mems;
    const logits = await values(out.logits); // [B, 1, V]
    out.logits.dispose();
    rows.forEach((r, b) => r.push(argmax(logits.subarray(b * V, (b + 1) * V))));
  }
  mems?.forEach((m) => m.dispose());
  return rows.map((r) => r.slice(prompts[0]!.length));
}

const PROMPTS = [
  [17, 42, 3, 88, 9],
  [60, 5, 71, 23, 14],
];
const STEPS = 12; // 5 + 12 ids: past xlnet_tiny's mem_len of 8

describe('generateXLNet', { timeout: 600_000 }, () => {
  it("the first step's logits are one forward with HF's docstring inputs (dummy 0, perm_mask last column, one-hot target)", async () => {
    const model = tiny();
    const got = w.tidy(() => xlnetNextLogits(model, PROMPTS, null, false).logits);
    const T = PROMPTS[0]!.length + 1;
    const want = w.tidy(() =>
      model.forward({
        inputIds: w.tensor(Int32Array.from(PROMPTS.flatMap((p) => [...p, 0])), [2, T], { dtype: 'i32' }),
        ...dummyMasks(2, T),
        numPredict: 1,
        useMems: false,
      }).logits,
    );
    expect(got.shape).toEqual([2, 101]);
    expectClose(await values(got), await values(want), { atol: 1e-5, rtol: 0 }, 'next-token logits');
    got.dispose();
    want.dispose();
    model.dispose();
  });

  for (const memLen of [null, 8]) {
    it(`greedy ids with mems (offset 2) equal HF's recipe step by step, and without mems a full recomputation (B = 2, mem_len ${memLen})`, async () => {
      const model = tiny({ mem_len: memLen });
      const before = w.liveBuffers();
      const cached = await generateXLNet(model, PROMPTS, { maxNewTokens: STEPS, temperature: 0, seed: 1 });
      const recomputed = await generateXLNet(model, PROMPTS, { maxNewTokens: STEPS, temperature: 0, seed: 1, useCache: false });
      expect(w.liveBuffers()).toBe(before);
      expect(cached).toEqual(await recipeReference(model, PROMPTS, STEPS, true));
      expect(recomputed).toEqual(await recipeReference(model, PROMPTS, STEPS, false));
      // Two different computations for a 2-layer 'bi' model (a memory entry never sees later tokens), and these prompts show it.
      expect(cached).not.toEqual(recomputed);
      model.dispose();
    });
  }

  it('where the memory loses nothing (attn_type uni; one bi layer) mems and recomputation give the same ids', async () => {
    const uni = tiny({ attn_type: 'uni', mem_len: null });
    const oneLayer = tiny({ n_layer: 1, mem_len: null }, (name) => !name.includes('.layer.1.'));
    for (const model of [uni, oneLayer]) {
      const cached = await generateXLNet(model, PROMPTS, { maxNewTokens: STEPS, temperature: 0, seed: 1 });
      expect(cached).toEqual(await generateXLNet(model, PROMPTS, { maxNewTokens: STEPS, temperature: 0, seed: 1, useCache: false }));
      model.dispose();
    }
  });

  it('sampling repeats for the same seed, differs for another, streams each step and frees every mems tensor', async () => {
    const model = tiny();
    const before = w.liveBuffers();
    const streamed: number[][] = [];
    const a = await generateXLNet(model, PROMPTS, { maxNewTokens: 10, topK: 20, seed: 7, onToken: (ids) => streamed.push(ids) });
    const b = await generateXLNet(model, PROMPTS, { maxNewTokens: 10, topK: 20, seed: 7 });
    const c = await generateXLNet(model, PROMPTS, { maxNewTokens: 10, topK: 20, seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(streamed).toEqual(a[0]!.map((_, s) => [a[0]![s], a[1]![s]]));
    expect(w.liveBuffers()).toBe(before);
    model.dispose();
  });

  it('stops when its signal aborts, returning the tokens so far, and frees the mems (also after an error)', async () => {
    const model = tiny();
    const before = w.liveBuffers();
    const full = await generateXLNet(model, [[1, 2, 3]], { maxNewTokens: 10, topK: 20, seed: 9 });
    const stop = new AbortController();
    const cut = await generateXLNet(model, [[1, 2, 3]], { maxNewTokens: 10, topK: 20, seed: 9, signal: stop.signal, onToken: (_, step) => step === 3 && stop.abort() });
    expect(cut).toEqual([full[0]!.slice(0, 4)]);
    expect(w.liveBuffers()).toBe(before);
    // A bad option found at the first draw, after the forward made the mems.
    await expect(generateXLNet(model, [[1, 2, 3]], { maxNewTokens: 3, topK: -1, seed: 9 })).rejects.toThrow(/topK must be an integer >= 0/);
    expect(w.liveBuffers()).toBe(before);
    await expect(generateXLNet(model, [[1, 2], [3]], { maxNewTokens: 1, seed: 0 })).rejects.toThrow(/same length/);
    await expect(generateXLNet(model, [[101]], { maxNewTokens: 1, seed: 0 })).rejects.toThrow(/token 101 is outside the vocabulary \[0, 101\)/);
    model.dispose();
    const reuse = tiny({ reuse_len: 4 });
    await expect(generateXLNet(reuse, [[1, 2]], { maxNewTokens: 1, seed: 0 })).rejects.toThrow(/reuse_len is 4/);
    reuse.dispose();
  });
});

describe('XLNet text: sampleXLNetTexts and fillMasks', { timeout: 600_000 }, () => {
  let model: XLNetLMHeadModel;
  let tokenizer: SentencePieceTokenizer;
  /** All of the tokenizer's special ids: fill never chooses or lists them. */
  let specials: Set<number>;
  const dir = path.join(tmp, 'xlnet');

  beforeAll(async () => {
    w.manualSeed(1234);
    model = new XLNetLMHeadModel({ vocab_size: 8000, d_model: 32, n_layer: 2, n_head: 4, d_inner: 64, dropout: 0, mem_len: null }).eval();
    tokenizer = w.loadTokenizer(w.bundledVocabPath('songci-unigram'), { mode: 'xlnet' }) as SentencePieceTokenizer;
    const t = tokenizer;
    specials = new Set([t.unkTokenId, t.bosTokenId, t.eosTokenId, t.clsTokenId, t.sepTokenId, t.padTokenId, t.maskTokenId, t.eodTokenId, t.eopTokenId] as number[]);
    expect([...specials].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    await w.savePretrained(model, dir);
    copyFileSync(w.bundledVocabPath('songci-unigram'), path.join(dir, 'spiece.model'));
  });
  afterAll(() => model.dispose());

  it('the input pieces: a lone "▁" after <mask> is dropped, or moved to the front when the text starts with masks', () => {
    expect(tokenizer.tokenize('春花秋<mask>何时了')).toEqual(['▁', '春', '花', '秋', '<mask>', '▁', '何时', '了']);
    expect(fillPieces(tokenizer, '春花秋<mask>何时了')).toEqual(['▁', '春', '花', '秋', '<mask>', '何时', '了']);
    expect(fillPieces(tokenizer, '<mask><mask>秋月')).toEqual(['▁', '<mask>', '<mask>', '秋', '月']);
    // Whitespace in the text after the <mask> is real: its "▁" stays.
    expect(fillPieces(tokenizer, '春花 <mask> 何时')).toEqual(['▁', '春', '花', '<mask>', '▁', '何时']);
  });

  it('the first fill is the argmax of a forward built by hand; candidates are its softmax, sorted, summing to at most 1', async () => {
    const result = await fillMasks(model, tokenizer, '春花秋<mask>何时了', { candidates: 6 });
    const pieces = ['▁', '春', '花', '秋', '<mask>', '何时', '了', '<sep>', '<cls>'];
    const ids = pieces.map((p) => tokenizer.tokenToId(p)!);
    const T = ids.length;
    const permMask = Array.from({ length: T * T }, (_, k) => (k % T === 4 ? 1 : 0));
    const targetMapping = Array.from({ length: T }, (_, t) => (t === 4 ? 1 : 0));
    const logits = w.tidy(() =>
      model.forward({
        inputIds: w.tensor(Int32Array.from(ids), [1, T], { dtype: 'i32' }),
        tokenTypeIds: [0, 0, 0, 0, 0, 0, 0, 0, 2],
        permMask,
        targetMapping,
        numPredict: 1,
        useMems: false,
      }).logits,
    );
    const row = await values(logits);
    logits.dispose();
    const best = argmax(row, specials);
    const max = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - max), 0);

    const [mask] = result.masks;
    expect(result.masks).toHaveLength(1);
    expect(mask!.position).toBe(4);
    expect(mask!.id).toBe(best);
    expect(mask!.piece).toBe(tokenizer.idToToken(best));
    expect(mask!.candidates[0]!.id).toBe(best);
    expect(result.pieces).toEqual(['▁', '春', '花', '秋', mask!.piece, '何时', '了']);
    expect(result.text).toBe(`春花秋${tokenizer.decode([best])}何时了`);
    expect(result.text.slice(mask!.start, mask!.end)).toBe(tokenizer.decode([best]).trim());
    const probs = mask!.candidates.map((c) => c.probability);
    expect(probs).toHaveLength(6);
    expectClose(probs, mask!.candidates.map((c) => Math.exp(row[c.id]! - max) / z), { atol: 1e-12, rtol: 0 }, 'candidate probabilities');
    expect([...probs].sort((a, b) => b - a)).toEqual(probs);
    expect(probs.reduce((a, b) => a + b)).toBeLessThanOrEqual(1);
    expect(mask!.candidates.some((c) => specials.has(c.id))).toBe(false);
  });

  it('a still-masked position leaks nothing: other ids there give the same fills and candidates', async () => {
    const input = tokenizer.xlnetInputs(fillPieces(tokenizer, '春<mask>秋<mask><mask>时了').map((p) => tokenizer.tokenToId(p)!));
    const positions = [2, 4, 5];
    expect(positions.map((p) => input.inputIds[p])).toEqual([6, 6, 6]);
    const asMasks = await fillPositions(model, tokenizer, input, positions, { candidates: 20 });
    const other = [...input.inputIds];
    [1234, 77, 4321].forEach((id, k) => (other[positions[k]!] = id));
    expect(await fillPositions(model, tokenizer, { ...input, inputIds: other }, positions, { candidates: 20 })).toEqual(asMasks);
  });

  it('two masks fill left to right: the second prediction sees the first fill and only it', async () => {
    const result = await fillMasks(model, tokenizer, '春花<mask>月<mask>时了', { candidates: 20 });
    const [first, second] = result.masks;
    expect([first!.position, second!.position]).toEqual([3, 5]);
    const input = tokenizer.xlnetInputs(fillPieces(tokenizer, '春花<mask>月<mask>时了').map((p) => tokenizer.tokenToId(p)!));
    // Round 2 is one fill of position 5 with the first fill written in...
    const withFirst = [...input.inputIds];
    withFirst[3] = first!.id;
    const [again] = await fillPositions(model, tokenizer, { ...input, inputIds: withFirst }, [5], { candidates: 20 });
    expect(again).toEqual({ position: 5, id: second!.id, candidates: second!.candidates });
    // ... and another piece there changes what position 5 sees.
    withFirst[3] = first!.id === 100 ? 101 : 100;
    const [changed] = await fillPositions(model, tokenizer, { ...input, inputIds: withFirst }, [5], { candidates: 20 });
    expect(changed!.candidates).not.toEqual(second!.candidates);
  });

  it('sampling a fill repeats for a seed; bad input is refused clearly', async () => {
    const text = '<mask>花秋月<mask><mask>了';
    const a = await fillMasks(model, tokenizer, text, { temperature: 1, topK: 50, seed: 3 });
    expect(await fillMasks(model, tokenizer, text, { temperature: 1, topK: 50, seed: 3 })).toEqual(a);
    expect(a.masks.map((m) => m.position)).toEqual([1, 5, 6]);
    // Text outside the vocabulary comes back as written (decode would print <unk> as " ⁇ ").
    const latin = await fillMasks(model, tokenizer, 'hello<mask>world');
    expect(latin.text).toBe(`hello${latin.masks[0]!.piece.replace('\u2581', ' ')}world`);
    await expect(fillMasks(model, tokenizer, '春花秋月何时了')).rejects.toThrow(/the text has no <mask>/);
    await expect(fillMasks(model, tokenizer, `${'春'.repeat(600)}<mask>`)).rejects.toThrow(/more than the 512 a fill takes/);
    const plain = w.loadTokenizer(w.bundledVocabPath('songci-unigram')) as SentencePieceTokenizer;
    await expect(fillMasks(model, plain, '春<mask>')).rejects.toThrow(/in 'xlnet' mode with <mask>, <sep> and <cls>/);
    const small = tiny();
    await expect(fillMasks(small, tokenizer, '春<mask>')).rejects.toThrow(/tokenizer has 8000 pieces but the model's vocab_size is 101/);
    small.dispose();
    const gpt2 = await w.loadPretrained(hfFixture('gpt2_tiny'));
    await expect(fillMasks(gpt2 as unknown as XLNetLMHeadModel, tokenizer, '春<mask>')).rejects.toThrow(/fill needs an XLNet model/);
    gpt2.dispose();
  });

  it('text sampling: prefix first, the padding text seen but not returned, a seed repeats', async () => {
    const before = w.liveBuffers();
    const options = { length: 6, seed: 4, batchSize: 2 };
    const plain = await sampleXLNetTexts(model, tokenizer, '春风', 3, options);
    expect(plain).toHaveLength(3);
    expect(await sampleXLNetTexts(model, tokenizer, '春风', 3, options)).toEqual(plain);
    const padded = await sampleXLNetTexts(model, tokenizer, '春风', 3, { ...options, paddingText: '明月几时有，把酒问青天。' });
    for (const text of [...plain, ...padded]) expect(text.startsWith('春风')).toBe(true);
    expect(padded).not.toEqual(plain);
    expect(w.liveBuffers()).toBe(before);
  });
});

describe('CLI: fill and generate with an XLNet folder', { timeout: 600_000 }, () => {
  const dir = path.join(tmp, 'cli-xlnet');

  beforeAll(async () => {
    w.manualSeed(99);
    const model = new XLNetLMHeadModel({ vocab_size: 8000, d_model: 32, n_layer: 2, n_head: 4, d_inner: 64, dropout: 0, mem_len: null });
    await w.savePretrained(model, dir);
    model.dispose();
    copyFileSync(w.bundledVocabPath('songci-unigram'), path.join(dir, 'spiece.model'));
  });

  it('fill prints the completed text with the fill marked, then the candidates of each mask', async () => {
    const out = sink();
    expect(await fill(['--model-path', dir, '--text', '春花秋<mask>何时了', '--candidates', '3'], out)).toBe(0);
    const lines = out.text.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^春花秋\[[^\]]+\]何时了$/);
    const filled = /^春花秋\[([^\]]+)\]/.exec(lines[0]!)![1];
    const m = /^<mask> 1 -> (\S+) {4}(\S+) (0\.\d{4}) {2}\S+ 0\.\d{4} {2}\S+ 0\.\d{4}$/.exec(lines[1]!);
    expect(m).not.toBeNull();
    expect([m![1], m![2]]).toEqual([filled, filled]); // greedy: the fill is the top candidate
  });

  it('fill refuses a GPT-2 folder, a missing --text and a text without <mask>', async () => {
    await expect(fill(['--model-path', hfFixture('gpt2_tiny'), '--text', '春<mask>'], sink())).rejects.toThrow(/fill runs XLNet models \(model_type "xlnet"\), this folder holds a "gpt2" model/);
    const missing = fill(['--model-path', dir], sink());
    await expect(missing).rejects.toThrow(/fill needs --text/);
    await expect(missing).rejects.toBeInstanceOf(UsageError);
    await expect(fill(['--model-path', dir, '--text', '春花秋月'], sink())).rejects.toThrow(/the text has no <mask>/);
  });

  it('generate and generate-texts sample from an XLNet folder (with and without mems, with padding text); GPT-2 refuses --padding-text', async () => {
    const samples = path.join(tmp, 'samples');
    const args = ['--model-path', dir, '--prefix', '春风', '--length', '5', '--nsamples', '3', '--batch-size', '2', '--seed', '5', '--padding-text', '明月几时有', '--save-samples', '--save-samples-path', samples];
    const out = sink();
    expect(await generateCommand(args, out)).toBe(0);
    const texts = out.text.split(/={40} SAMPLE \d ={40}\n/).slice(1).map((t) => t.split('\n')[0]!);
    expect(texts).toHaveLength(3);
    for (const t of texts) expect(t.startsWith('春风')).toBe(true);
    expect(out.text).toMatch(/3 samples of 5 tokens in/);
    expect(readFileSync(path.join(samples, 'samples.txt'), 'utf8')).toContain('SAMPLE 3');
    expect(await generateCommand([...args, '--no-cache'], sink())).toBe(0);
    const long = sink();
    expect(await generateCommand(['--model-path', dir, '--prefix', '春', '--nsamples', '1', '--topk', '1'], long)).toBe(0);
    expect(long.text).toMatch(/1 samples of 100 tokens in/);
    const textsDir = path.join(tmp, 'texts');
    expect(await generateTextsCommand(['--model-path', dir, '--titles', '春 秋', '--articles-per-title', '2', '--length', '4', '--save-path', textsDir], sink())).toBe(0);
    expect(readdirSync(textsDir).sort()).toEqual(['0-0.txt', '0-1.txt', '1-0.txt', '1-1.txt']);
    expect(readFileSync(path.join(textsDir, '1-0.txt'), 'utf8').startsWith('秋')).toBe(true);
    await expect(generateCommand(['--model-path', hfFixture('gpt2_tiny'), '--padding-text', 'x'], sink())).rejects.toThrow(/--padding-text is for XLNet models/);
    // A pretraining checkpoint's reuse_len does not get in the way of decoding.
    const checkpoint = path.join(tmp, 'cli-xlnet-checkpoint');
    cpSync(dir, checkpoint, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(checkpoint, 'config.json'), 'utf8'));
    writeFileSync(path.join(checkpoint, 'config.json'), JSON.stringify({ ...config, mem_len: 16, reuse_len: 4 }));
    expect(await generateCommand(['--model-path', checkpoint, '--prefix', '春风', '--length', '3', '--nsamples', '1'], sink())).toBe(0);
  });
});
