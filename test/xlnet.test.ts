// XLNet parity with Hugging Face (../shared/fixtures/hf xlnet_tiny, xlnet_tiny_backward, xlnet_tiny_bidata), from all three weight formats.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as w from '../src/index.js';
import { parseWeights } from '../src/io/weights.js';
import { XLNetLMHeadModel, xlnetFromStateDict, type XLNetForwardInput, type XLNetMems } from '../src/models/xlnet.js';
import { expectClose, expectFixtureGrads, fixtureTensors, hfFixture, useGpu, values } from './helpers.js';

useGpu();

const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));
const FORMATS = ['model.safetensors', 'pytorch_model.bin', 'pytorch_model.legacy.bin'];
const LOGITS = { atol: 1e-4, rtol: 0 };

interface JsonTensor {
  shape: number[];
  data: number[];
}


function load(name: string, file: string): XLNetLMHeadModel {
  const config = readJson(path.join(hfFixture(name), 'config.json'));
  return xlnetFromStateDict(config, parseWeights(new Uint8Array(readFileSync(path.join(hfFixture(name), file))), file)).eval();
}

/** One fixture call as forward() input (mems passed separately). */
function input(c: Record<string, JsonTensor | unknown>, mems?: XLNetMems): XLNetForwardInput {
  const t = (k: string): JsonTensor | undefined => c[k] as JsonTensor | undefined;
  const ids = t('input_ids')!;
  const tm = t('target_mapping');
  return {
    inputIds: w.tensor(Int32Array.from(ids.data), ids.shape, { dtype: 'i32' }),
    ...(t('token_type_ids') ? { tokenTypeIds: t('token_type_ids')!.data } : {}),
    ...(t('attention_mask') ? { attentionMask: t('attention_mask')!.data } : {}),
    ...(t('perm_mask') ? { permMask: t('perm_mask')!.data } : {}),
    ...(tm ? { targetMapping: tm.data, numPredict: tm.shape[1]! } : {}),
    ...(t('labels') ? { labels: w.tensor(Int32Array.from(t('labels')!.data), t('labels')!.shape, { dtype: 'i32' }) } : {}),
    ...(mems ? { mems } : {}),
    useMems: c.use_mems as boolean,
  };
}

/** Runs the six calls of xlnet_tiny / xlnet_tiny_bidata in order, mems carried as the fixture says, and compares everything. */
async function checkCalls(name: string, file: string): Promise<void> {
  const model = load(name, file);
  const inputs = readJson(path.join(hfFixture(name), 'inputs.json'));
  const scalars = readJson(path.join(hfFixture(name), 'expected.json'));
  const want = fixtureTensors(name);
  const memsOf = new Map<string, XLNetMems>();
  for (const call of ['call1_perm', 'call2_mems', 'call2b_mems_token_type', 'call0_plain', 'call3_padding', 'call4_after_padding']) {
    const c = inputs[call];
    const from = call.startsWith('call2') ? 'call1_perm' : call === 'call4_after_padding' ? 'call3_padding' : null;
    const out = w.tidy(() => model.forward(input(c, from ? memsOf.get(from) : undefined)));
    expectClose(await values(out.logits), want.get(`${call}.logits`)!, LOGITS, `${name} ${call}.logits`);
    if (scalars[call].loss !== undefined) expectClose([await out.loss!.item()], [scalars[call].loss], { atol: 1e-5, rtol: 1e-5 }, `${call}.loss`);
    for (const [l, m] of out.mems!.entries()) {
      expect(m.shape).toEqual([8, 2, 64]);
      expectClose(await values(m), want.get(`${call}.mems.${l}`)!, LOGITS, `${name} ${call}.mems.${l}`);
    }
    memsOf.set(call, out.mems!);
    out.logits.dispose();
    out.loss?.dispose();
  }
  for (const mems of memsOf.values()) mems.forEach((m) => m.dispose());
  model.dispose();
}

describe('XLNet forward parity', { timeout: 600_000 }, () => {
  for (const file of FORMATS) {
    it(`xlnet_tiny from ${file}: two-stream call with loss, mems carried twice, token types, padding`, async () => {
      await checkCalls('xlnet_tiny', file);
    });
  }
  it('xlnet_tiny_bidata: the backward half of the batch sees negated distances', async () => {
    await checkCalls('xlnet_tiny_bidata', 'model.safetensors');
  });
  it('padding: the real tokens of a left-padded row give the logits of the same tokens unpadded, as in HF', async () => {
    const model = load('xlnet_tiny', 'model.safetensors');
    const c = readJson(path.join(hfFixture('xlnet_tiny'), 'inputs.json')).call3_padding;
    const pads = (c.attention_mask.data as number[]).slice(12).filter((x) => x === 0).length;
    expect(pads).toBe(3);
    const padded = w.tidy(() => model.forward({ ...input(c), useMems: false }).logits);
    const real = (c.input_ids.data as number[]).slice(12 + pads);
    const alone = w.tidy(() => model.forward({ inputIds: w.tensor(Int32Array.from(real), [1, real.length], { dtype: 'i32' }), useMems: false }).logits);
    const V = 101;
    expectClose((await values(padded)).subarray((12 + pads) * V), await values(alone), { atol: 1e-5, rtol: 0 }, 'row 1, real tokens');
    padded.dispose();
    alone.dispose();
    model.dispose();
  });
});

describe('XLNet backward parity (xlnet_tiny_backward)', () => {
  for (const file of FORMATS) {
    it(`${file}: loss and every parameter gradient within 1e-3 of the largest`, async () => {
      const model = load('xlnet_tiny_backward', file);
      const c = readJson(path.join(hfFixture('xlnet_tiny_backward'), 'inputs.json')).train_step;
      const scalars = readJson(path.join(hfFixture('xlnet_tiny_backward'), 'expected.json'));
      const out = w.tidy(() => {
        const o = model.forward(input(c));
        o.loss!.backward();
        return { loss: o.loss!, logits: o.logits };
      });
      expectClose(await values(out.logits), fixtureTensors('xlnet_tiny_backward').get('train_step.logits')!, LOGITS, 'logits');
      expectClose([await out.loss.item()], [scalars.train_step.loss], { atol: 1e-5, rtol: 1e-5 }, 'loss');
      await expectFixtureGrads(model.namedParameters(), 'xlnet_tiny_backward');
      out.loss.dispose();
      out.logits.dispose();
      model.dispose();
    });
  }
});

describe('XLNet checkpoints', () => {
  it('loadPretrained picks XLNet by model_type; savePretrained writes a folder that loads back bit for bit', async () => {
    const model = await w.loadPretrained(hfFixture('xlnet_tiny'));
    expect(model).toBeInstanceOf(XLNetLMHeadModel);
    const xl = (model as XLNetLMHeadModel).eval();
    const c = readJson(path.join(hfFixture('xlnet_tiny'), 'inputs.json')).call0_plain;
    const logits = w.tidy(() => xl.forward({ ...input(c), useMems: false }).logits);
    const got = await values(logits);
    expectClose(got, fixtureTensors('xlnet_tiny').get('call0_plain.logits')!, LOGITS, 'call0_plain from loadPretrained');
    const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-xlnet-'));
    try {
      await w.savePretrained(xl, tmp);
      const saved = readJson(path.join(tmp, 'config.json'));
      expect([saved.model_type, saved.architectures[0], saved.d_model]).toEqual(['xlnet', 'XLNetLMHeadModel', 64]);
      const back = (await w.loadPretrained(tmp)) as XLNetLMHeadModel;
      const again = w.tidy(() => back.eval().forward({ ...input(c), useMems: false }).logits);
      expect(await values(again)).toEqual(got);
      again.dispose();
      back.dispose();
      await expect(w.loadGpt2(tmp, 'generate')).rejects.toThrow(/\(generate runs GPT-2 models\): model_type "xlnet" is not GPT-2/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    logits.dispose();
    xl.dispose();
  });

  it('refuses bad input before any GPU work: odd batch with bi_data, wrong shapes, two slots on one position', () => {
    const model = load('xlnet_tiny', 'model.safetensors');
    const ids = w.tensor(Int32Array.from({ length: 12 }, (_, i) => i), [2, 6], { dtype: 'i32' });
    const before = w.runtime().stats.dispatches;
    expect(() => model.forward({ inputIds: ids, permMask: new Float32Array(2 * 6 * 5) })).toThrow(/permMask must be \[B, T, T\] = \[2, 6, 6\] = 72 values, got 60/);
    expect(() => model.forward({ inputIds: ids, targetMapping: new Float32Array(2 * 6) })).toThrow(/targetMapping needs numPredict/);
    const twoOnOne = new Float32Array(2 * 2 * 6);
    twoOnOne[3] = 1;
    twoOnOne[6 + 3] = 1;
    expect(() => model.forward({ inputIds: ids, targetMapping: twoOnOne, numPredict: 2 })).toThrow(/slots 0 and 1 of batch row 0 both predict position 3/);
    const notOneHot = new Float32Array(2 * 1 * 6);
    notOneHot[1] = 0.5;
    expect(() => model.forward({ inputIds: ids, targetMapping: notOneHot, numPredict: 1 })).toThrow(/row \[0, 0\] must be one-hot or all zero/);
    expect(() => model.forward({ inputIds: ids, mems: [w.zeros([3, 2, 64])] })).toThrow(/mems has 1 layers, the model has 2/);
    expect(w.runtime().stats.dispatches).toBe(before);
    model.dispose();
    const bi = xlnetFromStateDict({ ...readJson(path.join(hfFixture('xlnet_tiny'), 'config.json')), bi_data: true }, parseWeights(new Uint8Array(readFileSync(path.join(hfFixture('xlnet_tiny'), 'model.safetensors')))));
    const odd = w.tensor(Int32Array.from([1, 2, 3]), [1, 3], { dtype: 'i32' });
    expect(() => bi.forward({ inputIds: odd })).toThrow(/bi_data needs an even batch .* got B = 1/);
    bi.dispose();
    for (const t of [ids, odd]) t.dispose();
  });
});
