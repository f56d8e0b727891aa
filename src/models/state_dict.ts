// GPT-2 weights to and from Hugging Face state dicts (name -> host tensor): name normalisation, checks, tied head. Browser-clean.

import { fromFloat32, toFloat32, type HostTensor } from '../io/safetensors.js';
import { withoutInit } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import { GPT2LMHeadModel, gpt2Config, type GPT2Config } from './gpt2.js';

/** Buffers some checkpoints carry that are not weights: the causal-mask buffer and its fill value (gpt2.md §2). */
const MASK_BUFFER = /(^|\.)attn\.(bias|masked_bias)$/;

/** "transformer.h.0.ln_1.weight" and "h.0.ln_1.weight" name the same weight (GPT2LMHeadModel vs GPT2Model checkpoints). */
function canonical(name: string): string {
  return name.startsWith('transformer.') ? name.slice('transformer.'.length) : name;
}

/** The model's weights by canonical name (no "transformer." prefix), the fixed sinusoid table included. */
function weightsByName(model: GPT2LMHeadModel): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, p] of model.namedParameters()) out.set(canonical(name), p);
  if (model.config.position_embedding_type === 'sinusoidal') out.set('wpe.weight', model.transformer.wpe.weight);
  return out;
}

/**
 * A GPT2LMHeadModel with the weights of a Hugging Face state dict. Accepts names with or without the
 * "transformer." prefix, skips attn.bias / attn.masked_bias buffers, uses wte when a tied lm_head.weight is
 * absent (or present: tied means the same matrix), and refuses missing, unknown or mis-shaped tensors.
 */
export function gpt2FromStateDict(config: Partial<GPT2Config>, weights: ReadonlyMap<string, HostTensor>): GPT2LMHeadModel {
  const cfg = gpt2Config(config);
  const model = withoutInit(() => new GPT2LMHeadModel(cfg));
  try {
    const targets = weightsByName(model);
    const loaded = new Set<string>();
    for (const [stored, host] of weights) {
      const name = canonical(stored);
      if (MASK_BUFFER.test(name)) continue;
      if (name === 'lm_head.weight' && cfg.tie_word_embeddings) continue;
      // Sinusoidal positions are recomputed, whatever a checkpoint saved for them.
      if (name === 'wpe.weight' && cfg.position_embedding_type === 'sinusoidal') continue;
      const target = targets.get(name);
      if (!target) throw new Error(`GPT-2 checkpoint: unexpected tensor "${stored}" (not a GPT-2 weight for this config)`);
      if (host.shape.join() !== target.shape.join()) {
        throw new Error(
          `GPT-2 checkpoint: "${stored}" has shape [${host.shape}] but the config (n_embd ${cfg.n_embd}, n_head ${cfg.n_head}, ` +
            `n_layer ${cfg.n_layer}, vocab_size ${cfg.vocab_size}, n_positions ${cfg.n_positions}) needs [${target.shape}]`,
        );
      }
      target.upload(toFloat32(host));
      loaded.add(name);
    }
    const wte = weights.get('transformer.wte.weight') ?? weights.get('wte.weight');
    if (!cfg.tie_word_embeddings && !loaded.has('lm_head.weight') && wte) {
      // An untied model saved without its head: start the head from the embedding, as a tied one would be.
      targets.get('lm_head.weight')!.upload(toFloat32(wte));
      loaded.add('lm_head.weight');
    }
    const missing = [...targets.keys()].filter((n) => !loaded.has(n) && !(n === 'wpe.weight' && cfg.position_embedding_type === 'sinusoidal'));
    if (missing.length > 0) {
      throw new Error(`GPT-2 checkpoint: missing ${missing.length} weight(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`);
    }
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * The model's weights under Hugging Face's GPT2LMHeadModel names, as save_pretrained writes them: a tied
 * lm_head.weight is left out; a sinusoidal table is saved as wpe.weight so HF can load the model.
 */
export async function gpt2StateDict(model: GPT2LMHeadModel): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of weightsByName(model)) {
    const hfName = name.startsWith('lm_head.') ? name : `transformer.${name}`;
    out.set(hfName, fromFloat32((await t.toArray()) as Float32Array, [...t.shape]));
  }
  return out;
}
