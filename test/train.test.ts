// The GPT2-Chinese workflow from the CLI: train, an interrupted run resumed with the same loss trajectory, eval, vocab.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { train } from '../src/cli/train.js';
import { evaluate } from '../src/cli/eval.js';
import { vocab } from '../src/cli/vocab.js';
import { generateCommand, generateTextsCommand } from '../src/cli/generate.js';
import { shutdown } from '../src/gpu/runtime.js';
import { sink, tinyTrainRun, useGpu } from './helpers.js';

useGpu();

const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const lossColumn = (dir: string): number[] =>
  readFileSync(path.join(dir, 'loss.csv'), 'utf8').trim().split('\n').slice(1).map((line) => Number(line.split(',')[1]));

describe('train -> resume -> eval -> vocab', { timeout: 600_000 }, () => {
  let common: string[] = [];

  it('sets up a small corpus and model config', async () => {
    // Dropout stays on (0.1), so resuming must also restore the random generator.
    common = [...(await tinyTrainRun(tmp)), '--seed', '7'];
  });

  it('an interrupted and resumed run has exactly the losses of an uninterrupted one', async () => {
    const a = path.join(tmp, 'a');
    expect(await train([...common, '--tokenized-data-path', path.join(tmp, 'tok'), '--output-dir', a], sink())).toBe(0);
    const full = lossColumn(a);
    expect(full.length).toBeGreaterThan(8);
    expect(full[full.length - 1]!).toBeLessThan(full[0]!);
    for (const d of ['model_epoch1', 'model_epoch2', 'final_model']) {
      expect(existsSync(path.join(a, d, 'config.json')) && existsSync(path.join(a, d, 'model.safetensors'))).toBe(true);
    }
    expect(readFileSync(path.join(a, 'loss.svg'), 'utf8')).toMatch(/<svg[^>]*xmlns=/);

    // Stop in the middle of the first epoch, then resume (underscore spellings on purpose).
    const b = path.join(tmp, 'b');
    const stopAt = Math.floor(full.length / 3);
    const first = sink();
    expect(await train([...common, '--tokenized_data_path', path.join(tmp, 'tok'), '--output_dir', b, '--max_steps', String(stopAt)], first)).toBe(0);
    expect(first.text).toMatch(/continue with --resume/);
    expect(lossColumn(b)).toHaveLength(stopAt);
    // As from a new process: no device until the command makes one.
    await shutdown();
    const second = sink();
    expect(await train(['--resume', '--output-dir', b], second)).toBe(0);
    expect(second.text).toMatch(/resuming from .*optimizer step \d+/);
    expect(lossColumn(b)).toEqual(full);
  });

  it('eval reports perplexity and writes it to result.txt; the trained model beats its epoch-1 self', async () => {
    const ppl = async (model: string): Promise<number> => {
      const dir = path.join(tmp, `eval-${model}`);
      const args = ['--pretrained-model', path.join(tmp, 'a', model), '--raw-data-path', path.join(tmp, 'train.json'),
        '--batch-size', '2', '--stride', '32', '--num-pieces', '2', '--min-length', '10', '--output-dir', dir];
      expect(await evaluate(args, sink())).toBe(0);
      return Number(/perplexity ([\d.]+)/.exec(readFileSync(path.join(dir, 'result.txt'), 'utf8'))![1]);
    };
    const final = await ppl('final_model');
    const epoch1 = await ppl('model_epoch1');
    // Better than guessing uniformly over the 13317-token vocabulary, and better after the second epoch.
    expect(final).toBeGreaterThan(1);
    expect(final).toBeLessThan(13317);
    expect(final).toBeLessThan(epoch1);
  });

  it('generate and generate-texts write samples from the trained model; a too-long prefix is refused', async () => {
    const model = path.join(tmp, 'a', 'final_model');
    expect(existsSync(path.join(model, 'vocab.txt'))).toBe(true); // saved with the model
    const out = sink();
    const samples = path.join(tmp, 'samples');
    const args = ['--model-path', model, '--prefix', '[CLS]春', '--length', '12', '--nsamples', '3', '--batch-size', '2', '--seed', '5', '--save-samples', '--save-samples-path', samples];
    expect(await generateCommand(args, out)).toBe(0);
    expect(out.text.match(/={40} SAMPLE \d ={40}/g)).toHaveLength(3);
    expect(readFileSync(path.join(samples, 'samples.txt'), 'utf8')).toContain('SAMPLE 3');
    // The same seed gives the same text; with --compat gpt2-chinese too.
    const again = sink();
    await generateCommand(args, again);
    expect(again.text.split('tokens/s')[0]!.replace(/in [\d.]+ s.*/, '')).toBe(out.text.split('tokens/s')[0]!.replace(/in [\d.]+ s.*/, ''));
    expect(await generateCommand([...args, '--compat', 'gpt2-chinese', '--repetition-penalty', '1.3'], sink())).toBe(0);
    const texts = path.join(tmp, 'texts');
    expect(await generateTextsCommand(['--model-path', model, '--titles', '春 秋', '--articles-per-title', '2', '--length', '8', '--save-path', texts], sink())).toBe(0);
    for (const f of ['0-0.txt', '0-1.txt', '1-0.txt', '1-1.txt']) expect(readFileSync(path.join(texts, f), 'utf8').length).toBeGreaterThan(0);
    await expect(generateCommand(['--model-path', model, '--prefix', '春'.repeat(40), '--length', '4'], sink())).rejects.toThrow(/prefix is 40 tokens, not shorter than the model's context of 32/);
  });

  it('vocab builds a vocabulary from the corpus', async () => {
    const file = path.join(tmp, 'vocab.txt');
    expect(await vocab(['--raw-data-path', path.join(tmp, 'train.json'), '--vocab-file', file, '--vocab-size', '50'], sink())).toBe(0);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(55);
    expect(lines.slice(0, 5)).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  });

  it('bad input fails clearly', async () => {
    await expect(train(['--bogus-flag'], sink())).rejects.toThrow(/unknown flag --bogus-flag/);
    await expect(train(['--resume', '--output-dir', path.join(tmp, 'nothing')], sink())).rejects.toThrow(/no checkpoint/);
    /** The common flags with some replaced. */
    const withFlags = (over: Record<string, string>): string[] => {
      const out = [...common];
      for (const [k, v] of Object.entries(over)) {
        const i = out.indexOf(k);
        if (i >= 0) out[i + 1] = v;
        else out.push(k, v);
      }
      return out;
    };
    writeFileSync(path.join(tmp, 'bad.json'), '["ok",\n  oops]');
    const badData = withFlags({ '--raw-data-path': path.join(tmp, 'bad.json'), '--output-dir': path.join(tmp, 'c'), '--tokenized-data-path': path.join(tmp, 'tok2') });
    await expect(train(badData, sink())).rejects.toThrow(/bad\.json: malformed JSON at line 2/);
    writeFileSync(path.join(tmp, 'small.json'), JSON.stringify({ n_layer: 1, n_embd: 32, n_head: 2, n_positions: 32, vocab_size: 100 }));
    const smallVocab = withFlags({ '--model-config': path.join(tmp, 'small.json'), '--output-dir': path.join(tmp, 'd'), '--tokenized-data-path': path.join(tmp, 'tok') });
    await expect(train(smallVocab, sink())).rejects.toThrow(/vocab_size 100 is smaller than the tokenizer's 13317/);
  });
});
