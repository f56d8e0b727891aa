// Generation speed: validates that cached greedy decoding equals uncached decoding, then times tokens/s with the KV cache.
//
//   npm run build && node dist/bench/generate.js [--preset tiny] [--tokens 64] [--batch 1]
// Weights are random (speed does not depend on them); the prompt is 16 tokens; sampling is top-k 8 on the GPU.

import { init, sync } from '../src/gpu/runtime.js';
import { generate } from '../src/generate/generate.js';
import { GPT2LMHeadModel } from '../src/models/gpt2.js';
import { GPT2_PRESETS } from '../src/models/presets.js';
import { manualSeed } from '../src/random.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const preset = flag('preset', 'tiny');
const tokens = Number(flag('tokens', '64'));
const batch = Number(flag('batch', '1'));
const config = GPT2_PRESETS[preset];
if (!config) throw new Error(`unknown preset ${preset}; have ${Object.keys(GPT2_PRESETS).join(', ')}`);

const { gpu } = await init();
manualSeed(1);
const model = new GPT2LMHeadModel(config).eval();
const prompt = Array.from({ length: 16 }, (_, i) => (i * 131) % model.config.vocab_size);
const prompts = Array.from({ length: batch }, () => prompt);
const steps = Math.min(tokens, model.config.n_positions - prompt.length);

// Validate: greedy decoding with the cache must give exactly the tokens of full recomputation.
const cached = await generate(model, prompts, { maxNewTokens: 8, temperature: 0, seed: 1 });
const full = await generate(model, prompts, { maxNewTokens: 8, temperature: 0, seed: 1, useCache: false });
if (JSON.stringify(cached) !== JSON.stringify(full)) throw new Error('validation failed: cached and uncached greedy decoding differ');

await generate(model, prompts, { maxNewTokens: 4, topK: 8, seed: 2 }); // warm-up: compiles every pipeline
await sync();
const start = performance.now();
await generate(model, prompts, { maxNewTokens: steps, topK: 8, seed: 3 });
const seconds = (performance.now() - start) / 1000;
const c = model.config;
process.stdout.write(
  `adapter: ${gpu.name}\n` +
    `model: ${preset} (${c.n_layer} layers, ${c.n_embd} wide, vocab ${c.vocab_size}), batch ${batch}, prompt 16, ${steps} new tokens\n` +
    `validation: cached == uncached greedy decoding\n` +
    `${((seconds * 1000) / steps).toFixed(1)} ms per decode step, ${((steps * batch) / seconds).toFixed(1)} tokens/s\n`,
);
model.dispose();
