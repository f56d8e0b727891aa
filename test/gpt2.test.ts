// GPT-2 parity with Hugging Face (../shared/fixtures/hf gpt2_tiny, gpt2_tiny_backward), from all three weight formats.
import { readFileSync, mkdtempSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { parseSafetensors, toFloat32 } from '../src/io/safetensors.js';
import { parseWeights } from '../src/io/weights.js';
import { GPT2LMHeadModel, type LayerPast } from '../src/models/gpt2.js';
import { gpt2FromStateDict } from '../src/models/state_dict.js';
import { loadPretrained } from '../src/models/pretrained.js';
import { expectClose, expectFixtureGrads, fixtureTensors, hfFixture, useGpu, values } from './helpers.js';

useGpu();

const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));

interface JsonTensor {
  shape: number[];
  data: number[];
}
const ids = (t: JsonTensor): w.Tensor => w.tensor(Int32Array.from(t.data), t.shape, { dtype: 'i32' });


const LOGITS = { atol: 1e-4, rtol: 0 };
const FORMATS = ['model.safetensors', 'pytorch_model.bin', 'pytorch_model.legacy.bin'];

function load(name: string, file: string): GPT2LMHeadModel {
  const config = readJson(path.join(hfFixture(name), 'config.json'));
  const model = gpt2FromStateDict(config, parseWeights(new Uint8Array(readFileSync(path.join(hfFixture(name), file))), file));
  return model.eval();
}

// The first model run compiles every kernel's pipeline, which takes a while on a CPU adapter.
describe('GPT-2 forward parity (gpt2_tiny)', { timeout: 600_000 }, () => {
  const inputs = readJson(path.join(hfFixture('gpt2_tiny'), 'inputs.json'));
  const want = fixtureTensors('gpt2_tiny');
  const scalars = readJson(path.join(hfFixture('gpt2_tiny'), 'expected.json'));

  for (const file of FORMATS) {
    it(`${file}: logits, loss, -100 labels, cache, padding`, async () => {
      const model = load('gpt2_tiny', file);
      // full: logits, loss and the returned cache.
      {
        const out = w.tidy(() => {
          const o = model.forward({ inputIds: ids(inputs.full.input_ids), labels: ids(inputs.full.labels), useCache: true });
          return { logits: o.logits, loss: o.loss!, past: o.pastKeyValues!.flatMap((p) => [p.key, p.value]) };
        });
        expectClose(await values(out.logits), want.get('full.logits')!, LOGITS, 'full.logits');
        expectClose([await out.loss.item()], [scalars.full.loss], { atol: 1e-5, rtol: 1e-5 }, 'full.loss');
        for (let i = 0; i < 2; i++) {
          expectClose(await values(out.past[2 * i]!), want.get(`full.past_key_values.${i}.key`)!, LOGITS, `past ${i} key`);
          expectClose(await values(out.past[2 * i + 1]!), want.get(`full.past_key_values.${i}.value`)!, LOGITS, `past ${i} value`);
        }
        w.tidy(() => [out.logits, out.loss, ...out.past].forEach((t) => t.dispose()));
      }
      // labels with -100: mean over the remaining predictions only.
      {
        const c = inputs.full_ignore_index;
        const loss = w.tidy(() => model.forward({ inputIds: ids(c.input_ids), labels: ids(c.labels) }).loss!);
        expectClose([await loss.item()], [scalars.full_ignore_index.loss], { atol: 1e-5, rtol: 1e-5 }, 'full_ignore_index.loss');
        loss.dispose();
      }
      // incremental decode: 10 tokens, then 6 single-token steps through the KV cache.
      {
        const all = inputs.incremental.input_ids as JsonTensor;
        const column = (from: number, to: number): w.Tensor =>
          w.tensor(Int32Array.from([0, 1].flatMap((b) => all.data.slice(b * 16 + from, b * 16 + to))), [2, to - from], { dtype: 'i32' });
        let past: LayerPast[] = w.tidy(() => model.forward({ inputIds: column(0, 10), useCache: true }).pastKeyValues!);
        const prefix = w.tidy(() => model.forward({ inputIds: column(0, 10) }).logits);
        expectClose(await values(prefix), want.get('incremental.prefix_logits')!, LOGITS, 'prefix_logits');
        prefix.dispose();
        const steps: Float64Array[] = [];
        for (let t = 10; t < 16; t++) {
          const r = w.tidy(() => {
            const o = model.forward({ inputIds: column(t, t + 1), pastKeyValues: past, useCache: true });
            return { logits: o.logits, past: o.pastKeyValues! };
          });
          for (const p of past) [p.key, p.value].forEach((x) => x.dispose());
          past = r.past;
          steps.push(await values(r.logits));
          r.logits.dispose();
        }
        // step_logits [2, 6, V]: row b, step s.
        const V = 101;
        const stepLogits = new Float64Array(2 * 6 * V);
        steps.forEach((s, k) => [0, 1].forEach((b) => stepLogits.set(s.subarray(b * V, (b + 1) * V), (b * 6 + k) * V)));
        expectClose(stepLogits, want.get('incremental.step_logits')!, LOGITS, 'step_logits');
        for (let i = 0; i < 2; i++) expectClose(await values(past[i]!.key), want.get(`incremental.past_key_values.${i}.key`)!, LOGITS, 'cached key');
        for (const p of past) [p.key, p.value].forEach((x) => x.dispose());
      }
      // padding: right (mask only) and left (mask + position ids), every position compared.
      for (const name of ['right_padding', 'left_padding'] as const) {
        const c = inputs[name];
        const logits = w.tidy(
          () =>
            model.forward({
              inputIds: ids(c.input_ids),
              attentionMask: ids(c.attention_mask),
              ...(c.position_ids ? { positionIds: ids(c.position_ids) } : {}),
            }).logits,
        );
        expectClose(await values(logits), want.get(`${name}.logits`)!, LOGITS, `${name}.logits`);
        logits.dispose();
      }
      model.dispose();
    });
  }
});

describe('GPT-2 backward parity (gpt2_tiny_backward)', () => {
  for (const file of FORMATS) {
    it(`${file}: loss and every parameter gradient within 1e-3 relative`, async () => {
      const model = load('gpt2_tiny_backward', file);
      const c = readJson(path.join(hfFixture('gpt2_tiny_backward'), 'inputs.json')).train_step;
      const scalars = readJson(path.join(hfFixture('gpt2_tiny_backward'), 'expected.json'));
      const loss = w.tidy(() => {
        const o = model.forward({ inputIds: ids(c.input_ids), labels: ids(c.labels) });
        o.loss!.backward();
        return o.loss!;
      });
      expectClose([await loss.item()], [scalars.train_step.loss], { atol: 1e-5, rtol: 1e-5 }, 'loss');
      await expectFixtureGrads(model.namedParameters(), 'gpt2_tiny_backward');
      loss.dispose();
      model.dispose();
    });
  }
});

describe('GPT-2 checkpoints', () => {
  it('loadPretrained reads each format from a folder, and save() writes a folder that loads back bit for bit', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-gpt2-'));
    try {
      const src = hfFixture('gpt2_tiny');
      copyFileSync(path.join(src, 'config.json'), path.join(tmp, 'config.json'));
      copyFileSync(path.join(src, 'pytorch_model.legacy.bin'), path.join(tmp, 'pytorch_model.bin'));
      const fromLegacy = ((await loadPretrained(tmp)) as GPT2LMHeadModel).eval();
      const out = path.join(tmp, 'saved');
      await fromLegacy.save(out);
      const back = ((await loadPretrained(out)) as GPT2LMHeadModel).eval();
      const stored = parseSafetensors(new Uint8Array(readFileSync(path.join(out, 'model.safetensors'))));
      expect(stored.metadata.format).toBe('pt');
      expect(stored.tensors.has('lm_head.weight')).toBe(false); // tied, as save_pretrained writes it
      expect(stored.tensors.has('transformer.h.0.attn.c_attn.weight')).toBe(true);
      const input = w.tensor(Int32Array.from([5, 9, 2, 77]), [1, 4], { dtype: 'i32' });
      const a = w.tidy(() => fromLegacy.forward({ inputIds: input }).logits);
      const b = w.tidy(() => back.forward({ inputIds: input }).logits);
      expect(Array.from(await a.toArray())).toEqual(Array.from(await b.toArray()));
      for (const t of [a, b, input]) t.dispose();
      fromLegacy.dispose();
      back.dispose();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses checkpoints that do not fit the config, naming the tensor and both shapes', () => {
    const config = readJson(path.join(hfFixture('gpt2_tiny'), 'config.json'));
    const weights = parseWeights(new Uint8Array(readFileSync(path.join(hfFixture('gpt2_tiny'), 'model.safetensors'))));
    const before = w.liveBuffers();
    // The first mismatch in the file's order is reported: e.g. "transformer.h.0.attn.c_attn.weight" has [64,192], needs [32,96].
    expect(() => gpt2FromStateDict({ ...config, n_embd: 32, n_head: 4 }, weights)).toThrow(
      /"transformer\.[\w.]+" has shape \[[\d,]+\] but the config \(n_embd 32, n_head 4, n_layer 2, vocab_size 101, n_positions 64\) needs \[[\d,]+\]/,
    );
    const partial = new Map(weights);
    partial.delete('transformer.h.1.mlp.c_fc.bias');
    expect(() => gpt2FromStateDict(config, partial)).toThrow(/missing 1 weight\(s\): h.1.mlp.c_fc.bias/);
    const extra = new Map(weights);
    extra.set('transformer.h.0.attn.bias', weights.get('transformer.ln_f.bias')!); // a mask buffer: skipped
    extra.set('transformer.h.0.attn.c_attn.extra', weights.get('transformer.ln_f.bias')!);
    expect(() => gpt2FromStateDict(config, extra)).toThrow(/unexpected tensor "transformer.h.0.attn.c_attn.extra"/);
    // A failed load frees what it had allocated.
    expect(w.liveBuffers()).toBe(before);
  });

  it('sinusoidal positions: a fixed table, not a parameter, saved as wpe.weight and recomputed on load', async () => {
    const cfg = { n_layer: 1, n_embd: 16, n_head: 2, n_positions: 12, vocab_size: 20, position_embedding_type: 'sinusoidal' as const };
    const model = new GPT2LMHeadModel(cfg).eval();
    expect(model.namedParameters().some(([n]) => n.includes('wpe'))).toBe(false);
    const table = await values(model.transformer.wpe.weight);
    // pe[pos, 2i] = sin(pos / 10000^(2i/C)), pe[pos, 2i+1] = cos(...)
    expectClose([table[3 * 16 + 4]!, table[3 * 16 + 5]!], [Math.sin(3 / 10000 ** (4 / 16)), Math.cos(3 / 10000 ** (4 / 16))], { atol: 1e-7, rtol: 0 }, 'pe');
    const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-sin-'));
    try {
      await model.save(tmp);
      const stored = parseSafetensors(new Uint8Array(readFileSync(path.join(tmp, 'model.safetensors'))));
      expect(Array.from(toFloat32(stored.tensors.get('transformer.wpe.weight')!))).toEqual(Array.from(table));
      const back = ((await loadPretrained(tmp)) as GPT2LMHeadModel).eval();
      const input = w.tensor(Int32Array.from([1, 5, 7]), [1, 3], { dtype: 'i32' });
      const a = w.tidy(() => model.forward({ inputIds: input }).logits);
      const b = w.tidy(() => back.forward({ inputIds: input }).logits);
      expect(Array.from(await b.toArray())).toEqual(Array.from(await a.toArray()));
      for (const t of [a, b, input]) t.dispose();
      back.dispose();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    model.dispose();
  });

  it('attention dropout (attn_pdrop) acts in training only, seeded by manualSeed', async () => {
    const cfg = { n_layer: 2, n_embd: 16, n_head: 2, n_positions: 12, vocab_size: 20, embd_pdrop: 0, resid_pdrop: 0 };
    const input = w.tensor(Int32Array.from([1, 5, 7, 2, 9, 3, 3, 0]), [2, 4], { dtype: 'i32' });
    w.manualSeed(1);
    const model = new GPT2LMHeadModel({ ...cfg, attn_pdrop: 0.5 });
    const logits = async (seed: number): Promise<Float32Array> => {
      w.manualSeed(seed);
      const out = w.tidy(() => model.forward({ inputIds: input }).logits);
      const got = (await out.toArray()) as Float32Array;
      out.dispose();
      return got;
    };
    model.eval();
    const plain = await logits(3);
    model.train();
    const dropped = await logits(3);
    expect(dropped).not.toEqual(plain);
    expect(await logits(3)).toEqual(dropped);
    expect(await logits(4)).not.toEqual(dropped);
    // The same weights with attn_pdrop = 0 in training mode: exactly the eval logits, so the difference above is attn_pdrop's.
    w.manualSeed(1);
    const still = new GPT2LMHeadModel({ ...cfg, attn_pdrop: 0 }).train();
    const out = w.tidy(() => still.forward({ inputIds: input }).logits);
    expect(await out.toArray()).toEqual(plain);
    // Training with it: every parameter gets a finite gradient.
    w.manualSeed(5);
    w.tidy(() => model.forward({ inputIds: input, labels: input }).loss!.backward());
    for (const [name, p] of model.namedParameters()) {
      expect((await values(p.grad!)).every(Number.isFinite), name).toBe(true);
    }
    for (const t of [out, input]) t.dispose();
    still.dispose();
    model.dispose();
  });

  it('refuses a model too large for the adapter before allocating anything', () => {
    // An embedding over one binding is split (test/binding_split.test.ts); one over maxBufferSize cannot exist.
    const V = Math.ceil(w.runtime().limits.maxBufferSize / (64 * 4)) + 1;
    const before = w.liveBuffers();
    expect(() => new GPT2LMHeadModel({ n_layer: 1, n_embd: 64, n_head: 2, vocab_size: V })).toThrow(
      new RegExp(`too large for this adapter: transformer\\.wte\\.weight \\[${V}, 64\\] needs .* in one buffer, .*\\(maxBufferSize\\)`),
    );
    expect(w.liveBuffers()).toBe(before);
  });

  it('an untied model saved without lm_head.weight starts its head from the embedding', async () => {
    const config = { ...readJson(path.join(hfFixture('gpt2_tiny'), 'config.json')), tie_word_embeddings: false };
    const weights = parseWeights(new Uint8Array(readFileSync(path.join(hfFixture('gpt2_tiny'), 'model.safetensors'))));
    const model = gpt2FromStateDict(config, weights);
    expect(model.lm_head).not.toBeNull();
    expect(model.namedParameters().map(([n]) => n)).toContain('lm_head.weight');
    expect(Array.from(await model.lm_head!.weight.toArray())).toEqual(Array.from(toFloat32(weights.get('transformer.wte.weight')!)));
    model.dispose();
  });

  it('accepts bare GPT2Model names (no "transformer." prefix) and skips mask buffers', async () => {
    const config = readJson(path.join(hfFixture('gpt2_tiny'), 'config.json'));
    const weights = parseWeights(new Uint8Array(readFileSync(path.join(hfFixture('gpt2_tiny'), 'model.safetensors'))));
    const bare = new Map([...weights].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
    bare.set('h.0.attn.masked_bias', weights.get('transformer.ln_f.bias')!);
    const model = gpt2FromStateDict(config, bare).eval();
    const input = w.tensor(Int32Array.from(readJson(path.join(hfFixture('gpt2_tiny'), 'inputs.json')).full.input_ids.data), [2, 16], { dtype: 'i32' });
    const logits = w.tidy(() => model.forward({ inputIds: input }).logits);
    expectClose(await values(logits), fixtureTensors('gpt2_tiny').get('full.logits')!, LOGITS, 'logits from bare names');
    logits.dispose();
    input.dispose();
    model.dispose();
  });
});
