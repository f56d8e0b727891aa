// XLNet pretraining: each step's loss is the model's loss on its batch with the previous step's memory (none at an epoch start), the schedule is train_gpu.py's, the CLI trains, checkpoints and resumes exactly, and bad flags fail clearly.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledCorpusPath, readCorpus } from '../datasets/corpus.js';
import { sentenceStreamFromArticles, XLNetPretrainingData } from '../datasets/xlnet.js';
import { bundledVocabPath, loadTokenizer } from '../tokenizers/node.js';
import type { SentencePieceTokenizer } from '../tokenizers/sentencepiece.js';
import { train } from '../src/cli/train.js';
import { shutdown } from '../src/gpu/runtime.js';
import { loadPretrained } from '../src/models/pretrained.js';
import { XLNetLMHeadModel, xlnetFromStateDict, xlnetStateDict, type XLNetMems } from '../src/models/xlnet.js';
import { warmupDecayToMin } from '../src/optim/schedule.js';
import { manualSeed } from '../src/random.js';
import { noGrad } from '../src/autograd.js';
import { tensor } from '../src/tensor.js';
import { toFloat32 } from '../src/io/safetensors.js';
import { XLNET_TRAIN_DEFAULTS, XLNetTrainer } from '../src/train/xlnet_trainer.js';
import { sink, useGpu } from './helpers.js';

useGpu();

const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-xlnet-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const lossColumn = (dir: string): number[] =>
  readFileSync(path.join(dir, 'loss.csv'), 'utf8').trim().split('\n').slice(1).map((line) => Number(line.split(',')[1]));

let poems: string[] = [];
let tokenizer: SentencePieceTokenizer;
beforeAll(async () => {
  poems = (await readCorpus(bundledCorpusPath())).slice(0, 8);
  tokenizer = loadTokenizer(bundledVocabPath('songci-unigram'), { mode: 'xlnet' }) as SentencePieceTokenizer;
});

describe('warmupDecayToMin (model_utils.get_train_op)', () => {
  it('warms up linearly from 0, then follows TF polynomial_decay / cosine_decay to lr · min_lr_ratio', () => {
    const [warmup, total, ratio] = [10, 110, 0.001];
    expect(warmupDecayToMin(0, warmup, total, ratio, 'poly')).toBe(0);
    expect(warmupDecayToMin(5, warmup, total, ratio, 'poly')).toBe(0.5);
    // TF: (lr - end) · (1 - min(s, decay) / decay) + end with end = lr · ratio, s counted from the warm-up's end.
    for (const s of [10, 35, 60, 109, 110, 500]) {
      const t = Math.min(s - warmup, total - warmup) / (total - warmup);
      expect(warmupDecayToMin(s, warmup, total, ratio, 'poly')).toBeCloseTo((1 - ratio) * (1 - t) + ratio, 12);
      // TF cosine_decay: ((1 - alpha) · 0.5 · (1 + cos(pi t)) + alpha).
      expect(warmupDecayToMin(s, warmup, total, ratio, 'cos')).toBeCloseTo((1 - ratio) * 0.5 * (1 + Math.cos(Math.PI * t)) + ratio, 12);
    }
  });
});

describe('XLNetTrainer', { timeout: 300_000 }, () => {
  it("each step's loss is the model's loss on its batch, with the previous step's memory, and none at an epoch start", async () => {
    const stream = sentenceStreamFromArticles(poems.slice(0, 2), tokenizer);
    const data = new XLNetPretrainingData(stream, tokenizer, { batchSize: 2, seqLen: 16, seed: 3 });
    expect(data.stepsPerEpoch).toBeLessThan(40);
    manualSeed(5);
    const config = { vocab_size: tokenizer.vocabSize, d_model: 16, n_layer: 2, n_head: 2, d_inner: 32, dropout: 0, mem_len: 12, reuse_len: 8, bi_data: true };
    const model = new XLNetLMHeadModel(config);
    const trainer = new XLNetTrainer(model, data, { ...XLNET_TRAIN_DEFAULTS, trainSteps: 1000, learningRate: 3e-3 });
    // The loss of (epoch, k) computed from scratch: the weights as they were before the step, the given memory.
    const reference = async (epoch: number, k: number, mems: XLNetMems | undefined): Promise<number> => {
      const copy = xlnetFromStateDict(config, await xlnetStateDict(model));
      copy.train();
      const b = data.batch(epoch, k);
      const out = noGrad(() =>
        copy.forward({
          inputIds: tensor(b.inputIds, [2, 16], { dtype: 'i32' }),
          tokenTypeIds: b.tokenTypeIds!,
          permMask: b.permMask,
          targetMapping: b.targetMapping,
          numPredict: b.numPredict,
          labels: tensor(b.labels, [2, b.numPredict], { dtype: 'i32' }),
          ...(mems ? { mems } : {}),
        }),
      );
      const loss = await out.loss!.item();
      copy.dispose();
      return loss;
    };
    const carriedMems = async (): Promise<XLNetMems> =>
      noGrad(() => [...(trainer as unknown as { mems: XLNetMems }).mems].map((m) => m.detach()));
    const steps = data.stepsPerEpoch + 2; // across the epoch boundary
    for (let s = 0; s < steps; s++) {
      const k = s % data.stepsPerEpoch;
      const mems = k === 0 ? undefined : await carriedMems();
      if (mems) for (const m of mems) expect(m.shape).toEqual([Math.min(12, 8 * k), 2, 16]);
      const want = await reference(Math.floor(s / data.stepsPerEpoch), k, mems);
      const r = trainer.step();
      expect(await r.loss.item()).toBeCloseTo(want, 5);
      expect(r.epoch).toBe(Math.floor(s / data.stepsPerEpoch));
      r.loss.dispose();
    }
    // The memory it saves is the memory it carries.
    const saved = await trainer.carried();
    const now = await carriedMems();
    for (const [l, m] of now.entries()) expect(toFloat32(saved.get(`mems.${l}`)!)).toEqual(await m.toArray());
    trainer.dispose();
    model.dispose();
  });

  it('refuses a model whose bi_data or reuse_len does not match the data', () => {
    const data = new XLNetPretrainingData(sentenceStreamFromArticles(poems, tokenizer), tokenizer, { batchSize: 2, seqLen: 16 });
    const base = { vocab_size: tokenizer.vocabSize, d_model: 16, n_layer: 1, n_head: 2, d_inner: 16 };
    const m1 = new XLNetLMHeadModel({ ...base, bi_data: false });
    expect(() => new XLNetTrainer(m1, data, XLNET_TRAIN_DEFAULTS)).toThrow(/bi_data \(false\) must match the data's \(true\)/);
    const m2 = new XLNetLMHeadModel({ ...base, bi_data: true, mem_len: 8, reuse_len: 4 });
    expect(() => new XLNetTrainer(m2, data, XLNET_TRAIN_DEFAULTS)).toThrow(/reuse_len \(4\) must equal the data's \(8\)/);
    m1.dispose();
    m2.dispose();
  });
});

describe('webgpu-lm train --model xlnet', { timeout: 600_000 }, () => {
  let common: string[] = [];

  beforeAll(() => {
    // The original corpus format: one sentence per line, a blank line between documents.
    writeFileSync(path.join(tmp, 'train.txt'), poems.join('\n\n'));
    common = [
      '--model', 'xlnet', '--raw-data-path', path.join(tmp, 'train.txt'),
      '--seq-len', '16', '--train-batch-size', '2', '--mem-len', '12', '--n-layer', '2', '--d-model', '16', '--n-head', '2', '--d-inner', '32',
      '--ff-activation', 'gelu', '--dropout', '0.1', '--train-steps', '36', '--warmup-steps', '4', '--learning-rate', '1e-2',
      '--iterations', '2', '--seed', '11',
    ];
  });

  it('pretrains (the loss falls); a run stopped and resumed has exactly the losses of an uninterrupted one', async () => {
    const a = path.join(tmp, 'a');
    const out = sink();
    expect(await train([...common, '--model-dir', a], out)).toBe(0);
    expect(out.text).toMatch(/steps per pass over the corpus/);
    const full = lossColumn(a);
    expect(full).toHaveLength(18);
    const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / xs.length;
    // From about ln 8000 = 9.0: the unigram distribution alone is worth more than a nat.
    expect(full[0]!).toBeGreaterThan(8.5);
    expect(mean(full.slice(-4))).toBeLessThan(full[0]! - 1);
    const model = await loadPretrained(path.join(a, 'final_model'));
    expect(model).toBeInstanceOf(XLNetLMHeadModel);
    // Pretraining settings, not a model's: the saved config has what inference needs.
    expect((model as XLNetLMHeadModel).config.reuse_len).toBeNull();
    expect((model as XLNetLMHeadModel).config.bi_data).toBe(false);
    expect((model as XLNetLMHeadModel).config.mem_len).toBe(12);
    model.dispose();
    expect(existsSync(path.join(a, 'final_model', 'spiece.model'))).toBe(true);

    // Stop mid-epoch (memory carried), then resume from a fresh device, underscore spellings and no --model.
    const b = path.join(tmp, 'b');
    const first = sink();
    expect(await train([...common, '--model_dir', b, '--max_steps', '10'], first)).toBe(0);
    expect(first.text).toMatch(/continue with --resume/);
    expect(existsSync(path.join(b, 'checkpoint', 'carried.safetensors'))).toBe(true);
    expect(lossColumn(b)).toEqual(full.slice(0, 5));
    await shutdown();
    const second = sink();
    expect(await train(['--resume', '--model-dir', b, '--iterations', '2'], second)).toBe(0);
    expect(second.text).toMatch(/resuming from .* at step 10/);
    expect(lossColumn(b)).toEqual(full);
  });

  it('bad flags fail clearly, before training', async () => {
    /** The common flags with one replaced or added. */
    const run = (flag: string, value?: string): Promise<number> => {
      const args = [...common, '--model-dir', path.join(tmp, 'bad')];
      const i = args.indexOf(flag);
      if (value === undefined) args.push(flag);
      else if (i >= 0) args[i + 1] = value;
      else args.push(flag, value);
      return train(args, sink());
    };
    await expect(run('--seq-len', '15')).rejects.toThrow(/--seq-len must be an even integer/);
    await expect(run('--reuse-len', '20')).rejects.toThrow(/--reuse-len 20 is larger than --seq-len 16/);
    await expect(run('--train-batch-size', '3')).rejects.toThrow(/--bi-data needs an even batch size/);
    await expect(run('--d-head', '4')).rejects.toThrow(/--d-head 4 × --n-head 2 must equal --d-model 16/);
    await expect(run('--dropatt', '0.3')).rejects.toThrow(/--dropatt 0.3 must equal --dropout 0.1/);
    await expect(run('--untie-r=false')).rejects.toThrow(/not available/);
    await expect(run('--bi-data', 'false')).rejects.toThrow(/unexpected argument 'false' \(bool flags take --name=false\)/);
    await expect(run('--decay-method', 'step')).rejects.toThrow(/--decay-method must be 'poly' or 'cos'/);
    await expect(run('--tokenizer-path', bundledVocabPath('gpt2-chinese-small'))).rejects.toThrow(/XLNet needs a SentencePiece \.model/);
    writeFileSync(path.join(tmp, 'short.txt'), '春花秋月何时了');
    await expect(run('--raw-data-path', path.join(tmp, 'short.txt'))).rejects.toThrow(/the corpus is too short for one step/);
    await expect(train(['--model', 'bert'], sink())).rejects.toThrow(/--model must be gpt2 or xlnet/);
    // A GPT-2 command line cannot resume an XLNet run, and the reverse.
    await expect(train(['--model', 'gpt2', '--resume', '--output-dir', path.join(tmp, 'b')], sink())).rejects.toThrow(/holds an XLNet run; resume it with --model xlnet/);
  });
});
