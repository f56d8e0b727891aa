// `webgpu-lm eval`: perplexity of a model on a corpus (GPT2-Chinese eval.py), written to <output-dir>/result.txt.
//
// Differences from eval.py, on purpose: the end-aligned last window is used (eval.py computes it and then
// drops it), perplexity is exp(mean loss over all predicted tokens) rather than exp(mean of batch means),
// the forward runs under noGrad, and the result file is always written (eval.py's write fails).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { batchTokens, buildPieces, windowStarts } from '../../datasets/gpt2_chinese.js';
import { readCorpus } from '../../datasets/corpus.js';
import { bundledVocabPath, loadTokenizer } from '../../tokenizers/node.js';
import { noGrad } from '../autograd.js';
import { init } from '../gpu/runtime.js';
import { atomicWriteFile } from '../io/fs.js';
import { loadGpt2 } from '../models/pretrained.js';
import { add, mul } from '../ops/elementwise.js';
import { tensor, tidy, type Tensor } from '../tensor.js';
import { DEVICE_FLAG, formatHelp, parseArgs, type FlagSpec } from './args.js';
import { Progress } from './progress.js';

export const EVAL_FLAGS: FlagSpec[] = [
  DEVICE_FLAG,
  { name: 'model-config', type: 'string', default: '', help: 'accepted for compatibility: the config comes from --pretrained-model' },
  { name: 'tokenizer-path', type: 'string', default: '', help: 'vocab.txt; default: the bundled GPT2-Chinese vocab_small.txt' },
  { name: 'raw-data-path', type: 'string', default: 'data/eval.json', help: 'evaluation corpus (same formats as train)' },
  { name: 'tokenized-data-path', type: 'string', default: 'data/tokenized_eval/', help: 'accepted for compatibility (eval tokenizes in memory)' },
  { name: 'raw', type: 'bool', help: 'accepted for compatibility' },
  { name: 'batch-size', type: 'int', default: 8, help: 'windows per batch' },
  { name: 'log-step', type: 'int', default: 1, help: 'update the progress every N batches' },
  { name: 'stride', type: 'int', default: 768, help: 'window stride' },
  { name: 'num-pieces', type: 'int', default: 100, help: 'pieces the corpus is split into' },
  { name: 'min-length', type: 'int', default: 128, help: 'drop articles with at most this many characters' },
  { name: 'pretrained-model', type: 'string', default: '', help: 'the model folder to evaluate (required)' },
  { name: 'output-dir', type: 'string', default: 'eval_result/', help: 'result.txt goes here' },
];

export async function evaluate(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('eval', argv, EVAL_FLAGS);
  if (args.help) {
    out.write(formatHelp('eval', 'Perplexity of a model on a corpus (GPT2-Chinese eval.py flags).', EVAL_FLAGS));
    return 0;
  }
  const f = args.flags;
  if (!f['pretrained-model']) throw new Error('eval: --pretrained-model is required (the model folder to evaluate)');
  await init();
  const model = (await loadGpt2(String(f['pretrained-model']), 'eval')).eval();
  try {
    const tokenizer = loadTokenizer(String(f['tokenizer-path']) || bundledVocabPath('gpt2-chinese-small'), { variant: 'gpt2-chinese' });
    const pieces = buildPieces(await readCorpus(String(f['raw-data-path'])), tokenizer, {
      numPieces: Number(f['num-pieces']),
      minLength: Number(f['min-length']),
    });
    const nCtx = model.config.n_positions;
    const bs = Number(f['batch-size']);
    const windows = pieces.flatMap((p, k) => windowStarts(p.length, nCtx, Number(f.stride)).map((s): [number, number] => [k, s]));
    const batches = Math.floor(windows.length / bs);
    if (batches === 0) throw new Error(`eval: ${windows.length} windows of ${nCtx} tokens, fewer than one batch of ${bs}`);
    const progress = new Progress(batches, { stream: out, label: 'eval' });
    // Σ (batch mean loss · predictions in the batch), kept on the GPU; read once at the end.
    let total: Tensor | null = null;
    const perBatch = bs * (nCtx - 1);
    for (let b = 0; b < batches; b++) {
      const ids = batchTokens(pieces, { windows: windows.slice(b * bs, (b + 1) * bs) }, nCtx);
      const prev: Tensor | null = total;
      total = noGrad(() =>
        tidy(() => {
          const input = tensor(ids, [bs, nCtx], { dtype: 'i32' });
          const weighted = mul(model.forward({ inputIds: input, labels: input }).loss!, perBatch);
          return prev ? add(prev, weighted) : weighted;
        }),
      );
      prev?.dispose();
      if ((b + 1) % Number(f['log-step']) === 0 || b === batches - 1) progress.update(b + 1);
    }
    progress.finish();
    const meanLoss = (await total!.item()) / (batches * perBatch);
    total!.dispose();
    const ppl = Math.exp(meanLoss);
    const dir = String(f['output-dir']);
    await mkdir(dir, { recursive: true });
    const line = `perplexity ${ppl.toFixed(4)} (mean loss ${meanLoss.toFixed(6)} over ${batches * perBatch} predicted tokens, ${batches} batches)`;
    await atomicWriteFile(path.join(dir, 'result.txt'), `${line}\n`);
    out.write(`${line}\nwritten to ${path.join(dir, 'result.txt')}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
