// `webgpu-lm fill`: XLNet fill-in-the-blank: each <mask> in --text becomes the piece the model predicts there, filled left to right.

import { fillMasks, type FillResult } from '../generate/xlnet.js';
import { init } from '../gpu/runtime.js';
import { loadPretrained } from '../models/pretrained.js';
import type { XLNetLMHeadModel } from '../models/xlnet.js';
import { DEVICE_FLAG, formatHelp, parseArgs, UsageError, type FlagSpec } from './args.js';
import { xlnetForInference } from './generate.js';

export const FILL_FLAGS: FlagSpec[] = [
  DEVICE_FLAG,
  { name: 'model-path', type: 'string', default: 'model/final_model', help: 'XLNet model folder (config.json + weights)' },
  { name: 'text', type: 'string', help: 'the text, one <mask> per piece to predict, e.g. "春花秋<mask>何时了" (required)' },
  { name: 'tokenizer-path', type: 'string', default: '', help: 'spiece.model (default: spiece.model in --model-path, else the bundled songci-unigram model)' },
  { name: 'temperature', type: 'float', default: 0, help: 'divide the logits by this before drawing (0 = greedy)' },
  { name: 'topk', type: 'int', default: 0, help: 'draw among the k most likely pieces (0 = all)' },
  { name: 'seed', type: 'int', default: 0, help: 'random seed of the draws (with --temperature > 0)' },
  { name: 'candidates', type: 'int', default: 5, help: 'most likely pieces listed per mask, with their probabilities' },
];

/** The completed text with each filled piece in brackets ("春花秋[月]何时了"), then one line of candidates per mask. */
export function formatFill(result: FillResult): string {
  let marked = result.text;
  for (const m of [...result.masks].reverse()) marked = `${marked.slice(0, m.start)}[${marked.slice(m.start, m.end)}]${marked.slice(m.end)}`;
  const lines = result.masks.map((m, k) => {
    const candidates = m.candidates.map((c) => `${c.piece} ${c.probability.toFixed(4)}`).join('  ');
    return `<mask> ${k + 1} -> ${m.piece}${candidates ? `    ${candidates}` : ''}`;
  });
  return [marked, ...lines].join('\n') + '\n';
}

export async function fill(argv: readonly string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const args = parseArgs('fill', argv, FILL_FLAGS);
  if (args.help) {
    out.write(formatHelp('fill', 'XLNet fill-in-the-blank: predict the piece at each <mask> of --text, left to right.', FILL_FLAGS));
    return 0;
  }
  const f = args.flags;
  if (f.text === undefined) throw new UsageError('fill needs --text, e.g. --text "春花秋<mask>何时了" (one <mask> per piece to predict)');
  const candidates = Number(f.candidates);
  if (candidates < 0) throw new UsageError(`--candidates must be at least 0, got ${candidates}`);
  const modelPath = String(f['model-path']);
  await init();
  const loaded = await loadPretrained(modelPath, (config) => {
    const type = String(config.model_type ?? 'gpt2');
    if (type !== 'xlnet') throw new Error(`${modelPath}: fill runs XLNet models (model_type "xlnet"), this folder holds a "${type}" model`);
  });
  const { model, tokenizer } = xlnetForInference(loaded as XLNetLMHeadModel, modelPath, String(f['tokenizer-path']));
  try {
    const result = await fillMasks(model, tokenizer, String(f.text), {
      temperature: Number(f.temperature),
      topK: Number(f.topk),
      seed: Number(f.seed),
      candidates,
    });
    out.write(formatFill(result));
    return 0;
  } finally {
    model.dispose();
  }
}
