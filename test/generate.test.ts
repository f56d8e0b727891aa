// Generation: cached and uncached decoding against plain full forward passes (greedy), the sliding window, seeds.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { generate } from '../src/generate/generate.js';
import { parseWeights } from '../src/io/weights.js';
import { gpt2FromStateDict } from '../src/models/state_dict.js';
import { useGpu } from './helpers.js';

useGpu();

const FIXTURE = fileURLToPath(new URL('../../shared/fixtures/hf/gpt2_tiny', import.meta.url));
const load = () =>
  gpt2FromStateDict(
    JSON.parse(readFileSync(path.join(FIXTURE, 'config.json'), 'utf8')),
    parseWeights(new Uint8Array(readFileSync(path.join(FIXTURE, 'model.safetensors')))),
  ).eval();

/** Greedy decoding the slow, obvious way: a full forward over the last n_positions - 1 tokens, argmax on the CPU. */
async function greedyReference(model: ReturnType<typeof load>, prompt: number[], steps: number): Promise<number[]> {
  const seq = [...prompt];
  const V = model.config.vocab_size;
  for (let s = 0; s < steps; s++) {
    const window = seq.slice(-Math.min(seq.length, model.config.n_positions - 1));
    const logits = w.tidy(() => model.forward({ inputIds: w.tensor(Int32Array.from(window), [1, window.length], { dtype: 'i32' }) }).logits);
    const all = await logits.toArray();
    logits.dispose();
    const last = all.subarray((window.length - 1) * V, window.length * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

describe('generate', { timeout: 600_000 }, () => {
  it('greedy decoding with the KV cache, and without it, equals full forward passes, past the 64-position window', async () => {
    const model = load();
    const prompt = [33, 2, 7, 72, 86, 48, 13, 53, 44, 95];
    const steps = 60; // 10 + 60 tokens: the last steps slide the window (n_positions = 64)
    const want = await greedyReference(model, prompt, steps);
    const cached = await generate(model, [prompt], { maxNewTokens: steps, temperature: 0, seed: 1 });
    const uncached = await generate(model, [prompt], { maxNewTokens: steps, temperature: 0, seed: 1, useCache: false });
    expect(cached[0]).toEqual(want);
    expect(uncached[0]).toEqual(want);
    model.dispose();
  });

  it('sampling repeats for the same seed, differs for another, streams each step, and frees everything', async () => {
    const model = load();
    const before = w.liveBuffers();
    const prompts = [[1, 2, 3], [4, 5, 6]];
    const streamed: number[][] = [];
    const a = await generate(model, prompts, { maxNewTokens: 12, topK: 20, seed: 7, onToken: (ids) => streamed.push(ids) });
    const b = await generate(model, prompts, { maxNewTokens: 12, topK: 20, seed: 7 });
    const c = await generate(model, prompts, { maxNewTokens: 12, topK: 20, seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(streamed).toEqual(a[0]!.map((_, s) => [a[0]![s], a[1]![s]]));
    expect(w.liveBuffers()).toBe(before);
    model.dispose();
  });

  it('stops when its signal aborts, returning the tokens drawn so far', async () => {
    const model = load();
    const before = w.liveBuffers();
    const stop = new AbortController();
    const full = await generate(model, [[1, 2, 3]], { maxNewTokens: 10, topK: 20, seed: 9 });
    const cut = await generate(model, [[1, 2, 3]], {
      maxNewTokens: 10,
      topK: 20,
      seed: 9,
      signal: stop.signal,
      onToken: (_, step) => step === 3 && stop.abort(),
    });
    expect(cut).toEqual([full[0]!.slice(0, 4)]);
    expect(w.liveBuffers()).toBe(before);
    model.dispose();
  });

  it('sampleTexts streams the text it returns, and repeats for a seed', async () => {
    const model = load();
    // A WordPiece vocabulary of the fixture's 101 ids: [PAD] [UNK] [CLS] [SEP] [MASK], then single letters and digits.
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
    const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...Array.from({ length: 96 }, (_, i) => chars[i % 36]! + (i >= 36 ? String(i) : ''))];
    const tokenizer = new w.BertTokenizer(vocab, { variant: 'gpt2-chinese' });
    const streamed: string[] = [];
    const options = { length: 6, seed: 4, topK: 5, onText: (texts: string[]) => streamed.push(texts[0]!) };
    const [text] = await w.sampleTexts(model, tokenizer, '[CLS]a b c', 1, options);
    expect(streamed).toHaveLength(6);
    expect(streamed[5]).toBe(text);
    expect(text!.startsWith('a b c')).toBe(true); // [CLS] becomes a blank line, which the trim removes
    expect(await w.sampleTexts(model, tokenizer, '[CLS]a b c', 1, { length: 6, seed: 4, topK: 5 })).toEqual([text]);
    await expect(w.sampleTexts(model, tokenizer, 'a '.repeat(64), 1)).rejects.toThrow(/prefix is 64 tokens, not shorter than the model's context of 64/);
    model.dispose();
  });

  it('rejects prompts it cannot run', async () => {
    const model = load();
    await expect(generate(model, [[1, 2], [3]], { maxNewTokens: 1, seed: 1 })).rejects.toThrow(/same length/);
    await expect(generate(model, [[500]], { maxNewTokens: 1, seed: 1 })).rejects.toThrow(/outside the vocabulary \[0, 101\)/);
    await expect(generate(model, [], { maxNewTokens: 1, seed: 1 })).rejects.toThrow(/at least one prompt/);
    model.dispose();
  });
});
